"""The durable engine: steps are checkpoints, replays never repeat completed work, states are recorded."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import agentops
from agentops import flow, get_run_logger, task
from agentops.core.states import State
from agentops.engine.runner import CREATED_EPOCH, RunOutcome, create_run, execute_run, resume_run
from agentops.errors import ParameterError, RunFailed

calls: dict[str, int] = {}
fail_switch = {"on": True}


def bump(name: str) -> int:
    calls[name] = calls.get(name, 0) + 1
    return calls[name]


@task
def t_extract(n: int) -> list[int]:
    bump("extract")
    return list(range(n))


@task
def t_fragile(items: list[int]) -> int:
    bump("fragile")
    if fail_switch["on"]:
        raise RuntimeError("downstream unavailable")
    return sum(items)


@flow
def etl(n: int = 4) -> int:
    items = t_extract(n)
    return t_fragile(items)


def test_flow_call_records_each_step_and_every_transition(store) -> None:
    fail_switch["on"] = False
    calls.clear()
    assert etl(n=5) == 10
    run = store.list_runs(flow="etl")[0]
    assert run.state == "COMPLETED"
    steps = store.steps_for_run(run.id)
    assert [(s.step_no, s.name, s.state, s.attempts) for s in steps] == [
        (1, "t_extract", "COMPLETED", 1), (2, "t_fragile", "COMPLETED", 1)]
    assert steps[0].inputs_digest and steps[0].duration_ms is not None and steps[0].output == "[0,1,2,3,4]"
    history = [(e.action, e.step_no, agentops.core.serialization.loads(e.payload)["state"])
               for e in store.search_ledger(run_id=run.id, ascending=True, limit=100)]
    assert history == [("run.state", None, "PENDING"), ("run.state", None, "RUNNING"),
                       ("step.state", 1, "RUNNING"), ("step.state", 1, "COMPLETED"),
                       ("step.state", 2, "RUNNING"), ("step.state", 2, "COMPLETED"),
                       ("run.state", None, "COMPLETED")]


def test_resumed_run_does_not_repeat_completed_steps(store) -> None:
    calls.clear()
    fail_switch["on"] = True
    with pytest.raises(RunFailed, match="downstream unavailable"):
        etl(n=3)
    run = store.list_runs(flow="etl")[0]
    assert run.state == "FAILED" and calls == {"extract": 1, "fragile": 1}
    fail_switch["on"] = False
    outcome = resume_run(run.id, store=store)
    assert outcome.state == State.COMPLETED and outcome.result == 3
    assert calls == {"extract": 1, "fragile": 2}, "the completed extract step must not run again"


@task
def t_step_a() -> str:
    return "a"


@task
def t_step_b() -> str:
    return "b"


path_switch = {"use_b": False}


@flow
def branching() -> str:
    first = t_step_a()
    if path_switch["use_b"]:
        return t_step_b()
    raise RuntimeError(f"stop after {first}")


def test_replay_that_calls_a_different_task_fails_naming_both(store) -> None:
    path_switch["use_b"] = False
    with pytest.raises(RunFailed):
        branching()
    run = store.list_runs(flow="branching")[0]

    @task(name="t_step_a")
    def impostor() -> str:
        return "x"

    # Step 1 is t_step_a; now make step 2 differ from nothing recorded, then force a mismatch at step 1.
    original = t_step_a.name
    t_step_a.name = "renamed_task"
    try:
        outcome = resume_run(run.id, store=store)
    finally:
        t_step_a.name = original
    assert outcome.state == State.FAILED
    assert "step 1 was recorded as task 't_step_a'" in (outcome.error or "")
    assert "'renamed_task'" in (outcome.error or "")


attempt_times: list[float] = []


@task(retries=3, retry_delay_seconds=0.05, retry_backoff=2.0)
def t_flaky() -> str:
    attempt_times.append(time.monotonic())
    if len(attempt_times) < 3:
        raise ConnectionError(f"attempt {len(attempt_times)} failed")
    return "ok"


@flow
def flaky_flow() -> str:
    return t_flaky()


def test_retries_back_off_exponentially_and_record_attempts(store) -> None:
    attempt_times.clear()
    assert flaky_flow() == "ok"
    gaps = [b - a for a, b in itertools.pairwise(attempt_times)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1, gaps
    run = store.list_runs(flow="flaky_flow")[0]
    step = store.steps_for_run(run.id)[0]
    assert step.state == "COMPLETED" and step.attempts == 3
    states = [agentops.core.serialization.loads(e.payload)["state"] for e in store.search_ledger(
        run_id=run.id, action="step.state", ascending=True)]
    assert states.count("AWAITING_RETRY") == 2


@task(timeout_seconds=0.2)
def t_slow() -> str:
    time.sleep(30)  # a timeout that did not fire would return, and the run would complete
    return "too late"


@flow
def timeout_flow() -> str:
    return t_slow()


def test_task_timeout_fails_the_step_with_a_clear_error(store) -> None:
    with pytest.raises(RunFailed, match=r"exceeded its timeout of 0\.2s"):
        timeout_flow()
    step = store.steps_for_run(store.list_runs(flow="timeout_flow")[0].id)[0]
    assert step.state == "FAILED" and "TaskTimeoutError" in (step.error or "")


@task(cache_key_fn=lambda ctx, args: str(args["x"]), cache_ttl_seconds=0.6)
def t_expensive(x: int) -> int:
    bump("expensive")
    return x * 10


@flow
def cached_flow(x: int) -> int:
    return t_expensive(x)


def test_cache_is_shared_across_runs_until_its_ttl(store) -> None:
    calls.clear()
    assert cached_flow(x=2) == 20
    assert cached_flow(x=2) == 20
    assert calls["expensive"] == 1
    assert cached_flow(x=3) == 30
    assert calls["expensive"] == 2
    time.sleep(0.7)
    assert cached_flow(x=2) == 20
    assert calls["expensive"] == 3


FAN_OUT = 40
all_running = threading.Barrier(FAN_OUT, timeout=60)


@task
def t_sleepy(i: int) -> int:
    all_running.wait()  # breaks (and fails the step) unless all 40 run at the same time
    return i * i


@flow
def fan_out(n: int) -> list[int]:
    futures = t_sleepy.map(range(n))
    return [f.result() for f in futures]


def test_map_runs_tasks_concurrently_with_step_numbers_in_call_order(store) -> None:
    all_running.reset()
    assert fan_out(n=FAN_OUT) == [i * i for i in range(FAN_OUT)]
    steps = store.steps_for_run(store.list_runs(flow="fan_out")[0].id)
    assert [s.step_no for s in steps] == list(range(1, 41))
    assert all(s.inputs == f'{{"i":{s.step_no - 1}}}' for s in steps)


@task
async def t_async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 2


@flow
async def async_flow(x: int) -> int:
    a = await t_async_double(x)
    return await t_async_double(a)


def test_async_flows_and_tasks_are_recorded_steps(store) -> None:
    run_id = create_run(async_flow, {"x": 3}, queue=False, store=store, worker_id="w")
    outcome = execute_run(run_id, worker_id="w", epoch=CREATED_EPOCH, store=store)
    assert outcome.result == 12
    assert [s.name for s in store.steps_for_run(run_id)] == ["t_async_double", "t_async_double"]


def test_async_flows_run_from_a_thread_whose_event_loop_is_running(store) -> None:
    """As in Jupyter or under Playwright's sync API: asyncio.run() alone would refuse to start."""
    run_id = create_run(async_flow, {"x": 5}, queue=False, store=store, worker_id="w")

    async def caller() -> RunOutcome:
        return execute_run(run_id, worker_id="w", epoch=CREATED_EPOCH, store=store)

    with ThreadPoolExecutor(max_workers=1) as fresh_thread:  # this thread may already run a loop (Playwright's)
        outcome = fresh_thread.submit(asyncio.run, caller()).result()
    assert (outcome.state, outcome.result) == (State.COMPLETED, 20)
    assert [s.name for s in store.steps_for_run(run_id)] == ["t_async_double", "t_async_double"]


