"""Batched claims: a worker with several free slots takes that many runs in one transaction, oldest first, each
under its own next epoch with its own claim event; concurrent claimers never take the same run."""

from __future__ import annotations

import threading
import time
from typing import Any

from agentops import flow, task
from agentops.core import serialization
from agentops.engine import transitions
from agentops.engine.runner import create_run
from agentops.engine.worker import Worker


@task
def claimed_unit(n: int) -> int:
    return n


@flow(name="batch_claimed_flow")
def batch_claimed_flow(n: int) -> int:
    return claimed_unit(n)


def _events(worker: str):  # type: ignore[no-untyped-def]
    def events_for(run: Any) -> list[Any]:
        return [transitions.run_state(run.id, "RUNNING", actor=worker, resumed_from=run.state, epoch=run.epoch + 1)]
    return events_for


def test_a_batch_takes_the_oldest_runs_each_under_its_next_epoch(store) -> None:  # type: ignore[no-untyped-def]
    run_ids = []
    for n in range(5):
        run_ids.append(create_run(batch_claimed_flow, {"n": n}, store=store))
        time.sleep(0.002)  # distinct created_at, so "oldest" is defined
    claimed = store.claim_runs("worker:batch", _events("worker:batch"), limit=3)
    assert [r.id for r in claimed] == run_ids[:3]
    for run in claimed:
        row = store.get_run(run.id)
        assert (row.state, row.worker_id, row.epoch) == ("RUNNING", "worker:batch", 1) == (
            run.state, run.worker_id, run.epoch)
        [event] = [serialization.loads(e.payload) for e in store.search_ledger(run_id=run.id, action="run.state")
                   if '"RUNNING"' in e.payload]
        assert event["epoch"] == 1 and event["resumed_from"] == "PENDING"
    assert [store.get_run(r).state for r in run_ids[3:]] == ["PENDING", "PENDING"]
    assert store.claim_runs("worker:batch", _events("worker:batch"), limit=10) and not store.claim_runs(
        "worker:batch", _events("worker:batch"), limit=10)


def test_concurrent_batch_claimers_never_take_the_same_run(store) -> None:  # type: ignore[no-untyped-def]
    run_ids = {create_run(batch_claimed_flow, {"n": n}, store=store) for n in range(40)}
    taken: dict[str, list[str]] = {}
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while True:
            got = store.claim_runs(name, _events(name), limit=3)
            if not got:
                return
            with lock:
                for run in got:
                    taken.setdefault(run.id, []).append(name)

    threads = [threading.Thread(target=claimer, args=(f"worker:{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(taken) == run_ids and all(len(names) == 1 for names in taken.values())


def test_a_worker_with_free_slots_runs_every_queued_run_once(store) -> None:  # type: ignore[no-untyped-def]
    run_ids = [create_run(batch_claimed_flow, {"n": n}, store=store) for n in range(12)]
    assert Worker(store, concurrency=4, poll_seconds=0.01).run(burst=True) == 12
    for n, run_id in enumerate(run_ids):
        run = store.get_run(run_id)
        assert run.state == "COMPLETED" and serialization.loads(run.result) == n
        assert run.epoch == 1, "claimed once"


def test_the_claim_index_covers_crashed_runs_and_migrates_down_and_up(store) -> None:  # type: ignore[no-untyped-def]
    """The claim's partial index covers both claimable states (the claim picks the oldest of either), as the
    schema declares it; migrating down restores the PENDING-only index it replaced."""
    import sqlalchemy as sa
    from alembic import command

    from agentops.db.migrate import HEAD_REVISION, alembic_config

    def predicate(name: str) -> str | None:
        found = [ix for ix in sa.inspect(store.engine).get_indexes("flow_runs") if ix["name"] == name]
        if not found:
            return None
        options = found[0].get("dialect_options", {})
        text = options.get("postgresql_where") or options.get("sqlite_where")
        return str(text) if text is not None else ""

    crashed = create_run(batch_claimed_flow, {"n": 1}, store=store)
    time.sleep(0.002)
    pending = create_run(batch_claimed_flow, {"n": 2}, store=store)
    with store.write() as conn:
        conn.execute(sa.text("UPDATE flow_runs SET state = 'CRASHED' WHERE id = :id"), {"id": crashed})
    config = alembic_config(store)
    for target in ("0016_log_line_keys", HEAD_REVISION):
        with store.write() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if target != HEAD_REVISION else command.upgrade)(config, target)
        claimable, queued = predicate("ix_flow_runs_claimable"), predicate("ix_flow_runs_queued")
        if target == HEAD_REVISION:
            assert queued is None and claimable is not None
            assert "CRASHED" in claimable and "PENDING" in claimable
        else:
            assert claimable is None and queued is not None and "PENDING" in queued
    store.engine.dispose()
    claimed = store.claim_runs("worker:index", _events("worker:index"), limit=2)
    assert [r.id for r in claimed] == [crashed, pending]
