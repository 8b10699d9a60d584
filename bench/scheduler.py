"""Scheduler benchmark: fire lag with 1,000 schedules, spread out and all at once.

    .venv/bin/python bench/scheduler.py

Fire lag is the time from a run's scheduled fire time to the moment its row is committed and visible
to workers. The scheduler runs in a thread against a fresh SQLite database, as `agentops serve` runs
it. "plain Python" is a heapq timer loop doing no I/O: the floor set by the OS and the interpreter.
Medians and tails over every fire in the window; the machine is shared and noisy.
"""

from __future__ import annotations

import heapq
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCHEDULES = 1000
WINDOW_S = 12.0
TARGET_LAG_S = 1.0


def quantiles(lags: list[float]) -> dict[str, float]:
    lags = sorted(lags)
    return {"fires": len(lags), "p50": statistics.median(lags), "p99": lags[int(0.99 * (len(lags) - 1))],
            "max": lags[-1]}


def plain_python_timers(interval: float, staggered: bool) -> dict[str, float]:
    start = time.time() + 0.5
    heap = [(start + (random.random() * interval if staggered else 0.0), i) for i in range(SCHEDULES)]
    heapq.heapify(heap)
    lags, stop_at = [], start + WINDOW_S
    while heap[0][0] < stop_at:
        due, i = heapq.heappop(heap)
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        lags.append(time.time() - due)
        heapq.heappush(heap, (due + interval, i))
    return quantiles(lags)


def agentops_scheduler(interval: float, staggered: bool) -> dict[str, float]:
    from agentops.db import close_stores, open_store
    from agentops.engine.project import load_project
    from agentops.governance.users import add_user
    from agentops.scheduling import schedules
    from agentops.scheduling.scheduler import Scheduler
    from agentops.settings import reset_settings

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AGENTOPS_DATABASE_URL"] = f"sqlite:///{tmp}/bench.db"
        os.environ["AGENTOPS_PROJECT_DIR"] = str(ROOT)
        close_stores()
        reset_settings()
        load_project()
        store = open_store()
        add_user(store, "bench", "admin", "bench-password")
        start = time.time() + 2.0
        for _ in range(SCHEDULES):
            sid = schedules.add_schedule("hello", interval_seconds=interval, user="bench", store=store)
            anchor = start + (random.random() * interval if staggered else 0.0)
            store.update_schedule(sid, {"created_at": anchor, "next_fire_at": anchor}, [])
        lags: list[float] = []
        fire_schedules = store.fire_schedules

        def timed_fire(fires):  # type: ignore[no-untyped-def]
            fired = set(fire_schedules(fires))
            committed = time.time()
            lags.extend(committed - run["scheduled_for"] for f in fires if f.schedule_id in fired for run in f.runs)
            return list(fired)

        store.fire_schedules = timed_fire  # type: ignore[method-assign]
        stop = threading.Event()
        thread = threading.Thread(target=Scheduler(store, "bench").run, args=(stop,))
        thread.start()
        time.sleep(start + WINDOW_S - time.time())
        stop.set()
        thread.join()
        close_stores()
        return quantiles(lags)


def main() -> None:
    random.seed(7)
    scenarios = [("1,000 schedules every 5 s, staggered", 5.0, True),
                 ("1,000 schedules every 10 s, same instant", 10.0, False)]
    print(f"fire lag in ms (target: under {TARGET_LAG_S * 1000:.0f} ms), {WINDOW_S:.0f} s window\n")
    print(f"{'scenario':<42} {'engine':<13} {'fires':>6} {'p50':>8} {'p99':>8} {'max':>8}  {'max vs target':>13}")
    for label, interval, staggered in scenarios:
        for engine, measure in (("plain Python", plain_python_timers), ("agentops", agentops_scheduler)):
            q = measure(interval, staggered)
            verdict = "met" if q["max"] < TARGET_LAG_S else "MISSED"
            print(f"{label:<42} {engine:<13} {q['fires']:>6} {q['p50'] * 1000:>8.1f} {q['p99'] * 1000:>8.1f} "
                  f"{q['max'] * 1000:>8.1f}  {verdict:>13}")
    print("\nDBOS and Prefect schedulers are not compared: both fire through their own servers or queues,"
          " so their lag is not measured the same way.")


if __name__ == "__main__":
    main()