def test_an_interrupt_cancels_a_coroutine_running_on_a_helper_thread() -> None:
    import signal

    from agentops.core.coroutines import run_coroutine

    cancelled = threading.Event()

    async def long_wait() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def from_a_running_loop() -> None:
        run_coroutine(long_wait())

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            try:
                asyncio.get_running_loop()  # Playwright's, when the e2e tests ran first in this process
                run_coroutine(long_wait())
            except RuntimeError:
                asyncio.run(from_a_running_loop())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert cancelled.is_set(), "the coroutine on the helper thread was cancelled, not left running"


@task(log_prints=True)
def t_chatty() -> int:
    get_run_logger().info("computed %d rows", 42)
    print("a printed line")
    return 1


@flow
def chatty_flow() -> int:
    get_run_logger().warning("starting")
    return t_chatty()


def test_logger_lines_and_prints_are_stored_with_their_step(store) -> None:
    chatty_flow()
    run = store.list_runs(flow="chatty_flow")[0]
    logs = [(line.step_no, line.level, line.message) for line in store.logs_for_run(run.id)]
    assert (None, "WARNING", "starting") in logs
    assert (1, "INFO", "computed 42 rows") in logs
    assert (1, "INFO", "a printed line") in logs


@flow
def typed_flow(count: int, label: str = "x") -> str:
    return label * count


