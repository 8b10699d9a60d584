"""Fencing: an execution that lost its run (another worker took it over) can write nothing on its behalf.

Each guarded write is tried with the stale epoch after a real takeover (the run marked crashed and claimed
again), and must change nothing; the new owner's same write goes through, so no test passes vacuously.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from agentops import flow, task
from agentops.core import serialization
from agentops.core.ledger import Event
from agentops.core.states import State
from agentops.db.records import RunRecord
from agentops.engine.context import RunContext, current_run
from agentops.engine.runner import CREATED_EPOCH, cancel_run, create_run, execute_run, resume_run
from agentops.engine.toolkit import check_fence
from agentops.engine.worker import Worker
from agentops.errors import LeaseLost


@flow(name="fence_target")
def fence_target() -> str:
    return "done"


@dataclass
class Takeover:
    run_id: str
    stale: int
    """The epoch the stalled execution still holds."""
    current: int
    """The epoch of the worker that took the run over."""


def take_over(store: Any, run_id: str) -> int:
    """What a second worker does with a run whose worker stopped heartbeating: mark it crashed, claim it."""
    [stale] = [r for r in store.stale_runs(-1.0) if r.id == run_id]
    assert store.mark_crashed(stale, -1.0, [])
    claimed = store.claim_run("worker:new", lambda run: [])
    assert claimed is not None and claimed.id == run_id
    return claimed.epoch


@pytest.fixture
def taken(store) -> Takeover:
    run_id = create_run(fence_target, {}, store=store)
    first = store.claim_run("worker:old", lambda run: [])
    assert first is not None and first.epoch == 1
    return Takeover(run_id, first.epoch, take_over(store, run_id))


def step_row(run_id: str, step_no: int = 1, state: str = "COMPLETED", output: str = '"x"') -> dict[str, Any]:
    return {"run_id": run_id, "step_no": step_no, "name": "t", "kind": "task", "state": state, "output": output,
            "attempts": 1, "started_at": time.time(), "ended_at": time.time()}


def step_event(run_id: str) -> list[Event]:
    return [Event(actor="system:engine", action="step.state", run_id=run_id, step_no=1, payload={"state": "x"})]


def log_line(run_id: str, message: str) -> dict[str, Any]:
    return {"run_id": run_id, "step_no": 1, "ts": time.time(), "level": "INFO", "message": message}


def snapshot(store, run_id: str) -> tuple[RunRecord | None, list[Any], list[Any], int]:
    return (store.get_run(run_id), store.steps_for_run(run_id), store.logs_for_run(run_id), store.ledger_count())


def test_every_claim_increments_the_epoch(store) -> None:
    run_id = create_run(fence_target, {}, store=store)
    assert store.get_run(run_id).epoch == 0
    Worker(store, poll_seconds=0.01).run(burst=True)
    assert store.get_run(run_id).epoch == 1
    local = create_run(fence_target, {}, queue=False, store=store)
    assert store.get_run(local).epoch == CREATED_EPOCH
    assert store.set_run_state(local, "FAILED", [], expect=["RUNNING"])
    assert resume_run(local, store=store).state == State.COMPLETED
    assert store.get_run(local).epoch == CREATED_EPOCH + 1
    stalled = create_run(fence_target, {}, store=store)
    store.claim_run("worker:old", lambda run: [])
    assert take_over(store, stalled) == 3, "marking it crashed ends the old lease, the claim takes a new one"


def test_a_stale_step_insert_is_refused_and_writes_nothing(store, taken: Takeover) -> None:
    before = snapshot(store, taken.run_id)
    with pytest.raises(LeaseLost, match="epoch 1"):
        store.record_step(step_row(taken.run_id), step_event(taken.run_id), exists=False, epoch=taken.stale,
                          logs=[log_line(taken.run_id, "from the stalled worker")])
    assert snapshot(store, taken.run_id) == before
    store.record_step(step_row(taken.run_id), step_event(taken.run_id), exists=False, epoch=taken.current)
    assert [s.output for s in store.steps_for_run(taken.run_id)] == ['"x"']


def test_a_stale_step_update_is_refused_and_writes_nothing(store, taken: Takeover) -> None:
    store.record_step(step_row(taken.run_id, state="AWAITING_RETRY", output=None), [], exists=False,
                      epoch=taken.current)
    before = snapshot(store, taken.run_id)
    with pytest.raises(LeaseLost):
        store.record_step(step_row(taken.run_id, output='"stale"'), step_event(taken.run_id), exists=True,
                          epoch=taken.stale)
    assert snapshot(store, taken.run_id) == before
    store.record_step(step_row(taken.run_id, output='"new"'), [], exists=True, epoch=taken.current)
    assert store.steps_for_run(taken.run_id)[0].output == '"new"'


def test_a_stale_pause_and_a_stale_approval_request_are_refused(store, taken: Takeover) -> None:
    row = step_row(taken.run_id, state="AWAITING_APPROVAL", output=None)
    approval = {"id": "a" * 32, "run_id": taken.run_id, "step_no": 1, "action": "scale_deployment",
                "args": "{}", "args_digest": "d" * 64, "reason": "r", "requester": "agent:x", "quorum": 1,
                "status": "pending", "created_at": time.time()}
    before = snapshot(store, taken.run_id)
    with pytest.raises(LeaseLost):
        store.open_approval(approval, row, epoch=taken.stale, events=step_event(taken.run_id))
    with pytest.raises(LeaseLost):
        store.pause_at_step(row, step_event(taken.run_id), epoch=taken.stale, message="waiting")
    assert snapshot(store, taken.run_id) == before
    assert store.list_approvals(status=None, run_id=taken.run_id) == []
    store.open_approval(approval, row, epoch=taken.current, events=[])
    assert store.get_run(taken.run_id).state == "AWAITING_APPROVAL"


def test_a_stale_heartbeat_refreshes_nothing_and_reports_the_lease_lost(store, taken: Takeover) -> None:
    before = store.get_run(taken.run_id).heartbeat_at
    assert store.heartbeat({taken.run_id: taken.stale}) == {taken.run_id}
    assert store.get_run(taken.run_id).heartbeat_at == before
    assert store.heartbeat({taken.run_id: taken.current}) == set()


def test_a_stale_final_state_is_refused(store, taken: Takeover) -> None:
    before = snapshot(store, taken.run_id)
    assert not store.set_run_state(taken.run_id, "COMPLETED", step_event(taken.run_id), expect=["RUNNING"],
                                   fence=taken.stale, fields={"result": '"stale"'},
                                   logs=[log_line(taken.run_id, "stale")])
    assert snapshot(store, taken.run_id) == before
    assert store.set_run_state(taken.run_id, "COMPLETED", [], expect=["RUNNING"], fence=taken.current)


def test_stale_log_lines_are_dropped(store, taken: Takeover) -> None:
    store.add_logs([log_line(taken.run_id, "stale")], epoch=taken.stale)
    store.add_logs([log_line(taken.run_id, "current")], epoch=taken.current)
    assert [line.message for line in store.logs_for_run(taken.run_id)] == ["current"]


def test_a_tool_checking_the_fence_before_its_effect_stops_a_stale_execution(store, taken: Takeover) -> None:
    def context(epoch: int) -> RunContext:
        return RunContext(run_id=taken.run_id, flow_name="fence_target", store=store, recorded={},
                          worker_id="w", epoch=epoch)

    check_fence()  # outside a run: nothing to check
    token = current_run.set(context(taken.current))
    try:
        check_fence()
    finally:
        current_run.reset(token)
    token = current_run.set(context(taken.stale))
    try:
        with pytest.raises(LeaseLost, match="before an effect"):
            check_fence()
    finally:
        current_run.reset(token)


def test_a_stale_write_waits_for_a_concurrent_claim_and_is_then_refused(store, taken: Takeover) -> None:
    """The fence must not read an epoch that a claim in flight is replacing (PostgreSQL reads committed data
    without waiting unless the check locks the run row)."""
    outcome: dict[str, BaseException | None] = {}

    def stale_write() -> None:
        try:
            store.record_step(step_row(taken.run_id), [], exists=False, epoch=taken.current)
            outcome["error"] = None
        except BaseException as exc:
            outcome["error"] = exc

    claim = "UPDATE flow_runs SET epoch = epoch + 1 WHERE id = :id"
    if store.is_sqlite:
        import sqlite3

        from agentops.db.sql import sqlite_path

        other = sqlite3.connect(sqlite_path(store.url), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute(claim, {"id": taken.run_id})
        writer = threading.Thread(target=stale_write)
        writer.start()
        time.sleep(0.3)
        other.execute("COMMIT")
        other.close()
    else:
        import sqlalchemy as sa

        with store.engine.connect() as conn:
            tx = conn.begin()
            conn.execute(sa.text(claim), {"id": taken.run_id})
            writer = threading.Thread(target=stale_write)
            writer.start()
            with store.engine.connect() as probe:
                deadline = time.time() + 30
                while not probe.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                                "'Lock' AND datname = current_database()")).scalar():
                    probe.rollback()  # pg_stat_activity is a snapshot per transaction: a new one sees the wait
                    assert writer.is_alive(), f"the stale write did not wait for the claim: {outcome}"
                    assert time.time() < deadline
                    time.sleep(0.02)
            tx.commit()
    writer.join(30)
    assert isinstance(outcome["error"], LeaseLost)
    assert store.steps_for_run(taken.run_id) == []


# -- executions that lose their run ------------------------------------------------------------------

gate = threading.Event()
ran: list[str] = []


@task
def fenced_wait() -> str:
    ran.append("wait")
    gate.wait(10)
    return "waited"


@task
def fenced_after() -> str:
    ran.append("after")
    return "after"


@flow(name="fenced_local")
def fenced_local() -> str:
    return fenced_wait() + fenced_after()


def run_in_thread(store, run_id: str, epoch: int) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(o=execute_run(run_id, worker_id="w-old", epoch=epoch,
                                                                         store=store)))
    thread.start()
    deadline = time.time() + 10
    while "wait" not in ran:
        assert time.time() < deadline
        time.sleep(0.01)
    return thread, result


def test_an_execution_whose_run_was_taken_over_records_nothing_and_the_ledger_says_so(store) -> None:
    gate.clear()
    ran.clear()
    run_id = create_run(fenced_local, {}, queue=False, store=store, worker_id="w-old")
    thread, result = run_in_thread(store, run_id, CREATED_EPOCH)
    new_epoch = take_over(store, run_id)
    assert store.set_run_state(run_id, "COMPLETED", [], expect=["RUNNING"], fence=new_epoch,
                               fields={"result": '"by the new owner"'})
    before = snapshot(store, run_id)
    gate.set()
    thread.join(10)
    outcome = result["o"]
    assert outcome.state == State.COMPLETED and "lease" in (outcome.message or "")
    assert ran == ["wait"], "the stalled execution must not go on to its next step"
    after = snapshot(store, run_id)
    assert after[:3] == before[:3], "no step, log line or state from the stalled execution"
    [lost] = store.search_ledger(run_id=run_id, action="run.lease_lost")
    facts = serialization.loads(lost.payload)
    assert lost.actor == "w-old" and (facts["epoch"], facts["current_epoch"]) == (CREATED_EPOCH, new_epoch)


def test_cancelling_a_run_fences_its_execution(store) -> None:
    gate.clear()
    ran.clear()
    run_id = create_run(fenced_local, {}, queue=False, store=store, worker_id="w-old")
    thread, result = run_in_thread(store, run_id, CREATED_EPOCH)
    cancel_run(run_id, store=store)
    gate.set()
    thread.join(10)
    assert result["o"].state == State.CANCELLED
    assert ran == ["wait"] and store.steps_for_run(run_id) == [], "the step in flight is not recorded"
    assert store.get_run(run_id).state == "CANCELLED"


def test_heartbeats_and_staleness_use_the_database_clock_not_the_workers(store, monkeypatch) -> None:
    """Workers on hosts an hour apart still agree on which runs are stale (PostgreSQL)."""
    if store.is_sqlite:
        pytest.skip("SQLite's writers share one machine, whose clock is the database's clock")
    real = time.time
    hour = 3600.0
    queued = create_run(fence_target, {}, store=store)
    monkeypatch.setattr(time, "time", lambda: real() - hour)
    local = create_run(fence_target, {}, queue=False, store=store)
    claimed = store.claim_run("worker:slow-clock", lambda run: [])
    assert claimed is not None and claimed.id == queued
    assert store.heartbeat({local: CREATED_EPOCH}) == set()
    monkeypatch.setattr(time, "time", lambda: real() + hour)
    assert Worker(store, stale_after=30).recover_crashed() == []
    assert {r.id for r in store.stale_runs(-1.0)} == {queued, local}, "the same query does see them when due"
    monkeypatch.setattr(time, "time", real)
    for run_id in (queued, local):
        assert abs(store.get_run(run_id).heartbeat_at - real()) < 60
