"""Dispatch: with AGENTOPS_BROKER_URL set, each run a committed transaction made runnable is sent to the broker.

The one hook is the store's `after_commit` (see agentops/db/base.py): every transaction that makes a run
runnable (a queued run, a schedule fire, an approval decided or expired, a crash recovered) records that run's
`run.state` event in the same transaction, and once it commits the store passes the run ids here. Nothing is
sent for a transaction that rolled back, and a send that fails after the commit is only logged: the sweeper
(agentops/engine/sweeper.py) re-sends runnable runs nobody claimed.

Celery is imported on the first send only, so `agentops run` and the polling worker never load it.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentops.db import Store
from agentops.db.open import on_open
from agentops.settings import get_settings


def send_runs(run_ids: Sequence[str]) -> None:
    """Send "execute run X" for each run to the broker queue (at least once; the database decides who runs it)."""
    from agentops.engine.celery_app import send

    for run_id in run_ids:
        send(run_id)


def dispatching() -> bool:
    return bool(get_settings().broker_url)


def _attach(store: Store) -> None:
    if dispatching() and not store.is_sqlite and send_runs not in store.after_commit:
        store.after_commit.append(send_runs)


on_open(_attach)
