"""One broker delivery of "execute run X": claim the run by id, under a new epoch, and execute it; or drop it.

The broker delivers at least once (a redelivery after a lost worker, a re-send by the sweeper, a message sent
twice), so the database decides: the claim waits for the run's row lock (never skips it) and succeeds only for
a runnable run (queued or crashed). Any other delivery is acknowledged and dropped, with a `run.delivery_dropped`
event in the ledger saying why: the run is running with a fresh heartbeat (another worker has it), it finished,
it waits for a decision, or it is gone. A run running with a stale heartbeat is dropped too; the sweeper marks
it CRASHED and sends it again.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from agentops.core.ledger import Event
from agentops.core.states import CLAIMABLE, TERMINAL, State
from agentops.db import Store, open_store
from agentops.db.records import RunRecord
from agentops.engine import transitions
from agentops.engine.runner import RunOutcome, execute_run
from agentops.settings import get_settings

CLAIM_LOCK_TIMEOUT = 10.0
"""Seconds a delivery waits for the run's row lock before giving the message back for a retry (RunBusy)."""

MAX_RUN_ID = 64


@dataclass(frozen=True)
class Delivered:
    run_id: str
    outcome: RunOutcome | None = None
    dropped: str | None = None
    """Why the delivery was dropped, when it was."""


def delivery_worker_id() -> str:
    return f"celery:{socket.gethostname()}:{os.getpid()}"


def deliver(run_id: object, *, store: Store | None = None, worker_id: str | None = None,
            delivery: str | None = None, lock_timeout: float = CLAIM_LOCK_TIMEOUT) -> Delivered:
    """Claim and execute run `run_id` (a message's argument: checked before use), or drop the delivery."""
    if not (isinstance(run_id, str) and 0 < len(run_id) <= MAX_RUN_ID and run_id.isascii() and run_id.isalnum()):
        return Delivered(str(run_id)[:MAX_RUN_ID], dropped="not a run id")
    store = store or open_store()
    worker_id = worker_id or delivery_worker_id()

    def events_for(before: RunRecord) -> list[Event]:
        return [transitions.run_state(run_id, State.RUNNING.value, actor=worker_id, resumed_from=before.state,
                                      epoch=before.epoch + 1, delivery=delivery)]

    claimed = store.claim_run_by_id(run_id, worker_id, sorted(CLAIMABLE), events_for, lock_timeout=lock_timeout)
    if claimed is None:
        return _drop(store, run_id, worker_id, delivery)
    return Delivered(run_id, outcome=execute_run(run_id, worker_id=worker_id, epoch=claimed.epoch, store=store,
                                                 claimed=claimed))


def _drop(store: Store, run_id: str, worker_id: str, delivery: str | None) -> Delivered:
    run = store.get_run(run_id)
    if run is None:
        return Delivered(run_id, dropped="no such run")  # nothing to bind a ledger event to
    if run.state == State.RUNNING:
        fresh = store.heartbeat_fresh(run_id, get_settings().stale_after_seconds)
        reason = ("running elsewhere with a fresh heartbeat" if fresh
                  else "running with a stale heartbeat: the sweeper recovers it")
    elif run.state in TERMINAL:
        reason = f"already {run.state}"
    else:
        reason = f"not runnable while {run.state}"
    store.append_events([Event(actor=worker_id, action="run.delivery_dropped", run_id=run_id, payload={
        "state": run.state, "epoch": run.epoch, "reason": reason, "delivery": delivery})])
    return Delivered(run_id, dropped=reason)
