"""The benchmark workloads, one script per framework, each run inside its own interpreter/venv.

Each prints one JSON line: {"framework", "per_step_ms", "concurrent_200x50ms_s"}.
Usage: python _workloads.py FRAMEWORK DB_DIR
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPEATS = 5


def per_step(run_flow) -> float:  # type: ignore[no-untyped-def]
    """(t(1000 steps) - t(100 steps)) / 900, median over repeats, in ms."""
    run_flow(10)  # warm up
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        run_flow(100)
        t100 = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_flow(1000)
        t1000 = time.perf_counter() - t0
        samples.append((t1000 - t100) / 900 * 1000)
    return statistics.median(samples)


def concurrent(run_fanout) -> float:  # type: ignore[no-untyped-def]
    run_fanout(10)
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        run_fanout(200)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def plain(db_dir: Path) -> dict:
    def noop() -> None:
        return None

    def run_flow(n: int) -> None:
        for _ in range(n):
            noop()

    def sleepy(i: int) -> int:
        time.sleep(0.05)
        return i

    pool = ThreadPoolExecutor(256)

    def fanout(n: int) -> None:
        list(pool.map(sleepy, range(n)))

    return {"per_step_ms": per_step(run_flow), "concurrent_200x50ms_s": concurrent(fanout)}


def agentops_(db_dir: Path) -> dict:
    import os

    os.environ["AGENTOPS_DATABASE_URL"] = f"sqlite:///{db_dir / 'agentops.db'}"
    from agentops import flow, task

    @task
    def noop() -> None:
        return None

    @flow
    def steps(n: int) -> None:
        for _ in range(n):
            noop()

    @task
    def sleepy(i: int) -> int:
        time.sleep(0.05)
        return i

    @flow
    def fanout(n: int) -> int:
        return len([f.result() for f in sleepy.map(range(n))])

    return {"per_step_ms": per_step(lambda n: steps(n)), "concurrent_200x50ms_s": concurrent(lambda n: fanout(n))}


def dbos_(db_dir: Path) -> dict:
    from dbos import DBOS

    DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{db_dir / 'dbos.sqlite'}"})
    DBOS.launch()

    @DBOS.step()
    def noop() -> None:
        return None

    @DBOS.workflow()
    def steps(n: int) -> None:
        for _ in range(n):
            noop()

    @DBOS.step()
    def sleepy(i: int) -> int:
        time.sleep(0.05)
        return i

    pool = ThreadPoolExecutor(256)

    @DBOS.workflow()
    def one(i: int) -> int:
        return sleepy(i)

    def fanout(n: int) -> None:
        handles = [DBOS.start_workflow(one, i) for i in range(n)]
        [h.get_result() for h in handles]

    result = {"per_step_ms": per_step(steps), "concurrent_200x50ms_s": concurrent(fanout)}
    pool.shutdown()
    return result


def prefect_(db_dir: Path) -> dict:
    import os

    os.environ.setdefault("PREFECT_API_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{db_dir / 'prefect.db'}")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    # Its ephemeral server answers 503 while SQLite is locked (PrefectHQ/prefect#18934); the client retries those.
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "30")
    from prefect import flow, task

    @task
    def noop() -> None:
        return None

    @flow
    def steps(n: int) -> None:
        for _ in range(n):
            noop()

    @task
    def sleepy(i: int) -> int:
        time.sleep(0.05)
        return i

    @flow
    def fanout(n: int) -> None:
        [f.result() for f in sleepy.map(range(n))]

    global REPEATS
    REPEATS = 3
    return {"per_step_ms": per_step(steps), "concurrent_200x50ms_s": concurrent(fanout)}


if __name__ == "__main__":
    name, db_dir = sys.argv[1], Path(sys.argv[2])
    runner = {"plain": plain, "agentops": agentops_, "dbos": dbos_, "prefect": prefect_}[name]
    print(json.dumps({"framework": name, **runner(db_dir)}))
