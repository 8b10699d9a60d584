"""The long-running processes a face starts: a polling worker and a Celery worker (with the governance
housekeeping), and a scheduler (with the sweeper when dispatch is on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentops.db import Store, open_store
from agentops.engine.dispatch import dispatching
from agentops.engine.sweeper import Sweeper
from agentops.engine.worker import Worker
from agentops.errors import ConfigError
from agentops.governance.approvals import expire_due
from agentops.scheduling.scheduler import Scheduler
from agentops.service.audit import Checkpointer
from agentops.service.notifications import Notifier
from agentops.settings import check_queue_name, get_settings


def _housekeeping() -> list[Any]:
    """Closing approvals past their expiry, telling approvers of requests (in a thread of its own) and signing ledger
    checkpoints, which the engine knows nothing of."""
    return [expire_due, Notifier(), Checkpointer()]


def queue_names(queues: Sequence[str] | None) -> list[str] | None:
    """The queues a worker was asked to take runs from, each checked (ConfigError names a bad one)."""
    return [check_queue_name(q) for q in queues] if queues else None


def new_worker(**options: Any) -> Worker:
    """A polling worker that also runs the governance housekeeping between claims."""
    options.setdefault("store", open_store())
    return Worker(housekeeping=_housekeeping(), **options)


def new_scheduler(**options: Any) -> Scheduler:
    """The scheduler; with dispatch on it also sweeps (and so runs the housekeeping Celery workers do not)."""
    store: Store = open_store()
    if dispatching():
        options.setdefault("sweeper", Sweeper(store, housekeeping=_housekeeping()))
    return Scheduler(store, **options)


def broker_dispatch() -> bool:
    """Whether runs go to a broker (AGENTOPS_BROKER_URL) for Celery workers, rather than to polling workers."""
    return dispatching()


def celery_worker_command(*, concurrency: int) -> list[str]:
    """The command line of a Celery worker process (`agentops serve --worker` starts one as its child)."""
    if not dispatching():
        raise ConfigError("a Celery worker needs AGENTOPS_BROKER_URL (redis://... or amqp://...)")
    if concurrency < 1:
        raise ConfigError("--worker-concurrency must be at least 1")
    import sys

    return [sys.executable, "-m", "agentops.cli", "worker", "--celery", "-c", str(concurrency)]


def run_celery_worker(*, concurrency: int, queues: list[str] | None = None) -> None:
    """`agentops worker --celery`: a Celery worker on AGENTOPS_BROKER_URL, until it is stopped."""
    if not dispatching():
        raise ConfigError("agentops worker --celery needs AGENTOPS_BROKER_URL (redis://... or amqp://...)")
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    queues = queue_names(queues)
    from agentops.engine.celery_app import worker_main  # Celery only here

    worker_main(concurrency=concurrency, queues=queues or [get_settings().broker_queue])
