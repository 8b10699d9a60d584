"""Ledger benchmark: `agentops audit verify` over 1,000,000 events with signed checkpoints, next to plain Python.

    .venv/bin/python bench/ledger.py [--events 1000000] [--checkpoint-every 1000] [--appends 10000] [--repeats 3]
                                     [--no-cli] [--profile]
                                     [--database-url postgresql+psycopg://USER:PASSWORD@HOST/SCRATCH_DB]

Fills a fresh SQLite ledger (in a temp dir) with correctly chained events built as the engine builds them (a mix
of run/step states, model calls, policy verdicts and tool results, 8 per run), the run and step rows they bind
(each run's parameters and result and each step's output, with their digests in the events), and a signed
checkpoint every --checkpoint-every events, in the checkpoint file and the database (as the workers sign
them). The fill is setup and is not measured. Then times, as medians:
- verify: service.audit_verify() in-process and the `agentops audit verify` command (wall time, interpreter start
  included), next to two floors on a bare DB-API connection (sqlite3 or psycopg) with hashlib:
  "chain only" reads the events and recomputes each sha256 with the prev_hash check (what verify did before
  checkpoints); "same checks" does all that verify does, written plainly: the chain, every checkpoint's
  Ed25519 signature and its row, the high-water mark, and the run and step rows re-hashed against their
  digests. The target is "same checks" x1.5;
- tamper: one payload edited in the middle, and the last 10 events cut off; time to name them;
- append: N events through Store.append_events one per transaction and all in one call, against plain
  sqlite3 (or psycopg) doing the same chained insert (high-water mark read, insert, mark moved) by hand.
With --database-url the same runs on PostgreSQL too; give it an empty scratch database (its ledger must be
empty; it is filled and truncated at the end). The machine is shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import json
import os
import pstats
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agentops.core import checkpoints  # noqa: E402
from agentops.core.ledger import Event, text_digest  # noqa: E402

TARGET_RATIO = 1.5
FILL_BATCH = 50_000
COLUMNS = "seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev_hash, hash"
SELECT_ALL = f"SELECT {COLUMNS} FROM ledger ORDER BY seq"
INSERT = ("INSERT INTO ledger (seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, "
          "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
POLICY_HASH = hashlib.sha256(b"policies/default.yaml").hexdigest()
TASKS = ("incident.model", "incident.policy", "incident.tool:scale_deployment")


# -- events and rows as the engine writes them -------------------------------------------------------------


def run_values(run: int) -> tuple[str, str, str]:
    """(id, parameters, result) of bench run number `run`."""
    return f"{run:032x}", json.dumps({"deployment": "web-app", "cpu": 80 + run % 20}), json.dumps(
        {"scaled_to": 2 + run % 13, "status": "ok"})


def step_output(run: int, step: int) -> str:
    return json.dumps({"step": step, "content": f"web-app scaled to {2 + run % 13} replicas", "tokens": 812 + run % 97})


def make_events(start: int, count: int, base_ts: float) -> list[Event]:
    """A deterministic mix of the ledger's real event shapes, 8 events per run, with the digests the store binds."""
    events = []
    for i in range(start, start + count):
        run, kind, ts = i // 8, i % 8, base_ts + i * 0.002
        run_id, parameters, result = run_values(run)
        step = {1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2}.get(kind)
        replicas = 2 + i % 13
        if kind == 0:
            ev = Event("system:engine", "run.state", run_id=run_id, ts=ts, payload={
                "state": "RUNNING", "worker": "bench-worker-1", "parameters_digest": text_digest(parameters),
                "result_digest": None})
        elif kind == 7:
            ev = Event("system:engine", "run.state", run_id=run_id, ts=ts,
                       payload={"state": "COMPLETED", "result_digest": text_digest(result)})
        elif kind in (1, 3, 5):
            ev = Event("system:engine", "step.state", run_id=run_id, step_no=step, ts=ts, payload={
                "state": "COMPLETED", "task": TASKS[step], "attempts": 1,
                "output_digest": text_digest(step_output(run, step))})
        elif kind == 2:
            ev = Event("agent:incident", "model.call", run_id=run_id, step_no=step, ts=ts, payload={
                "model": "openai:gpt-4.1-mini", "prompt_hash": POLICY_HASH[:16], "latency_ms": 412.5 + i % 300,
                "usage": {"input_tokens": 812 + i % 97, "output_tokens": 64 + i % 31, "total_tokens": 876 + i % 128},
                "fallback": None, "proposed": [{"name": "scale_deployment",
                                                "args": {"name": "web-app", "replicas": replicas}}]})
        elif kind == 4:
            ev = Event("system:policy", "policy.verdict", run_id=run_id, step_no=step, ts=ts, policy_hash=POLICY_HASH,
                       payload={"tool": "scale_deployment", "args": {"name": "web-app", "replicas": replicas},
                                "status": "allowed", "reason": "within limits", "verdict": "allow"})
        else:
            ev = Event("agent:incident", "tool.result", run_id=run_id, step_no=step, ts=ts, policy_hash=POLICY_HASH,
                       payload={"tool": "scale_deployment", "args": {"name": "web-app", "replicas": replicas},
                                "status": "ok", "content": f"web-app scaled to {replicas} replicas"})
        events.append(ev)
    return events


