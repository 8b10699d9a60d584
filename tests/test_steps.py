"""The step runner: one retry loop for sync and async tasks, and steps whose body pauses the run."""

from __future__ import annotations

import asyncio
import time

import pytest

from agentops import flow, task
from agentops.core import serialization
from agentops.engine.runner import create_run, resume_run
from agentops.engine.tasks import PausingStep, pausing_step
from agentops.engine.worker import Worker
from agentops.errors import AgentOpsError, RunFailed, TaskTimeoutError

attempts: dict[str, list[float]] = {"sync": [], "async": []}


@task(retries=2, retry_delay_seconds=0.05, retry_backoff=2)
def flaky_sync() -> str:
    attempts["sync"].append(time.monotonic())
    if len(attempts["sync"]) < 3:
        raise ConnectionError(f"attempt {len(attempts['sync'])}")
    return "ok"


@task(retries=2, retry_delay_seconds=0.05, retry_backoff=2)
async def flaky_async() -> str:
    attempts["async"].append(time.monotonic())
    if len(attempts["async"]) < 3:
        raise ConnectionError(f"attempt {len(attempts['async'])}")
    return "ok"


@flow
def retrying() -> str:
    return flaky_sync()


@flow
async def retrying_async() -> str:
    return await flaky_async()


def step_states(store, run_id: str) -> list[tuple[str, int]]:
    return [(serialization.loads(e.payload)["state"], serialization.loads(e.payload).get("attempts", 0))
            for e in store.search_ledger(run_id=run_id, action="step.state", ascending=True)]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sync_and_async_tasks_retry_with_backoff_through_the_same_loop(store, kind: str) -> None:
    attempts[kind].clear()
    assert (retrying_async if kind == "async" else retrying)() == "ok"
    times = attempts[kind]
    assert len(times) == 3 and times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1
    run = store.list_runs(flow="retrying_async" if kind == "async" else "retrying")[0]
    [step] = store.steps_for_run(run.id)
    assert (step.state, step.attempts, step.error) == ("COMPLETED", 3, None)
    assert step_states(store, run.id) == [("AWAITING_RETRY", 1), ("AWAITING_RETRY", 2), ("COMPLETED", 3)]


@task(timeout_seconds=0.2)
def slow_sync() -> str:
    time.sleep(2)
    return "late"


@task(timeout_seconds=0.2)
async def slow_async() -> str:
    await asyncio.sleep(2)
    return "late"


@flow
def timing_out() -> str:
    return slow_sync()


@flow
async def timing_out_async() -> str:
    return await slow_async()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sync_and_async_timeouts_fail_the_step_the_same_way(store, kind: str) -> None:
    with pytest.raises(RunFailed, match=rf"TaskTimeoutError: task 'slow_{kind}' exceeded its timeout of 0\.2s"):
        (timing_out_async if kind == "async" else timing_out)()
    [step] = store.steps_for_run(store.list_runs(flow="timing_out_async" if kind == "async" else "timing_out")[0].id)
    assert step.state == "FAILED" and step.attempts == 1 and TaskTimeoutError.__name__ in (step.error or "")


# -- a pausing step, on its own (approvals are one use of it) -----------------------------------------

gate = {"open": False}
bodies: list[str] = []
after_calls: list[int] = []


@task
def after_gate(value: str) -> str:
    after_calls.append(1)
    if len(after_calls) == 1:
        raise RuntimeError("fails once, so the run is resumed by hand")
    return value + "!"


def wait_for_gate(step: PausingStep) -> str:
    bodies.append("first" if step.record is None else "again")
    if step.record is None:
        step.pause("waiting for the gate")
    if not gate["open"]:
        step.pause_again("still waiting for the gate")
    return "through"


@flow
def steps_gated(label: str) -> str:
    value = pausing_step("wait:gate", wait_for_gate, kind="wait", inputs={"label": label})
    return after_gate(value)


def wake(store, run_id: str) -> None:
    """What a decision does for an approval: the waiting run becomes runnable again."""
    assert store.set_run_state(run_id, "PENDING", [], expect=["AWAITING_APPROVAL"])
    Worker(store, poll_seconds=0.01).run(burst=True)


def test_a_pausing_step_waits_pauses_again_completes_once_and_then_replays(store) -> None:
    gate["open"] = False
    bodies.clear()
    after_calls.clear()
    run_id = create_run(steps_gated, {"label": "g"}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    run = store.get_run(run_id)
    [step] = store.steps_for_run(run_id)
    assert (run.state, run.worker_id, run.state_message) == ("AWAITING_APPROVAL", None, "waiting for the gate")
    assert (step.name, step.kind, step.state, step.inputs) == ("wait:gate", "wait", "AWAITING_APPROVAL",
                                                               '{"label":"g"}')
    first_started = step.started_at

    wake(store, run_id)
    assert store.get_run(run_id).state == "AWAITING_APPROVAL" and bodies == ["first", "again"]

    gate["open"] = True
    wake(store, run_id)
    assert store.get_run(run_id).state == "FAILED"
    step = store.steps_for_run(run_id)[0]
    assert (step.state, step.output, step.started_at) == ("COMPLETED", '"through"', first_started)

    assert resume_run(run_id, store=store).result == "through!"
    assert bodies == ["first", "again", "again"], "a completed pausing step returns its record, body not run"
    states = [serialization.loads(e.payload)["state"]
              for e in store.search_ledger(run_id=run_id, action="step.state", ascending=True) if e.step_no == 1]
    assert states == ["AWAITING_APPROVAL", "COMPLETED"]


def test_a_pausing_step_outside_a_flow_is_refused() -> None:
    with pytest.raises(AgentOpsError, match="inside a running flow"):
        pausing_step("wait:gate", wait_for_gate, kind="wait", inputs={})
