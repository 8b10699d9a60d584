"""DBOS's queue beside agentops' workers, run by bench/.venv-dbos/bin/python from bench/scale_out.py.

    python bench/_dbos_queue.py bench --url postgresql://... --procs 2 [--trivial 200] [--waits 12] [--poll 0.05]

One DBOS application on the PostgreSQL database the URL names (DBOS creates its system tables there): `--procs`
worker processes (each a launched DBOS with its own executor id, listening to the queue "bench", registered with
worker_concurrency 1, so one workflow at a time per process, like agentops' one-slot workers) and this process
(a launched DBOS that listens to no queue) enqueueing. It times the batch from the first enqueue to the last
SUCCESS (counted in dbos.workflow_status every 20 ms, as scale_out.py counts agentops' runs): trivial workflows
(one step returning 1), then workflows whose one step sleeps 200 ms. Prints one JSON line:
{"trivial": runs/s, "200ms": runs/s, "version": ..., "poll": ...}.

DBOS's queue is polled: each worker process looks for work every `polling_interval_sec` (DBOS' default is 1 s;
the benchmark passes agentops' own poll, 0.05 s) and takes at most worker_concurrency workflows per look.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version

import sqlalchemy as sa
from dbos import DBOS

QUEUE = "bench"
APP = "scalebench"


@DBOS.step()
def one() -> int:
    return 1


@DBOS.workflow()
def trivial() -> int:
    return one()


@DBOS.step()
def model_call() -> int:
    time.sleep(0.2)
    return 1


@DBOS.workflow()
def waits() -> int:
    return model_call()


def launch(url: str, executor_id: str, *, listen: list[str], poll: float) -> None:
    DBOS(config={"name": APP, "system_database_url": url, "executor_id": executor_id,
                 "application_version": "bench", "log_level": "WARNING"})
    DBOS.listen_queues(listen)
    DBOS.launch()
    DBOS.register_queue(QUEUE, worker_concurrency=1, polling_interval_sec=poll, on_conflict="always_update")


def worker(args: argparse.Namespace) -> None:
    launch(args.url, args.executor, listen=[QUEUE], poll=args.poll)
    print("ready", flush=True)
    while True:  # until the benchmark kills this process
        time.sleep(3600)


class Counter:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), pool_size=1)

    def scalar(self, sql: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(sql), {"queue": QUEUE}).scalar_one())

    def done(self) -> int:
        return self.scalar("SELECT count(*) FROM dbos.workflow_status WHERE queue_name = :queue "
                           "AND status = 'SUCCESS'")

    def executors(self) -> int:
        return self.scalar("SELECT count(DISTINCT executor_id) FROM dbos.workflow_status WHERE queue_name = :queue "
                           "AND status = 'SUCCESS'")


def batch(counter: Counter, workflow: object, count: int) -> float:
    before = counter.done()
    t0 = time.perf_counter()
    for _ in range(count):
        DBOS.enqueue_workflow(QUEUE, workflow)  # type: ignore[arg-type]
    deadline = time.time() + 600
    while counter.done() < before + count:
        if time.time() > deadline:
            raise RuntimeError("DBOS's workers did not finish the batch")
        time.sleep(0.02)
    return count / (time.perf_counter() - t0)


def bench(args: argparse.Namespace) -> None:
    launch(args.url, "enqueuer", listen=[], poll=args.poll)
    workers = [subprocess.Popen([sys.executable, __file__, "worker", "--url", args.url, "--poll", str(args.poll),
                                 "--executor", f"worker-{i}"], stdout=subprocess.PIPE, text=True,
                                start_new_session=True) for i in range(args.procs)]
    try:
        for proc in workers:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a DBOS worker did not start")
        counter = Counter(args.url)
        deadline = time.time() + 120
        while counter.executors() < args.procs:  # warm up until every worker process has run a workflow
            if time.time() > deadline:
                raise RuntimeError("not every DBOS worker took a workflow")
            batch(counter, trivial, args.procs)
        result = {"trivial": batch(counter, trivial, args.trivial),
                  "200ms": batch(counter, waits, args.waits * args.procs),
                  "version": version("dbos"), "poll": args.poll}
    finally:
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        DBOS.destroy()
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("bench", "worker"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--trivial", type=int, default=200)
    parser.add_argument("--waits", type=int, default=12)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--executor", default="worker")
    args = parser.parse_args()
    (worker if args.role == "worker" else bench)(args)


if __name__ == "__main__":
    main()
