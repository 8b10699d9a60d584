"""Dispatch without a broker: the store's after-commit hook names exactly the runs a committed transaction made
runnable, and a delivery claims its run by id (waiting for the row lock) or is dropped and recorded."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from agentops import flow, task
from agentops.core import serialization
from agentops.core.states import State
from agentops.engine import transitions
from agentops.engine.delivery import deliver
from agentops.engine.runner import CREATED_EPOCH, create_run, execute_run
from agentops.engine.sweeper import Sweeper
from agentops.engine.worker import recover_crashed
from agentops.errors import RunBusy

ran: list[str] = []


@task
def d_step(tag: str) -> str:
    ran.append(tag)
    return tag


@flow
def d_flow(tag: str) -> str:
    return d_step(tag)


@pytest.fixture(autouse=True)
def _forget_steps() -> None:
    ran.clear()


@pytest.fixture
def sent(store) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """What the store's after-commit hook passed on, commit by commit."""
    calls: list[list[str]] = []
    store.after_commit.append(calls.append)
    return calls


def test_a_queued_run_is_passed_on_after_its_commit_and_a_claimed_one_is_not(store, sent) -> None:
    queued = create_run(d_flow, {"tag": "q"}, store=store)
    assert sent == [[queued]]
    create_run(d_flow, {"tag": "here"}, queue=False, store=store)  # PENDING then RUNNING in one transaction
    assert sent == [[queued]]


def test_a_rolled_back_transaction_passes_nothing_on(store, sent) -> None:
    run_id = create_run(d_flow, {"tag": "r"}, queue=False, store=store)
    with pytest.raises(RuntimeError), store._write_sql() as tx:
        store._chain(tx, [transitions.run_state(run_id, State.PENDING.value)])
        raise RuntimeError("the transaction fails after its event")
    assert sent == []


def test_a_failing_listener_does_not_undo_the_commit(store, sent) -> None:
    def broken(_: list[str]) -> None:
        raise ConnectionError("the broker is down")

    store.after_commit.insert(0, broken)
    run_id = create_run(d_flow, {"tag": "x"}, store=store)
    assert store.get_run(run_id).state == "PENDING"
    assert sent == [[run_id]], "the listeners after the broken one still hear of it"


def test_a_recovered_crash_is_passed_on(store, sent) -> None:
    run_id = create_run(d_flow, {"tag": "c"}, queue=False, store=store, worker_id="w-dead")
    time.sleep(0.3)
    assert recover_crashed(store, actor="test", stale_after=0.2) == [run_id]
    assert sent == [[run_id]]
    assert store.get_run(run_id).state == "CRASHED"


def test_a_delivery_claims_its_run_by_id_and_a_duplicate_is_dropped_and_recorded(store, sent) -> None:
    run_id = create_run(d_flow, {"tag": "once"}, store=store)
    first = deliver(run_id, store=store, worker_id="celery:a", delivery="m1")
    assert first.outcome is not None and first.outcome.state == State.COMPLETED
    again = deliver(run_id, store=store, worker_id="celery:b", delivery="m2")
    assert again.dropped == "already COMPLETED"
    assert ran == ["once"]
    [dropped] = store.search_ledger(run_id=run_id, action="run.delivery_dropped")
    assert dropped.actor == "celery:b"
    assert serialization.loads(dropped.payload)["delivery"] == "m2"


def test_a_delivery_of_a_run_running_elsewhere_is_dropped_by_the_database_clock(store, monkeypatch) -> None:
    from agentops.settings import reset_settings

    monkeypatch.setenv("AGENTOPS_STALE_AFTER_SECONDS", "0.5")
    reset_settings()
    run_id = create_run(d_flow, {"tag": "busy"}, queue=False, store=store, worker_id="w-alive")
    assert deliver(run_id, store=store).dropped == "running elsewhere with a fresh heartbeat"
    time.sleep(0.6)  # nothing heartbeats it
    assert deliver(run_id, store=store).dropped == "running with a stale heartbeat: the sweeper recovers it"
    run = store.get_run(run_id)
    assert run.state == "RUNNING" and run.epoch == CREATED_EPOCH, "a dropped delivery takes nothing"
    execute_run(run_id, worker_id="w-alive", epoch=CREATED_EPOCH, store=store)
    assert ran == ["busy"]
    reasons = [serialization.loads(e.payload)["reason"]
               for e in store.search_ledger(run_id=run_id, action="run.delivery_dropped", ascending=True)]
    assert reasons == ["running elsewhere with a fresh heartbeat",
                       "running with a stale heartbeat: the sweeper recovers it"]


@pytest.mark.parametrize("message", [None, 42, "", "x" * 65, "../etc", "a b", "r\u00e9", ["r"]])
def test_a_message_that_is_no_run_id_is_dropped_without_touching_the_database(store, message: object) -> None:
    before = store.ledger_head()
    assert deliver(message, store=store).dropped == "not a run id"
    assert store.ledger_head() == before


