"""The Celery app: one task, "execute run X", on the broker AGENTOPS_BROKER_URL names. Imported on first use only.

The broker carries run ids and nothing else; PostgreSQL holds every state and decides who owns a run (see
agentops/engine/delivery.py). The settings are the ones that hold when a worker dies mid-run:

- late acknowledgement, and reject (requeue) when the pool process is lost: a message is acknowledged only once
  its run completed, failed or paused, so a killed worker's message is delivered again;
- prefetch 1: a worker process holds no message it is not executing, so none waits behind a long run;
- cancel long-running tasks on connection loss: their messages go back to the broker, which delivers them again
  (the duplicate is dropped if the run finished meanwhile);
- a visibility timeout (Redis) far above the stale interval: Redis re-delivers an unacknowledged message only
  after it, and by then the sweeper has long recovered the run; a shorter one would re-deliver every long run;
- no result backend: results live in the database.

A send that fails after its retries raises into the store's after-commit hook, which logs it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery import Celery, Task, signals

from agentops.db import open_store
from agentops.db.open import forget_stores_after_fork
from agentops.engine import heartbeat, steps, tracing
from agentops.engine.delivery import deliver
from agentops.engine.project import load_project
from agentops.errors import ConfigError, RunBusy
from agentops.settings import Settings, get_settings

log = logging.getLogger("agentops.engine.celery")

TASK_NAME = "agentops.execute_run"
MIN_VISIBILITY_TIMEOUT = 3600.0

_apps: dict[str, Celery] = {}
_apps_lock = threading.Lock()


def visibility_timeout(settings: Settings) -> float:
    """AGENTOPS_BROKER_VISIBILITY_TIMEOUT_SECONDS, or an hour, or twenty stale intervals if that is longer."""
    if settings.broker_visibility_timeout_seconds is not None:
        return settings.broker_visibility_timeout_seconds
    return max(MIN_VISIBILITY_TIMEOUT, 20 * settings.stale_after_seconds)


def transport_options(settings: Settings) -> dict[str, float]:
    """Redis' visibility timeout, and its sweep for overdue messages run often enough to honour it (kombu's
    default sweeps every 100 s, which only an hour's timeout can ignore)."""
    timeout = visibility_timeout(settings)
    return {"visibility_timeout": timeout, "unacked_restore_interval": max(1.0, min(10.0, timeout / 10)),
            "unacked_restore_throttle": 1 if timeout < MIN_VISIBILITY_TIMEOUT else 10}


def celery_app() -> Celery:
    """The process's Celery app for the configured broker."""
    settings = get_settings()
    if not settings.broker_url:
        raise ConfigError("AGENTOPS_BROKER_URL is not set: set it to redis://... or amqp://... to use Celery")
    with _apps_lock:
        app = _apps.get(settings.broker_url)
        if app is None:
            app = _apps[settings.broker_url] = _make_app(settings)
    return app


def _make_app(settings: Settings) -> Celery:
    app = Celery("agentops", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        # A send runs right after its commit, in the committing thread: a broker that is down costs it about a
        # second, not minutes; the sweeper re-sends what was not sent.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.25,
                                   "interval_max": 0.5},
        result_backend=None,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_default_queue=settings.broker_queue,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(
        _execute_task)
    return app


def _execute_task(task: Task, run_id: object) -> str:
    carried = (task.request.headers or {}).get("traceparent") or getattr(task.request, "traceparent", None)
    try:
        with tracing.continuing(carried):
            done = deliver(run_id, delivery=task.request.id)
    except RunBusy as busy:  # the row stayed locked: give the message back for a later try, never skip it
        raise task.retry(countdown=1, max_retries=None, exc=busy) from None
    if done.dropped:
        log.info("delivery %s of run %s dropped: %s", task.request.id, done.run_id, done.dropped)
        return f"dropped: {done.dropped}"
    assert done.outcome is not None
    return str(done.outcome.state)


def send(run_id: str, queue: str | None = None) -> None:
    """Publish "execute run `run_id`" on `queue` (default AGENTOPS_BROKER_QUEUE; Celery retries the publish a few
    times), with the W3C traceparent of the run's trace, which the executing worker continues."""
    celery_app().send_task(TASK_NAME, args=[run_id], queue=queue or get_settings().broker_queue, ignore_result=True,
                           headers={"traceparent": tracing.traceparent(run_id)})


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    """In each pool process: the parent's connections, step threads and heartbeat thread are not ours."""
    forget_stores_after_fork()
    steps.forget_task_pool_after_fork()
    heartbeat.forget_heartbeater_after_fork()
    tracing.forget_after_fork()
    load_project()
    open_store()


@signals.worker_process_shutdown.connect
def _before_exit(**_: Any) -> None:
    """A pool process exits without running atexit hooks: export its last spans first."""
    tracing.flush()


def worker_main(*, concurrency: int, queues: list[str]) -> None:
    """Run a Celery worker (prefork, `concurrency` processes) consuming `queues`, until it is stopped."""
    load_project()
    open_store()  # a bad database URL, or SQLite with a broker, stops here with one line
    app = celery_app()
    app.worker_main(argv=[
        "worker", "--pool=prefork", f"--concurrency={concurrency}", f"--queues={','.join(queues)}",
        f"--hostname=agentops-{os.getpid()}@{socket.gethostname()}", "--loglevel=INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ])
