"""Ledger benchmark: `agentops audit verify` over 1,000,000 events, tamper detection, and append throughput.

    .venv/bin/python bench/ledger.py [--events 1000000] [--appends 10000] [--repeats 3] [--no-cli] [--profile]
                                     [--database-url postgresql+psycopg://USER:PASSWORD@HOST/SCRATCH_DB]

Fills a fresh SQLite ledger (in a temp dir) with correctly chained events, built as the engine builds them
(ledger.Event, a mix of run/step states, model calls, policy verdicts and tool results) and written through
Store.append_events in batches of 50,000; the fill is setup and is not measured. Then times, as medians:
- verify: service.audit_verify() in-process and the `agentops audit verify` command (wall time, interpreter
  start included); "plain" is the floor: the same rows read with plain sqlite3 (or psycopg) and sha256 recomputed
  over the same bytes in a loop, with the same prev_hash check. Breakdown rows split reading from hashing;
- tamper: one payload edited in the middle of the ledger; how long each verifier takes to name that row;
- append: N events through Store.append_events one event per transaction (as a state change writes them) and
  all in one call, against plain sqlite3 (or psycopg) doing the same chained insert with no framework.
With --database-url the same runs on PostgreSQL too; give it an empty scratch database: its ledger table must be
empty, is filled with the events and is truncated at the end. The machine is shared and noisy: read ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agentops.core.ledger import Event, verify_rows  # noqa: E402

TARGET_S = 10.0
FILL_BATCH = 50_000
COLUMNS = "seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev_hash, hash"
SELECT_ALL = f"SELECT {COLUMNS} FROM ledger ORDER BY seq"
INSERT = ("INSERT INTO ledger (ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev_hash, "
          "hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
LAST_HASH = "SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1"
POLICY_HASH = hashlib.sha256(b"policies/default.yaml").hexdigest()


# -- events as the engine writes them ------------------------------------------------------------


def make_events(start: int, count: int, base_ts: float) -> list[Event]:
    """A deterministic mix of the ledger's real event shapes, 8 events per run."""
    events = []
    for i in range(start, start + count):
        run_id, kind, ts = f"{i // 8:032x}", i % 8, base_ts + i * 0.002
        step = {1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2}.get(kind)
        replicas = 2 + i % 13
        if kind in (0, 7):
            ev = Event("system:engine", "run.state", run_id=run_id, ts=ts,
                       payload={"state": "RUNNING" if kind == 0 else "COMPLETED", "worker": "bench-worker-1"})
        elif kind in (1, 3, 5):
            ev = Event("system:engine", "step.state", run_id=run_id, step_no=step, ts=ts,
                       payload={"state": "COMPLETED", "task": ("incident.model", "incident.policy",
                                                               "incident.tool:scale_deployment")[step]})
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


