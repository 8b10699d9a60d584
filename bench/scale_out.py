"""Scale-out benchmark: runs per second through the polling worker, Celery on Redis and DBOS's queue, on PostgreSQL.

    .venv/bin/python bench/scale_out.py [--trivial 200] [--waits 12] [--paths polling,celery,dbos,recovery]

Starts a throwaway PostgreSQL and Redis (the test suite's helpers), then for 1, 2 and 4 worker processes (one run
at a time each) queues a batch of runs while the workers idle and times the batch from the first queued run to the
last completed: trivial runs (one step returning a number), and runs whose one step waits 200 ms (a model call),
where the machine's cores are not the limit. Then the dispatch latency through Celery (queued -> claimed, by the
database's timestamps) one run at a time.

DBOS's queue is measured the same way, in the same run and on the same PostgreSQL server (a database of its own),
by bench/_dbos_queue.py under bench/.venv-dbos (made by bench/setup_competitors.sh): DBOS worker processes with
the queue's worker_concurrency 1, at each polling interval in --dbos-polls.

Host recovery: two workers (polling, or Celery with the sweeper of `agentops scheduler`), a run whose one step
takes about 2 s, `kill -9` of the worker's whole process group mid-step, and the time from the kill to the step's
new attempt starting on the other worker (its step row's start), against the target: the stale interval plus 2 s.
The machine is shared and noisy: read ratios and medians rather than single numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.pg_server import PostgresServer  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

DBOS_PYTHON = ROOT / "bench" / ".venv-dbos" / "bin" / "python"

FLOWS = '''
import os, time
from agentops import flow, task


@task
def one() -> int:
    return 1


@flow
def trivial() -> int:
    return one()


@task
def model_call() -> int:
    time.sleep(0.2)
    return 1


@flow
def waits() -> int:
    return model_call()


@task
def long_step(mark: str) -> int:
    with open(mark, "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    time.sleep(2)
    return 1


@flow
def slow(mark: str) -> int:
    return long_step(mark)
'''

TARGETS = {"speedup_4_vs_1_for_200ms": 3.5, "polling_trivial_per_s": 300, "dispatch_p50_ms": 10,
           "recovery_over_stale_s": 2.0}
PROCS = (1, 2, 4)


def start_workers(mode: str, count: int, root: Path, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    args = ["worker", "--celery", "-c", "1"] if mode == "celery" else ["worker", "-c", "1"]
    return [agentops(args, root, env) for _ in range(count)]


def agentops(args: list[str], root: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "agentops.cli", *args], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)


def wait_ready(store: Any, service: Any, procs: int) -> None:
    """Queue trivial runs until each of the `procs` workers has completed one: they are all up, project loaded."""
    deadline = time.time() + 180
    while len({r.worker_id for r in store.list_runs(state="COMPLETED", limit=1000)}) < procs:
        if time.time() > deadline:
            raise RuntimeError("the workers did not start")
        run_ids = [service.start_run("trivial", {}) for _ in range(procs)]
        while any(store.get_run(r).state != "COMPLETED" for r in run_ids):
            if time.time() > deadline:
                raise RuntimeError("the workers did not start")
            time.sleep(0.05)


def batch(store: Any, service: Any, flow: str, count: int) -> float:
    """Runs per second for `count` queued runs of `flow`, first queued to last completed."""
    done_before = store.count_runs(state="COMPLETED")
    t0 = time.perf_counter()
    for _ in range(count):
        service.start_run(flow, {})
    while store.count_runs(state="COMPLETED") < done_before + count:
        time.sleep(0.02)
    return count / (time.perf_counter() - t0)


def dispatch_p50_ms(store: Any, service: Any, samples: int = 30) -> float:
    latencies = []
    for _ in range(samples):
        run_id = service.start_run("trivial", {})
        while (run := store.get_run(run_id)).state != "COMPLETED":
            time.sleep(0.005)
        latencies.append((run.started_at - run.created_at) * 1000)
    return statistics.median(latencies)


def use_database(url: str, root: Path, *, broker: str | None, extra: dict[str, str] | None = None) -> Any:
    """Point this process (and the workers it starts) at `url`; returns (env, store, service)."""
    env = {**os.environ, "AGENTOPS_PROJECT_DIR": str(root), "AGENTOPS_DATABASE_URL": url, **(extra or {})}
    env.pop("AGENTOPS_BROKER_URL", None)
    if broker:
        env["AGENTOPS_BROKER_URL"] = broker
    os.environ.clear()
    os.environ.update(env)
    from agentops import service
    from agentops.db import close_stores, open_store
    from agentops.settings import reset_settings

    close_stores()
    reset_settings()
    return env, open_store(), service


def throughput(mode: str, pg: PostgresServer, redis: RedisServer, root: Path, args: argparse.Namespace,
               results: dict[tuple[str, str, int], float]) -> float | None:
    dispatch = None
    for procs in PROCS:
        env, store, service = use_database(pg.create_database(f"b_{mode}_{procs}"), root,
                                           broker=redis.url if mode == "celery" else None)
        workers = start_workers(mode, procs, root, env)
        try:
            wait_ready(store, service, procs)
            results[(mode, "trivial", procs)] = batch(store, service, "trivial", args.trivial)
            results[(mode, "200ms", procs)] = batch(store, service, "waits", args.waits * procs)
            if mode == "celery" and procs == 1:
                dispatch = dispatch_p50_ms(store, service)
        finally:
            stop_workers(workers)
    return dispatch


def dbos_throughput(pg: PostgresServer, args: argparse.Namespace, poll: float,
                    results: dict[tuple[str, str, int], float]) -> str:
    version = "?"
    for procs in PROCS:
        url = pg.create_database(f"b_dbos_{str(poll).replace('.', '_')}_{procs}")
        done = subprocess.run([str(DBOS_PYTHON), str(ROOT / "bench" / "_dbos_queue.py"), "bench", "--url", url,
                               "--procs", str(procs), "--trivial", str(args.trivial), "--waits", str(args.waits),
                               "--poll", str(poll)], capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"bench/_dbos_queue.py failed: {done.stderr.strip()[-2000:]}")
        found = json.loads(done.stdout.strip().splitlines()[-1])
        mode = f"dbos {poll:g}s"
        results[(mode, "trivial", procs)] = found["trivial"]
        results[(mode, "200ms", procs)] = found["200ms"]
        version = found["version"]
    return version


def recovery(mode: str, pg: PostgresServer, redis: RedisServer, root: Path, work: Path, *, stale: float,
             trials: int) -> list[float]:
    """Seconds from kill -9 of the worker executing a ~2 s step to that step's new attempt on the other worker."""
    extra = {"AGENTOPS_STALE_AFTER_SECONDS": f"{stale:g}",
             "AGENTOPS_HEARTBEAT_SECONDS": f"{max(0.2, stale / 5):g}"}
    env, store, service = use_database(pg.create_database(f"b_recovery_{mode}"), root,
                                       broker=redis.url if mode == "celery" else None, extra=extra)
    workers = start_workers(mode, 2, root, env)
    if mode == "celery":  # the sweeper: the scheduler holding the lease
        workers.append(agentops(["scheduler", "--tick", "0.1"], root, env))
    times = []
    try:
        wait_ready(store, service, 2)
        for trial in range(trials):
            mark = work / f"recovery-{mode}-{trial}"
            run_id = service.start_run("slow", {"mark": str(mark)})
            deadline = time.time() + 120
            while not mark.exists() or not mark.read_text().strip():
                if time.time() > deadline:
                    raise RuntimeError("the slow run never started its step")
                time.sleep(0.01)
            pid = int(mark.read_text().split()[0])
            [doomed] = [w for w in workers if w.poll() is None and _in_group(pid, w.pid)]
            killed_at = time.time()
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait(30)
            while store.get_run(run_id).state != "COMPLETED":
                if time.time() > deadline + 120:
                    raise RuntimeError("the killed run was not recovered")
                time.sleep(0.05)
            [step] = store.steps_for_run(run_id)
            times.append(step.started_at - killed_at)
            workers.remove(doomed)
            workers.insert(0, start_workers(mode, 1, root, env)[0])  # two workers again for the next trial
            wait_ready(store, service, 2 + trial + 1)
    finally:
        stop_workers(workers)
    return times


