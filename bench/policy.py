"""Policy benchmark: the cost of one policy step, with its atomic rate count, next to the bare evaluation.

    .venv/bin/python bench/policy.py               # --calls 5000 --history 100000, SQLite in a temp dir
    .venv/bin/python bench/policy.py --url postgresql+psycopg://...   # the same on PostgreSQL

The project's default policy (policies/default.yaml, checked against tools/) decides `scale_deployment`
calls: constraints, a typed `when` condition and a rate limit of 3 an hour per deployment. Rows:

* evaluate: constraints and conditions only (no rate limit counted)
* evaluate + take_rate, allowed: a deployment with room left (count, then record the use), one transaction
* evaluate + take_rate, refused: a deployment whose 3 uses are spent (count, nothing recorded)
* evaluate + take_rate, replayed: the same policy step again (found by its use id)
* screen (policy step body): whitelist, the tool's pydantic schema, evaluate, take_rate
* plain sqlite3 (SQLite only): the same BEGIN IMMEDIATE, count and insert on a bare connection, the floor

The rate table starts with --history old uses of other deployments, so the count runs on a used index.
Target: the policy step under 1 ms on SQLite (median); the machine is shared, so read p99 as noise-prone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MS = 1.0


def measure(fn: Callable[[int], object], calls: int) -> tuple[float, float, float]:
    """Median, p90 and p99 of one call, in ms (a short warm-up first)."""
    for i in range(min(200, calls)):
        fn(-1 - i)
    times = []
    for i in range(calls):
        start = time.perf_counter_ns()
        fn(i)
        times.append((time.perf_counter_ns() - start) / 1e6)
    times.sort()
    return statistics.median(times), times[int(0.9 * len(times))], times[min(len(times) - 1, int(0.99 * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--history", type=int, default=100_000, help="old rate uses written before measuring")
    parser.add_argument("--url", default=None, help="a database URL (default: SQLite in a temporary directory)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="agentops-bench-policy-"))
    url = args.url or f"sqlite:///{tmp / 'agentops.db'}"
    os.environ["AGENTOPS_PROJECT_DIR"] = str(ROOT)
    os.environ["AGENTOPS_DATABASE_URL"] = url

    from agentops.db import open_store
    from agentops.engine.toolkit import load_tools
    from agentops.governance.policy import load_project_policy, project_tool_types
    from agentops.governance.screening import StoreRateCounter, screen

    store = open_store(url)
    tools = load_tools(ROOT)
    policy = load_project_policy(ROOT, tools=project_tool_types(ROOT))
    rate = StoreRateCounter(store)
    run = f"bench{time.time_ns()}"
    old = time.time() - 7200
    with store._write_sql() as tx:  # the history, in one transaction
        tx.execute_many("INSERT INTO rate_events (key, ts, use_id) VALUES (:key, :ts, NULL)",
                        [{"key": f"project:scale_deployment:name=old-{i % 5000}", "ts": old + i * 1e-3}
                         for i in range(args.history)])
    for _ in range(3):
        policy.evaluate("scale_deployment", {"name": "full", "replicas": 4}, rate=rate)
    whitelist = {"scale_deployment": tools["scale_deployment"]}

    def bare(i: int) -> object:
        return policy.evaluate("scale_deployment", {"name": "web-app", "replicas": 4})

    def allowed(i: int) -> object:
        verdict = policy.evaluate("scale_deployment", {"name": f"dep-{run}-{i}", "replicas": 4}, rate=rate,
                                  use_id=f"{run}:a{i}")
        assert verdict.verdict == "allow", verdict
        return verdict

    def refused(i: int) -> object:
        verdict = policy.evaluate("scale_deployment", {"name": "full", "replicas": 4}, rate=rate, use_id=f"{run}:r{i}")
        assert verdict.rule == "tools.scale_deployment.rate_limit", verdict
        return verdict

    def replayed(i: int) -> object:
        return policy.evaluate("scale_deployment", {"name": "full", "replicas": 4}, rate=rate,
                               use_id=f"{run}:a{abs(i) % 100}")

    def screened(i: int) -> object:
        found = screen("scale_deployment", {"name": f"scr-{run}-{i}", "replicas": 4}, whitelist=whitelist,
                       policy=policy, store=store, use_id=f"{run}:s{i}")
        assert found.status == "allow", found
        return found

    def plain(i: int) -> object:
        raw = plain_conn
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("SELECT COUNT(*) FROM (SELECT 1 FROM rate_events WHERE key = ? AND ts >= ? LIMIT 3)",
                    (f"plain-{run}-{i}", time.time() - 3600)).fetchone()
        raw.execute("INSERT INTO rate_events (key, ts, use_id) VALUES (?, ?, ?)", (f"plain-{run}-{i}", time.time(),
                                                                                   f"{run}:p{i}"))
        raw.execute("COMMIT")
        return None

    rows = [("evaluate (no rate count)", bare), ("evaluate + take_rate, allowed", allowed),
            ("evaluate + take_rate, refused", refused), ("evaluate + take_rate, replayed", replayed),
            ("screen: whitelist + schema + policy", screened)]
    if url.startswith("sqlite"):
        from agentops.db.sql import connect_sqlite, sqlite_path

        plain_conn = connect_sqlite(sqlite_path(url))
        rows.append(("plain sqlite3: BEGIN IMMEDIATE, count, insert", plain))
    dialect = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    print(f"policy step on {dialect}, {args.calls} calls per row, {args.history} old rate uses in the table "
          f"(target: under {TARGET_MS:g} ms)\n")
    print(f"{'measured':<46} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8}  {'vs evaluate':>11}")
    base = None
    for label, fn in rows:
        median, p90, p99 = measure(fn, args.calls)
        base = base or median
        print(f"{label:<46} {median:>10.3f} {p90:>8.3f} {p99:>8.3f}  {median / base:>10.1f}x")


if __name__ == "__main__":
    main()