# -- plain Python: the floor -----------------------------------------------------------------------


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

    def rows(self) -> Iterator[tuple[Any, ...]]:
        if self.is_sqlite:
            yield from self.conn.execute(SELECT_ALL)
            return
        with self.conn.transaction(), self.conn.cursor(name="bench_ledger") as cur:
            cur.itersize = 50_000
            cur.execute(SELECT_ALL)
            yield from cur

    def one(self, statement: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        return self.conn.execute(self.sql(statement), params).fetchone()

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        if self.is_sqlite:
            self.conn.execute(statement, params)
        else:
            with self.conn.transaction():
                self.conn.execute(self.sql(statement), params)

    def close(self) -> None:
        self.conn.close()

    # the verifier: read, recompute sha256 over the same bytes, check each link
    def verify(self) -> tuple[bool, int, int | None]:
        sha256, expected, count = hashlib.sha256, "0" * 64, 0
        for seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev, digest in self.rows():
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

    def read_only(self) -> int:
        return sum(1 for _ in self.rows())

    # the appender: lock, last hash, JSON, sha256, insert; per event or all in one transaction
    def _chain(self, prev: str, events: list[Event]) -> list[tuple[Any, ...]]:
        out = []
        for ev in events:
            payload = json.dumps(ev.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            material = "\x1f".join((prev, repr(float(ev.ts)), ev.actor, ev.action, ev.run_id or "",
                                    "" if ev.step_no is None else str(ev.step_no), ev.approval_id or "",
                                    ev.policy_hash or "", payload))
            digest = hashlib.sha256(material.encode()).hexdigest()
            out.append((ev.ts, ev.actor, ev.action, ev.run_id, ev.step_no, ev.approval_id, payload, ev.policy_hash,
                        prev, digest))
            prev = digest
        return out

    def append(self, events: list[Event]) -> None:
        if self.is_sqlite:
            self.conn.execute("BEGIN IMMEDIATE")
            prev = self.conn.execute(LAST_HASH).fetchone()[0]
            self.conn.executemany(INSERT, self._chain(prev, events))
            self.conn.execute("COMMIT")
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(7246318)")
            prev = cur.execute(LAST_HASH).fetchone()[0]
            cur.executemany(self.sql(INSERT), self._chain(prev, events))


# -- measuring ---------------------------------------------------------------------------------------


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


def use_database(url: str) -> Any:
    from agentops.db import close_stores, open_store
    from agentops.settings import reset_settings

    os.environ["AGENTOPS_DATABASE_URL"] = url
    close_stores()
    reset_settings()
    return open_store()


def cli_verify(url: str, tmp: str) -> Callable[[], tuple[int, dict[str, Any]]]:
    script = Path(sys.executable).with_name("agentops")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "agentops.cli"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "AGENTOPS_DATABASE_URL": url,
           "AGENTOPS_PROJECT_DIR": str(ROOT)}

    def run() -> tuple[int, dict[str, Any]]:
        done = subprocess.run([*command, "audit", "verify", "--json"], cwd=tmp, env=env, capture_output=True,
                              text=True)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"agentops audit verify failed: {done.stderr.strip()}")
        return done.returncode, json.loads(done.stdout)

    return run


def fill(store: Any, n: int) -> float:
    t0 = time.perf_counter()
    base_ts = time.time() - 30 * 86400
    for start in range(0, n, FILL_BATCH):
        store.append_events(make_events(start, min(FILL_BATCH, n - start), base_ts))
    return time.perf_counter() - t0


class Table:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.lines.append(title)

    def row(self, label: str, seconds: float, events: int | None, plain_s: float | None, note: str = "") -> None:
        rate = f"{events / seconds:>12,.0f}" if events else f"{'':>12}"
        ratio = f"x{seconds / plain_s:.2f}" if plain_s else ""
        self.lines.append(f"  {label:<58} {seconds:>9.3f} {rate} {ratio:>9}  {note}".rstrip())

    def print(self) -> None:
        print(f"  {'':<58} {'median s':>9} {'events/s':>12} {'vs plain':>9}")
        print("\n".join(self.lines))
        self.lines.clear()


