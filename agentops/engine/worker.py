"""`agentops worker`: claim queued runs, execute them on a thread pool, recover crashed runs."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from agentops.core.ledger import Event
from agentops.core.states import State
from agentops.db import Store, open_store
from agentops.db.records import RunRecord
from agentops.db.runs import QueueFilter
from agentops.engine import transitions
from agentops.engine.runner import RunOutcome, execute_run
from agentops.settings import get_settings

log = logging.getLogger("agentops.engine.worker")


def recover_crashed(store: Store, *, actor: str, stale_after: float) -> list[str]:
    """Mark CRASHED (and so claimable again) every run whose heartbeat is older than `stale_after` by the
    database's clock; the stalled execution's lease ends with it. With dispatch on, the commit sends each one."""
    recovered = []
    for run in store.stale_runs(stale_after):
        event = transitions.run_state(run.id, State.CRASHED.value, actor=actor, previous_worker=run.worker_id,
                                      last_heartbeat=run.heartbeat_at, epoch=run.epoch + 1)
        if store.mark_crashed(run, stale_after, [event]):
            recovered.append(run.id)
    return recovered


class Worker:
    """Claims runs (BEGIN IMMEDIATE on SQLite, FOR UPDATE SKIP LOCKED on PostgreSQL) and executes them.

    Each claim increments the run's epoch, and the execution holds that epoch as its lease: when this worker
    stalls past the stale interval and another takes the run over, this one can write nothing more.

    Housekeeping runs between claims: runs whose worker stopped heartbeating become CRASHED (and so
    claimable again), then each job passed in as `housekeeping` runs (the service passes the expiry of
    approvals, which the engine does not know about).
    """

    def __init__(self, store: Store | None = None, *, concurrency: int = 4, poll_seconds: float | None = None,
                 stale_after: float | None = None, on_outcome: Callable[[RunOutcome], None] | None = None,
                 housekeeping: Sequence[Callable[[Store], object]] = (),
                 queues: Sequence[str] | None = None) -> None:
        settings = get_settings()
        self.store = store or open_store()
        self.id = f"worker:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency
        self.poll_seconds = settings.worker_poll_seconds if poll_seconds is None else poll_seconds
        self.stale_after = settings.stale_after_seconds if stale_after is None else stale_after
        self.on_outcome = on_outcome
        self.queues = QueueFilter(tuple(queues), settings.broker_queue) if queues else None
        """With queues, only runs routed to one of them (a run with no queue of its own is in the default one)."""
        self._jobs = tuple(housekeeping)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="agentops-run")
        self._running: set[Future[RunOutcome]] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        """Set when a slot frees up or the worker is stopped: the loop claims again at once instead of polling."""
        self._last_housekeeping = 0.0
        self.executed = 0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _listen(self, done: threading.Event) -> None:
        """Wake the loop when a transaction anywhere makes a run runnable (LISTEN/NOTIFY on PostgreSQL, a local
        socket on SQLite), so an idle worker claims it at once. The poll stays the fallback: a lost connection is
        retried after a poll."""
        while not done.is_set():
            wakeups = None
            try:
                wakeups = self.store.listen_runnable()
                if wakeups is None:
                    return
                while not done.is_set():
                    if wakeups.wait(timeout=0.5):
                        self._wake.set()
            except Exception:
                log.warning("worker %s lost its LISTEN connection; polling until it is back", self.id, exc_info=True)
                done.wait(max(1.0, self.poll_seconds))
            finally:
                if wakeups is not None:
                    wakeups.close()

    def recover_crashed(self) -> list[str]:
        return recover_crashed(self.store, actor=self.id, stale_after=self.stale_after)

    def housekeeping(self) -> None:
        self.recover_crashed()
        for job in self._jobs:
            job(self.store)

    def _claim_events(self, run: RunRecord) -> list[Event]:
        return [transitions.run_state(run.id, State.RUNNING.value, actor=self.id, resumed_from=run.state,
                                      epoch=run.epoch + 1)]

    def claim_one(self) -> RunRecord | None:
        return self.store.claim_run(self.id, self._claim_events, queues=self.queues)

    def claim_batch(self, free: int) -> list[RunRecord]:
        """Up to `free` runs in one claim transaction (one per free slot)."""
        return self.store.claim_runs(self.id, self._claim_events, limit=free, queues=self.queues)

    def _execute(self, run: RunRecord) -> RunOutcome:
        outcome = execute_run(run.id, worker_id=self.id, epoch=run.epoch, store=self.store, claimed=run)
        self.executed += 1
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    def _slot_freed(self, future: Future[RunOutcome]) -> None:
        """An execution ended: wake the loop so it claims the next run now. An execution that raised (the
        database went away mid-write) leaves its run RUNNING with a heartbeat that stops, so housekeeping
        recovers it as CRASHED; it is logged here rather than lost with its future."""
        if not future.cancelled() and future.exception() is not None:
            log.error("an execution on worker %s raised", self.id, exc_info=future.exception())
        self._wake.set()

    def _submit(self, run: RunRecord) -> None:
        future = self._pool.submit(self._execute, run)
        self._running.add(future)
        future.add_done_callback(self._slot_freed)

    def run(self, *, burst: bool = False, max_seconds: float | None = None) -> int:
        """Work until stopped (or, with burst, until the queue is empty). Returns how many runs executed."""
        started = time.time()
        done = threading.Event()
        listener = threading.Thread(target=self._listen, args=(done,), name="agentops-listen", daemon=True)
        if not burst:
            listener.start()
        try:
            while not self._stop.is_set():
                now = time.time()
                if now - self._last_housekeeping >= min(1.0, self.stale_after / 2):
                    self._last_housekeeping = now
                    self.housekeeping()
                self._wake.clear()
                self._running = {f for f in self._running if not f.done()}
                free = self.concurrency - len(self._running)
                if free > 0:
                    claimed = self.claim_batch(free)
                    for run in claimed:
                        self._submit(run)
                    if claimed:
                        continue
                if burst and not self._running and not self.store.has_claimable(time.time(), self.queues):
                    break
                if max_seconds is not None and time.time() - started > max_seconds:
                    break
                # Full: a finishing execution wakes this at once. Idle: a NOTIFY does (PostgreSQL), or the poll.
                self._wake.wait(self.poll_seconds)
        finally:
            done.set()
            for future in list(self._running):
                future.exception()
            self._pool.shutdown(wait=True)
            if listener.is_alive():
                listener.join(5)
        return self.executed
