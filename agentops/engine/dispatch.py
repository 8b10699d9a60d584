"""Dispatch: with AGENTOPS_BROKER_URL set, each run a committed transaction made runnable is sent to the broker.

The one hook is the store's `after_commit` (see agentops/db/base.py): every transaction that makes a run
runnable (a queued run, a schedule fire, an approval decided or expired, a crash recovered) records that run's
`run.state` event in the same transaction, and once it commits the store passes the run ids here. Nothing is
sent for a transaction that rolled back, and a send that fails after the commit is only logged: the sweeper
(agentops/engine/sweeper.py) re-sends runnable runs nobody claimed.

Each run goes to its own queue: the one its flow was routed to when the run was created (`@flow(queue=...)` or
AGENTOPS_FLOW_QUEUES, kept on the run's row), else AGENTOPS_BROKER_QUEUE; the sweeper's re-sends read the same row.

Celery is imported on the first send only, so `agentops run` and the polling worker never load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentops.db import Store, open_store
from agentops.db.open import on_open
from agentops.settings import get_settings


def send_runs(run_ids: Sequence[str], store: Store | None = None) -> None:
    """Send "execute run X" for each run to its queue (at least once; the database decides who runs it)."""
    from agentops.engine.celery_app import send

    queues = (store or open_store()).run_queues(run_ids)
    default = get_settings().broker_queue
    for run_id in run_ids:
        send(run_id, queue=queues.get(run_id) or default)


@dataclass(frozen=True)
class Sender:
    """A store's after-commit listener: sends the runs its commits made runnable, reading their queues there."""

    store: Store

    def __call__(self, run_ids: Sequence[str]) -> None:
        send_runs(run_ids, self.store)


def dispatching() -> bool:
    return bool(get_settings().broker_url)


def _attach(store: Store) -> None:
    if dispatching() and not store.is_sqlite and not any(isinstance(f, Sender) for f in store.after_commit):
        store.after_commit.append(Sender(store))


on_open(_attach)