def test_bad_or_missing_parameters_fail_clearly_and_write_nothing(store) -> None:
    with pytest.raises(ParameterError, match="parameter 'count': Input should be a valid integer"):
        create_run(typed_flow, {"count": "many"}, store=store)
    with pytest.raises(ParameterError, match="parameter 'count' is required"):
        create_run(typed_flow, {}, store=store)
    with pytest.raises(ParameterError, match="unknown parameter 'colour'"):
        create_run(typed_flow, {"count": 1, "colour": "red"}, store=store)
    assert store.count_runs() == 0 and store.ledger_count() == 0


@flow
def finite_flow(ratio: float = 1.0, extra: dict | None = None) -> float:
    return ratio


def test_nan_and_infinities_are_refused_wherever_they_sit_in_the_parameters(store) -> None:
    """Stored as JSON they would silently turn to null, so a run would start with another value than was asked."""
    for params, where in [({"ratio": float("nan")}, "ratio"), ({"ratio": float("-inf")}, "ratio"),
                          ({"extra": {"a": [1.0, float("inf")]}}, "extra.a[1]")]:
        with pytest.raises(ParameterError, match=rf"parameter '{re.escape(where)}' is NaN or an infinity"):
            create_run(finite_flow, params, store=store)
    assert store.count_runs() == 0 and store.ledger_count() == 0
    create_run(finite_flow, {"ratio": 1e308, "extra": {"a": [-0.0]}}, store=store)
    assert store.count_runs() == 1


class Opaque:
    pass


@task
def t_returns_opaque() -> object:
    return Opaque()


@flow
def opaque_flow() -> object:
    return t_returns_opaque()


def test_unserialisable_task_result_fails_the_step_clearly(store) -> None:
    with pytest.raises(RunFailed, match="t_returns_opaque' returned a result that cannot be stored"):
        opaque_flow()
    step = store.steps_for_run(store.list_runs(flow="opaque_flow")[0].id)[0]
    assert step.state == "FAILED"


def test_queued_runs_are_claimed_once_each_by_concurrent_workers(store) -> None:
    from agentops.engine.worker import Worker

    fail_switch["on"] = False
    ids = [create_run(etl, {"n": i}, store=store) for i in range(12)]
    workers = [Worker(store, concurrency=2, poll_seconds=0.01) for _ in range(3)]
    threads = [threading.Thread(target=w.run, kwargs={"burst": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(w.executed for w in workers) == 12
    runs = {r.id: r for r in store.list_runs(limit=100)}
    assert all(runs[i].state == "COMPLETED" for i in ids)
    claims = [e for e in store.search_ledger(action="run.state", limit=1000)
              if agentops.core.serialization.loads(e.payload)["state"] == "RUNNING"]
    assert len(claims) == 12, "each run is claimed exactly once"


def test_a_worker_with_a_free_slot_claims_the_next_run_without_waiting_its_poll_interval(store) -> None:
    """A finishing execution wakes the loop: with one slot and an hour-long poll interval, a burst still drains
    every queued run (before the fix it sat out the interval after each claim and stopped at max_seconds)."""
    from agentops.engine.worker import Worker

    fail_switch["on"] = False
    ids = [create_run(etl, {"n": i}, store=store) for i in range(5)]
    worker = Worker(store, concurrency=1, poll_seconds=3600)
    done = threading.Thread(target=worker.run, kwargs={"burst": True, "max_seconds": 60})
    done.start()
    done.join(120)
    assert not done.is_alive()
    assert worker.executed == 5
    assert {store.get_run(i).state for i in ids} == {"COMPLETED"}  # type: ignore[union-attr]


def test_an_idle_worker_is_woken_by_the_commit_that_queues_a_run(store) -> None:
    """With an hour-long poll interval, a run queued while the worker idles is still claimed: the transaction that
    queues it NOTIFYs (PostgreSQL, delivered on commit) or, once committed, wakes the local sockets (SQLite)."""
    from agentops.engine.worker import Worker

    fail_switch["on"] = False
    worker = Worker(store, concurrency=2, poll_seconds=3600)
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 120})
    thread.start()
    try:
        deadline = time.time() + 30
        while not _listening(store):
            assert time.time() < deadline, "the worker never listened"
            time.sleep(0.05)
        time.sleep(0.2)  # the loop is in its hour-long wait
        queued = create_run(etl, {"n": 3}, store=store)
        deadline = time.time() + 60
        while store.get_run(queued).state != "COMPLETED":  # type: ignore[union-attr]
            assert time.time() < deadline, "the queued run was not claimed"
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(60)
    assert not thread.is_alive()
    if store.is_sqlite:
        assert list(store._wake_dir.iterdir()) == [], "the worker's socket is gone with it"


def _listening(store) -> bool:  # type: ignore[no-untyped-def]
    if store.is_sqlite:
        return store._wake_dir.is_dir() and any(store._wake_dir.iterdir())
    import sqlalchemy as sa

    with store.engine.connect() as probe:
        return bool(probe.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' "
                                          "AND datname = current_database()")).scalar())