# -- plain Python: the floors ------------------------------------------------------------------------------------


class Plain:
    """The same SQL on a bare DB-API connection (sqlite3 or psycopg), no SQLAlchemy, no agentops."""

    def __init__(self, url: str) -> None:
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.conn: Any = sqlite3.connect(url.split("///", 1)[-1], isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
                self.conn.execute(f"PRAGMA {pragma}")
        else:
            import psycopg
            from sqlalchemy.engine import make_url

            self.conn = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False),
                                        autocommit=True)

    def sql(self, statement: str) -> str:
        return statement if self.is_sqlite else statement.replace("?", "%s")

    def query(self, statement: str) -> Iterator[tuple[Any, ...]]:
        if self.is_sqlite:
            yield from self.conn.execute(statement)
            return
        with self.conn.transaction(), self.conn.cursor(name=f"bench_{time.monotonic_ns()}") as cur:
            cur.itersize = 50_000
            cur.execute(statement)
            yield from cur

    def one(self, statement: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        return self.conn.execute(self.sql(statement), params).fetchone()

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        if self.is_sqlite:
            self.conn.execute(statement, params)
        else:
            with self.conn.transaction():
                self.conn.execute(self.sql(statement), params)

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if self.is_sqlite:
            self.conn.execute("BEGIN")
            self.conn.executemany(statement, rows)
            self.conn.execute("COMMIT")
        else:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany(self.sql(statement), rows)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction for a whole verification (repeatable read on PostgreSQL), as agentops takes."""
        if self.is_sqlite:
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                self.conn.execute("COMMIT")
            return
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    def close(self) -> None:
        self.conn.close()

    def verify_chain(self) -> tuple[bool, int, int | None]:
        """The chain only: read, recompute sha256 over the same bytes, check each link."""
        sha256, expected, count = hashlib.sha256, "0" * 64, 0
        for seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev, digest in self.query(
                SELECT_ALL):
            if prev != expected:
                return False, count, seq
            material = "\x1f".join((prev, repr(float(ts)), actor, action, run_id or "",
                                    "" if step_no is None else str(step_no), approval_id or "", policy_hash or "",
                                    payload))
            if sha256(material.encode()).hexdigest() != digest:
                return False, count, seq
            expected = digest
            count += 1
        return True, count, None

    def verify_all(self, public_pem: bytes, checkpoint_file: Path) -> tuple[bool, int, int | None]:
        """Everything audit_verify checks, written plainly: checkpoint signatures, the chain against them and the
        high-water mark, the bound run and step values against their digests."""
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        key = load_pem_public_key(public_pem)
        lines = [json.loads(line) for line in checkpoint_file.read_text().splitlines()]
        with self.snapshot():
            rows = [r for r in self.query("SELECT seq, hash, count, ts, key_fingerprint, signature "
                                          "FROM ledger_checkpoints")]
            lines += [{"seq": r[0], "hash": r[1], "count": r[2], "ts": r[3], "key": r[4], "sig": r[5], "v": 1}
                      for r in rows]
            signed: dict[int, tuple[str, int]] = {}
            for cp in lines:
                body = {k: cp[k] for k in ("v", "seq", "hash", "count", "ts", "key")}
                key.verify(base64.b64decode(cp["sig"]), checkpoints.SIGNED_PREFIX +  # type: ignore[union-attr]
                           json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
                signed[cp["seq"]] = (cp["hash"], cp["count"])
            sha256, expected, count, last = hashlib.sha256, "0" * 64, 0, 0
            bound: dict[tuple[str, int | None, str], bytes | None] = {}
            for seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev, digest in self.query(
                    SELECT_ALL):
                if prev != expected or seq != last + 1:
                    return False, count, seq
                material = "\x1f".join((prev, repr(float(ts)), actor, action, run_id or "",
                                        "" if step_no is None else str(step_no), approval_id or "", policy_hash or "",
                                        payload))
                if sha256(material.encode()).hexdigest() != digest:
                    return False, count, seq
                count += 1
                if seq in signed and signed.pop(seq) != (digest, count):
                    return False, count, seq
                if run_id is not None and '_digest":' in payload:
                    data = json.loads(payload)
                    for name in ("parameters", "result") if step_no is None else ("output",):
                        if f"{name}_digest" in data:
                            value = data[f"{name}_digest"]
                            bound[(run_id, step_no, name)] = None if value is None else bytes.fromhex(value)
                expected, last = digest, seq
            if signed or self.one("SELECT seq, hash FROM ledger_head") != (last, expected):
                return False, count, last
            for run_id, parameters, result in self.query("SELECT id, parameters, result FROM flow_runs"):
                for name, stored in (("parameters", parameters), ("result", result)):
                    if bound.pop((run_id, None, name), b"") not in (b"", sha256(stored.encode()).digest()):
                        return False, count, None
            for run_id, step_no, output in self.query("SELECT run_id, step_no, output FROM step_runs"):
                if bound.pop((run_id, step_no, "output"), b"") not in (b"", sha256(output.encode()).digest()):
                    return False, count, None
            return not bound, count, None

    def read_only(self) -> int:
        return sum(1 for _ in self.query(SELECT_ALL))

    # the appender: lock the high-water mark, JSON, sha256, insert, move the mark; per event or all at once
    def _chain(self, seq: int, prev: str, events: list[Event]) -> list[tuple[Any, ...]]:
        out = []
        for ev in events:
            seq += 1
            payload = json.dumps(ev.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            material = "\x1f".join((prev, repr(float(ev.ts)), ev.actor, ev.action, ev.run_id or "",
                                    "" if ev.step_no is None else str(ev.step_no), ev.approval_id or "",
                                    ev.policy_hash or "", payload))
            digest = hashlib.sha256(material.encode()).hexdigest()
            out.append((seq, ev.ts, ev.actor, ev.action, ev.run_id, ev.step_no, ev.approval_id, payload,
                        ev.policy_hash, prev, digest))
            prev = digest
        return out

    def append(self, events: list[Event]) -> None:
        head = "SELECT seq, hash FROM ledger_head WHERE id = 1"
        move = self.sql("UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1")
        if self.is_sqlite:
            self.conn.execute("BEGIN IMMEDIATE")
            rows = self._chain(*self.conn.execute(head).fetchone(), events)
            self.conn.executemany(INSERT, rows)
            self.conn.execute(move, (rows[-1][0], rows[-1][-1]))
            self.conn.execute("COMMIT")
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            rows = self._chain(*cur.execute(head + " FOR UPDATE").fetchone(), events)
            cur.executemany(self.sql(INSERT), rows)
            cur.execute(move, (rows[-1][0], rows[-1][-1]))


# -- setup -------------------------------------------------------------------------------------------------------


def use_database(url: str, project: Path) -> Any:
    from agentops.db import close_stores, open_store
    from agentops.settings import reset_settings

    os.environ["AGENTOPS_DATABASE_URL"] = url
    os.environ["AGENTOPS_PROJECT_DIR"] = str(project)
    close_stores()
    reset_settings()
    return open_store()


def fill(store: Any, plain: Plain, n: int, every: int) -> float:
    """Events through Store.append_events, the rows they bind by plain SQL, then a signed checkpoint every
    `every` events (the checkpoint file and the database's copy), as the workers would have signed them."""
    from agentops.service.audit import checkpoint_file, signing_key

    t0 = time.perf_counter()
    base_ts = time.time() - 30 * 86400
    for start in range(0, n, FILL_BATCH):
        store.append_events(make_events(start, min(FILL_BATCH, n - start), base_ts))
    runs = [(rid, "incident_response", params, result, "COMPLETED", base_ts, base_ts)
            for rid, params, result in map(run_values, range((n + 7) // 8))]
    plain.executemany("INSERT INTO flow_runs (id, flow_name, parameters, result, state, trigger, created_at, "
                      "updated_at) VALUES (?, ?, ?, ?, ?, 'manual', ?, ?)", runs)
    steps = [(run_values(run)[0], step, TASKS[step], step_output(run, step))
             for run in range((n + 7) // 8) for step in range(3) if 8 * run + 2 * step + 1 < n]
    plain.executemany("INSERT INTO step_runs (run_id, step_no, name, kind, state, output, attempts, tokens, cost) "
                      "VALUES (?, ?, ?, 'task', 'COMPLETED', ?, 1, 0, 0.0)", steps)
    key, path = signing_key(), checkpoint_file(create=True)
    signed = []
    for seq, digest in plain.query(f"SELECT seq, hash FROM ledger WHERE seq % {every} = 0 ORDER BY seq"):
        signed.append(checkpoints.sign(key, seq=seq, hash=digest, count=seq, ts=base_ts + seq * 0.002))
    path.write_text("".join(cp.line() + "\n" for cp in signed))
    plain.executemany("INSERT INTO ledger_checkpoints (seq, hash, count, ts, key_fingerprint, signature) "
                      "VALUES (?, ?, ?, ?, ?, ?)", [(c.seq, c.hash, c.count, c.ts, c.key, c.sig) for c in signed])
    return time.perf_counter() - t0


# -- measuring ---------------------------------------------------------------------------------------------------


def rounds(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, Any]]:
    """Median seconds and the last result of each case. Cases take turns, so load drift hits them alike."""
    samples: dict[str, list[float]] = {label: [] for label in cases}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for label, fn in cases.items():
            t0 = time.perf_counter()
            results[label] = fn()
            samples[label].append(time.perf_counter() - t0)
    return {label: (statistics.median(samples[label]), results[label]) for label in cases}


def cli_verify(url: str, project: Path, tmp: str) -> Callable[[], tuple[int, dict[str, Any]]]:
    script = Path(sys.executable).with_name("agentops")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "agentops.cli"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "AGENTOPS_DATABASE_URL": url,
           "AGENTOPS_PROJECT_DIR": str(project)}

    def run() -> tuple[int, dict[str, Any]]:
        done = subprocess.run([*command, "audit", "verify", "--json"], cwd=tmp, env=env, capture_output=True,
                              text=True)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"agentops audit verify failed: {done.stderr.strip()}")
        return done.returncode, json.loads(done.stdout)

    return run


class Table:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.lines.append(title)

    def row(self, label: str, seconds: float, events: int | None, floor_s: float | None, note: str = "") -> None:
        rate = f"{events / seconds:>12,.0f}" if events else f"{'':>12}"
        ratio = f"x{seconds / floor_s:.2f}" if floor_s else ""
        self.lines.append(f"  {label:<62} {seconds:>9.3f} {rate} {ratio:>8}  {note}".rstrip())

    def print(self) -> None:
        print(f"  {'':<62} {'median s':>9} {'events/s':>12} {'vs floor':>8}")
        print("\n".join(self.lines))
        self.lines.clear()


def bench_backend(name: str, url: str, args: argparse.Namespace, tmp: str) -> None:
    from agentops import service

    project = Path(tmp) / name.lower()
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "bench-ledger"\n')
    store = use_database(url, project)
    if store.ledger_count():
        sys.exit(f"{name}: the ledger at {url} is not empty; give an empty scratch database")
    n, reps = args.events, args.repeats
    plain = Plain(url)
    fill_s = fill(store, plain, n, args.checkpoint_every)
    public = service.audit.signing_key().public_key()
    cp_file = service.audit.checkpoint_file(create=False)
    table = Table()
    print(f"\n{name}: {n:,} events, {(n + 7) // 8:,} runs and {3 * n // 8:,} steps bound in, "
          f"{n // args.checkpoint_every:,} signed checkpoints; filled in {fill_s:.1f} s (setup, not measured); "
          f"medians of {reps}")

    # verify ---------------------------------------------------------------------------------------------------
    driver = "sqlite3" if plain.is_sqlite else "psycopg"
    chain, floor = f"plain {driver} + sha256, chain only", f"plain {driver} + sha256 + Ed25519, same checks (floor)"
    agentops, cli = "agentops service.audit_verify()", "`agentops audit verify` (subprocess)"
    cases = {chain: plain.verify_chain, floor: lambda: plain.verify_all(checkpoints.public_pem(public), cp_file),
             agentops: service.audit_verify}
    if not args.no_cli:
        cases[cli] = cli_verify(url, project, tmp)
    got = rounds(cases, reps)
    (chain_s, (ok_chain, _, _)), (floor_s, (ok, count, _)) = got[chain], got[floor]
    verify_s, report = got[agentops]
    assert ok_chain and ok and count == n and report.ok and report.count == n, (ok, count, report)
    assert report.values_checked == 2 * ((n + 7) // 8) + 3 * n // 8 and report.uncovered == n % args.checkpoint_every
    table.section(f"verify the intact ledger ({n:,} events)")
    table.row(chain, chain_s, n, floor_s)
    table.row(floor, floor_s, n, floor_s)
    table.row(agentops, verify_s, n, floor_s, f"{report.checkpoints} checkpoints, {report.values_checked:,} values")
    if cli in got:
        cli_s, (code, out) = got[cli]
        assert code == 0 and out["ok"] and out["count"] == n, out
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        table.row(cli + ", wall time", cli_s, n, floor_s, f"exit {code}, peak RSS {rss:,.0f} MB")
    parts = rounds({f"plain {driver}, read the events only": plain.read_only,
                    "Store.iter_ledger(), read the events only": lambda: sum(1 for _ in store.iter_ledger())}, 1)
    table.section("  where the time goes (1 run each)")
    for label, (seconds, _) in parts.items():
        table.row("  " + label, seconds, n, floor_s)

    # tamper -----------------------------------------------------------------------------------------------------
    seq, original = plain.one("SELECT seq, payload FROM ledger ORDER BY seq LIMIT 1 OFFSET ?", (n // 2,))
    edited = json.dumps({**json.loads(original), "state": "FAILED"}, sort_keys=True, separators=(",", ":"))
    plain.execute("UPDATE ledger SET payload = ? WHERE seq = ?", (edited, seq))
    found_s, report = rounds({agentops: service.audit_verify}, reps)[agentops]
    plain.execute("UPDATE ledger SET payload = ? WHERE seq = ?", (original, seq))
    assert report.first_bad_seq == seq and "edited" in (report.problem or ""), report
    table.section(f"tamper: payload at seq={seq:,} (the middle) edited; time to name that row")
    table.row(agentops, found_s, report.count, floor_s, f"first bad seq={report.first_bad_seq}: edited")

    cut = [plain.one("SELECT * FROM ledger WHERE seq = ?", (n - i,)) for i in range(10)]
    plain.execute("DELETE FROM ledger WHERE seq > ?", (n - 10,))
    cut_s, report = rounds({agentops: service.audit_verify}, reps)[agentops]
    for row in cut:
        plain.execute(f"INSERT INTO ledger ({COLUMNS}) VALUES ({', '.join('?' * len(row))})", row)
    assert report.missing is not None and report.missing[0] == n - 9, report
    table.section("tamper: the last 10 events cut off; time to name the missing range")
    table.row(agentops, cut_s, report.count, floor_s, f"missing {report.missing[0]}..{report.missing[1]}")

    # append -----------------------------------------------------------------------------------------------------
    m = args.appends
    table.section(f"append {m:,} events onto the {n:,}-event ledger; variants take turns")
    cursor = [n]

    def batch() -> list[Event]:
        """Events of runs without rows: their digests are dropped, as for events that bind nothing."""
        cursor[0] += m
        events = make_events(cursor[0] - m, m, time.time())
        for ev in events:
            ev.payload = {k: v for k, v in ev.payload.items() if not k.endswith("_digest")}
        return events

    def one_per_txn(append: Callable[[list[Event]], None]) -> float:
        events = batch()
        t0 = time.perf_counter()
        for ev in events:
            append([ev])
        return time.perf_counter() - t0

    def all_at_once(append: Callable[[list[Event]], None]) -> float:
        events = batch()
        t0 = time.perf_counter()
        append(events)
        return time.perf_counter() - t0

    variants = (("plain, 1 event per transaction", one_per_txn, plain.append),
                ("agentops Store.append_events, 1 event per call", one_per_txn, store.append_events),
                (f"plain, {m:,} events in one transaction", all_at_once, plain.append),
                (f"agentops Store.append_events, {m:,} events in one call", all_at_once, store.append_events))
    samples: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    for _ in range(reps):
        for label, shape, append in variants:
            samples[label].append(shape(append))
    medians = [statistics.median(v) for v in samples.values()]
    for i, label in enumerate(samples):
        table.row(label, medians[i], m, medians[i - i % 2])
    table.print()

    final = service.audit_verify()
    ratio = verify_s / floor_s
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"after the appends (agentops and plain interleaved on one chain): {final.line()}")
    print(f"target: audit verify within x{TARGET_RATIO} of the plain floor doing the same checks: {verdict} "
          f"(x{ratio:.2f}; x{verify_s / chain_s:.2f} of the chain-only floor)")
    assert final.ok and final.count == n + 4 * reps * m, final

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(service.audit_verify)
        print("\ncProfile of one service.audit_verify(), top 15 by cumulative time:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)

    plain.close()
    if not plain.is_sqlite:
        from sqlalchemy import text

        with store.write() as conn:
            for table_name in ("ledger", "ledger_checkpoints", "step_runs", "flow_runs"):
                conn.execute(text(f"TRUNCATE {table_name} RESTART IDENTITY"))
            conn.execute(text("UPDATE ledger_head SET seq = 0, hash = :g"), {"g": "0" * 64})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="ledger size for verify (default 1,000,000)")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="events per signed checkpoint (1000)")
    parser.add_argument("--appends", type=int, default=10_000, help="events per append measurement (default 10,000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement; medians (default 3)")
    parser.add_argument("--database-url", help="also run on this PostgreSQL scratch database (empty ledger)")
    parser.add_argument("--no-cli", action="store_true", help="skip the `agentops audit verify` subprocess rows")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary of one audit_verify()")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bench_backend("SQLite", f"sqlite:///{tmp}/ledger.db", args, tmp)
        if args.database_url:
            bench_backend("PostgreSQL", args.database_url, args, tmp)
        from agentops.db import close_stores

        close_stores()


if __name__ == "__main__":
    main()