def bench_backend(name: str, url: str, args: argparse.Namespace, tmp: str) -> None:
    from agentops import service

    store = use_database(url)
    if store.ledger_count():
        sys.exit(f"{name}: the ledger at {url} is not empty; give an empty scratch database")
    n, reps = args.events, args.repeats
    fill_s = fill(store, n)
    plain = Plain(url)
    table = Table()
    print(f"\n{name}: {n:,} events, filled in {fill_s:.1f} s through Store.append_events, "
          f"{FILL_BATCH:,} per call (setup, not measured); medians of {reps}")

    # verify ---------------------------------------------------------------------------------------
    floor, agentops, cli = "plain floor", "agentops service.audit_verify()", "`agentops audit verify` (subprocess)"
    cases = {floor: plain.verify, agentops: service.audit_verify}
    if not args.no_cli:
        cases[cli] = cli_verify(url, tmp)
    got = rounds(cases, reps)
    (floor_s, (ok, count, _)), (verify_s, report) = got[floor], got[agentops]
    assert ok and count == n and report.ok and report.count == n, (ok, count, report)
    table.section(f"verify the intact ledger ({n:,} events)")
    driver = "sqlite3" if plain.is_sqlite else "psycopg"
    table.row(f"plain {driver}, sha256 per row, same checks (floor)", floor_s, n, floor_s)
    table.row(agentops, verify_s, n, floor_s, report.line())
    if cli in got:
        cli_s, (code, out) = got[cli]
        assert code == 0 and out["ok"] and out["count"] == n, out
        table.row(cli + ", wall time", cli_s, n, floor_s, f"exit {code}")
    parts = rounds({f"plain {driver}, read rows only": plain.read_only,
                    "Store.iter_ledger(), read rows only": lambda: sum(1 for _ in store.iter_ledger()),
                    "ledger.verify_rows() over the plain rows": lambda: verify_rows(plain.rows())}, 1)
    table.section("  where the time goes (1 run each)")
    for label, (seconds, _) in parts.items():
        table.row("  " + label, seconds, n, floor_s)

    # tamper -----------------------------------------------------------------------------------------
    seq, original = plain.one("SELECT seq, payload FROM ledger ORDER BY seq LIMIT 1 OFFSET ?", (n // 2,))
    edited = json.dumps({**json.loads(original), "state": "FAILED"}, sort_keys=True, separators=(",", ":"))
    plain.execute("UPDATE ledger SET payload = ? WHERE seq = ?", (edited, seq))
    got = rounds(cases, reps)
    plain.execute("UPDATE ledger SET payload = ? WHERE seq = ?", (original, seq))
    (floor_t, (ok, count, bad)), (found_s, report) = got[floor], got[agentops]
    assert not ok and bad == seq, (ok, bad)
    assert report.first_bad_seq == seq and "edited" in (report.problem or ""), report
    table.section(f"tamper: payload at seq={seq:,} (the middle) edited to state FAILED; time to name that row")
    table.row(floor, floor_t, count, floor_t, f"first bad seq={bad}")
    table.row(agentops, found_s, report.count, floor_t, f"first bad seq={report.first_bad_seq}: edited")
    if cli in got:
        cli_t, (code, out) = got[cli]
        assert code == 1 and out["first_bad_seq"] == seq, out
        table.row(cli + ", wall time", cli_t, out["count"], floor_t, f"exit {code}")

    # append -----------------------------------------------------------------------------------------
    m = args.appends
    table.section(f"append {m:,} events onto the {n:,}-event ledger; variants take turns")
    cursor = [n]

    def batch() -> list[Event]:
        cursor[0] += m
        return make_events(cursor[0] - m, m, time.time())

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
    verdict = "met" if verify_s < TARGET_S else "MISSED"
    print(f"after the appends (agentops and plain interleaved on one chain): {final.line()}")
    print(f"target: verify {n:,} events in under {TARGET_S:.0f} s: {verdict} ({verify_s:.2f} s in-process)")
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
            conn.execute(text("TRUNCATE ledger RESTART IDENTITY"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="ledger size for verify (default 1,000,000)")
    parser.add_argument("--appends", type=int, default=10_000, help="events per append measurement (default 10,000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement; medians (default 3)")
    parser.add_argument("--database-url", help="also run on this PostgreSQL scratch database (empty ledger)")
    parser.add_argument("--no-cli", action="store_true", help="skip the `agentops audit verify` subprocess rows")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary of one audit_verify()")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AGENTOPS_PROJECT_DIR"] = str(ROOT)
        bench_backend("SQLite", f"sqlite:///{tmp}/ledger.db", args, tmp)
        if args.database_url:
            bench_backend("PostgreSQL", args.database_url, args, tmp)
        from agentops.db import close_stores

        close_stores()


if __name__ == "__main__":
    main()