def _in_group(pid: int, group: int) -> bool:
    try:
        return os.getpgid(pid) == group
    except ProcessLookupError:
        return False


def print_table(results: dict[tuple[str, str, int], float], modes: list[str]) -> None:
    print("runs per second on PostgreSQL, one run at a time per worker process")
    print(f"{'path':<12} {'work':<8} {'1 proc':>8} {'2 procs':>8} {'4 procs':>8} {'4 vs 1':>7}")
    for mode in modes:
        for work_kind in ("trivial", "200ms"):
            row = [results[(mode, work_kind, p)] for p in PROCS]
            print(f"{mode:<12} {work_kind:<8} {row[0]:>8.1f} {row[1]:>8.1f} {row[2]:>8.1f} {row[2] / row[0]:>6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trivial", type=int, default=200, help="trivial runs per batch")
    parser.add_argument("--waits", type=int, default=12, help="200 ms runs per worker process per batch")
    parser.add_argument("--paths", default="polling,celery,dbos,recovery", help="what to measure")
    parser.add_argument("--dbos-polls", default="0.05,0.01", help="DBOS queue polling intervals (s) to measure")
    parser.add_argument("--stale", type=float, default=5.0, help="AGENTOPS_STALE_AFTER_SECONDS for recovery")
    parser.add_argument("--trials", type=int, default=3, help="kills per worker kind for recovery")
    args = parser.parse_args()
    wanted = args.paths.split(",")
    pg, redis = PostgresServer(), RedisServer()
    pg.start()
    redis.start()
    work = Path(tempfile.mkdtemp(prefix="agentops-bench-scale-"))
    try:
        root = work / "project"
        (root / "flows").mkdir(parents=True)
        (root / "pyproject.toml").write_text('[project]\nname = "bench"\n')
        (root / "flows" / "bench.py").write_text(FLOWS)
        results: dict[tuple[str, str, int], float] = {}
        modes = [m for m in ("polling", "celery") if m in wanted]
        dispatch = None
        for mode in modes:
            dispatch = throughput(mode, pg, redis, root, args, results) or dispatch
        dbos_line = None
        if "dbos" in wanted:
            if DBOS_PYTHON.exists():
                for poll in (float(p) for p in args.dbos_polls.split(",")):
                    version = dbos_throughput(pg, args, poll, results)
                    modes.append(f"dbos {poll:g}s")
                dbos_line = (f"DBOS {version}: Queue(worker_concurrency=1, polling_interval_sec=...) per process, "
                             "the same PostgreSQL server")
            else:
                dbos_line = "DBOS: not installed (run bench/setup_competitors.sh)"
        recovered = {mode: recovery(mode, pg, redis, root, work, stale=args.stale, trials=args.trials)
                     for mode in ("polling", "celery") if "recovery" in wanted}
        print_table(results, modes)
        if dbos_line:
            print(dbos_line)
        if dispatch is not None:
            print(f"dispatch through Celery (queued -> claimed) p50: {dispatch:.1f} ms")
        if recovered:
            target = args.stale + TARGETS["recovery_over_stale_s"]
            print(f"host recovery, kill -9 mid-step -> the step's new attempt on another worker "
                  f"(AGENTOPS_STALE_AFTER_SECONDS={args.stale:g}, target < {target:g} s):")
            for mode, times in recovered.items():
                shown = ", ".join(f"{t:.2f}" for t in times)
                print(f"  {mode:<8} median {statistics.median(times):.2f} s (trials: {shown}) "
                      f"{'met' if statistics.median(times) < target else 'NOT met'}")
        print(f"targets: 200 ms runs, 4 vs 1 >= {TARGETS['speedup_4_vs_1_for_200ms']}x; polling trivial >= "
              f"{TARGETS['polling_trivial_per_s']}/s and no slower than DBOS; dispatch p50 < "
              f"{TARGETS['dispatch_p50_ms']} ms; recovery < stale interval + {TARGETS['recovery_over_stale_s']:g} s")
    finally:
        redis.close()
        pg.stop()


if __name__ == "__main__":
    main()