def test_a_delivery_waits_for_a_held_row_lock_instead_of_skipping_the_run(store, project: Path) -> None:
    if store.is_sqlite:
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
    import psycopg

    run_id = create_run(d_flow, {"tag": "locked"}, store=store)
    dsn = store.url.replace("postgresql+psycopg://", "postgresql://")
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with psycopg.connect(dsn) as conn, conn.transaction():
            conn.execute("SELECT id FROM flow_runs WHERE id = %s FOR UPDATE", (run_id,))
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(30)
    with pytest.raises(RunBusy):
        deliver(run_id, store=store, lock_timeout=0.2)
    assert store.get_run(run_id).state == "PENDING", "a delivery that gave up changed nothing"
    threading.Timer(0.5, release.set).start()
    done = deliver(run_id, store=store, lock_timeout=30)
    holder.join(30)
    assert done.outcome is not None and done.outcome.state == State.COMPLETED
    assert ran == ["locked"]


def test_the_sweeper_resends_unclaimed_runs_with_backoff_and_recovers_stale_ones(store, sent) -> None:
    resent: list[list[str]] = []
    sweeper = Sweeper(store, resend_after=0.2, max_resend_after=0.4, send=lambda ids: resent.append(list(ids)))
    waiting = create_run(d_flow, {"tag": "w"}, store=store)
    assert sweeper.sweep() == ([], [])  # first sighting: it was just sent
    time.sleep(0.25)
    assert sweeper.sweep() == ([], [waiting])
    assert sweeper.sweep() == ([], []), "the next re-send waits twice as long"
    time.sleep(0.45)
    assert sweeper.sweep() == ([], [waiting])
    deliver(waiting, store=store)
    time.sleep(0.45)
    assert sweeper.sweep() == ([], []), "a claimed run is not sent again"
    assert resent == [[waiting], [waiting]]


def test_requeueing_a_stopped_run_sends_it_and_a_running_one_is_refused(store, sent) -> None:
    from agentops.engine.runner import requeue_run
    from agentops.errors import InvalidStateError

    running = create_run(d_flow, {"tag": "busy"}, queue=False, store=store, worker_id="w")
    with pytest.raises(InvalidStateError, match=r"only .* runs can be resumed"):
        requeue_run(running, store=store)
    assert store.get_run(running).state == "RUNNING" and sent == []
    store.set_run_state(running, State.FAILED.value, [], fields={"error": "boom"})
    requeue_run(running, actor="user:otto", store=store)
    assert sent == [[running]]
    assert deliver(running, store=store).outcome.state == State.COMPLETED  # type: ignore[union-attr]
    assert ran == ["busy"]


def test_only_the_scheduler_holding_the_lease_sweeps(store) -> None:
    from agentops.scheduling.scheduler import Scheduler

    sent_by: dict[str, list[str]] = {"a": [], "b": []}

    def scheduler(name: str) -> Scheduler:
        sweeper = Sweeper(store, resend_after=0.0, every=0.0, send=lambda ids: sent_by[name].extend(ids))
        return Scheduler(store, holder=name, sweeper=sweeper)

    active, standby = scheduler("a"), scheduler("b")
    waiting = create_run(d_flow, {"tag": "w"}, store=store)
    for _ in range(3):
        active.tick()
        standby.tick()
    assert active.active and not standby.active
    assert sent_by == {"a": [waiting] * 3, "b": []}  # resend_after 0: re-sent at every sweep of the holder


def test_the_service_scheduler_sweeps_only_with_dispatch_on(project: Path, monkeypatch) -> None:
    from agentops.db import close_stores
    from agentops.service import new_scheduler
    from agentops.settings import reset_settings

    assert new_scheduler().sweeper is None
    if "sqlite" in os.environ["AGENTOPS_DATABASE_URL"]:
        return  # a broker with SQLite is refused (tests/test_bad_input.py)
    monkeypatch.setenv("AGENTOPS_BROKER_URL", "redis://127.0.0.1:1/0")
    reset_settings()
    close_stores()
    assert new_scheduler().sweeper is not None


def test_local_wake_ups_reach_live_sockets_drop_dead_ones_and_leave_other_files(tmp_path: Path) -> None:
    import socket as sockets

    from agentops.db.wakeups import LocalWakeups, wake_all

    directory = tmp_path / "db.wake"
    live = LocalWakeups(directory)
    dead = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM)
    dead.bind(str(directory / "dead"))
    dead.close()  # its file stays, with nobody behind it
    (directory / "planted").write_text("not a socket")
    (directory / "link").symlink_to(tmp_path / "elsewhere")
    assert live.wait(0.01) is False
    for _ in range(3):
        wake_all(directory)
    assert live.wait(5) is True
    assert live.wait(0.01) is False, "the wake-ups waiting counted once"
    assert sorted(p.name for p in directory.iterdir()) == sorted([live.path.name, "planted", "link"])
    live.close()
    wake_all(tmp_path / "missing")  # no directory: nobody to wake