def test_an_execution_that_raises_frees_its_slot_and_its_run_is_recovered(store) -> None:
    """An execution that dies with an exception (here, its database write) does not stall the worker's loop;
    its run is left RUNNING without heartbeats, and housekeeping recovers it as CRASHED and runs it again."""
    from agentops.engine import worker as worker_module

    fail_switch["on"] = False
    first, second = (create_run(etl, {"n": i}, store=store) for i in (1, 2))
    broken = {"left": 1}
    real_execute = worker_module.execute_run

    def execute_once_broken(run_id: str, **kwargs: object) -> RunOutcome:
        if broken["left"]:
            broken["left"] -= 1
            raise OSError("the database connection dropped")
        return real_execute(run_id, **kwargs)  # type: ignore[arg-type]

    worker_module.execute_run = execute_once_broken  # type: ignore[assignment]
    try:
        worker = worker_module.Worker(store, concurrency=1, poll_seconds=0.01, stale_after=0.3)
        thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 30})
        thread.start()
        deadline = time.time() + 30
        while {store.get_run(i).state for i in (first, second)} != {"COMPLETED"} and time.time() < deadline:  # type: ignore[union-attr]
            time.sleep(0.05)
        worker.stop()
        thread.join(30)
    finally:
        worker_module.execute_run = real_execute  # type: ignore[assignment]
    assert {store.get_run(i).state for i in (first, second)} == {"COMPLETED"}  # type: ignore[union-attr]
    crashed = [e for e in store.search_ledger(action="run.state", limit=1000)
               if agentops.core.serialization.loads(e.payload)["state"] == "CRASHED"]
    assert [e.run_id for e in crashed] == [first]


def test_cancelled_run_stops_at_its_next_step(store) -> None:
    from agentops.engine.runner import cancel_run

    gate = threading.Event()

    @task
    def t_wait_gate() -> None:
        gate.wait(5)

    @task
    def t_never() -> None:
        bump("never")

    @flow(name="cancellable")
    def cancellable() -> None:
        t_wait_gate()
        t_never()

    calls.clear()
    run_id = create_run(cancellable, {}, queue=False, store=store, worker_id="w1")
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.update(
        o=execute_run(run_id, worker_id="w1", epoch=CREATED_EPOCH, store=store)))
    thread.start()
    time.sleep(0.1)
    cancel_run(run_id, store=store)
    time.sleep(0.5)
    gate.set()
    thread.join(5)
    assert result["o"].state == State.CANCELLED  # type: ignore[attr-defined]
    assert "never" not in calls
    assert store.get_run(run_id).state == "CANCELLED"


def test_ledger_chain_of_engine_events_verifies(store, project: Path) -> None:
    from agentops.core.ledger import verify_rows

    fail_switch["on"] = False
    etl(n=2)
    report = verify_rows(store.iter_ledger())
    assert report.ok and report.count == 7
