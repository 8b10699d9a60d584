"""The sweeper: with dispatch on, the scheduler holding the lease (so there is one) runs it between ticks.

It works from the database's state and clock only: runs whose heartbeat is older than the stale interval (by
the database's clock) are marked CRASHED, which ends their lease and, through the after-commit hook, sends
them again; runnable runs that stay unclaimed are sent again (a message lost in a broker restart, an enqueue
that failed after its commit, a pool process killed while its heartbeat was still fresh, so its redelivery
was dropped). How long a run has waited is measured on the sweeper's own monotonic clock from the moment it
first saw it, so no host's wall clock matters; each re-send of the same run waits twice as long, up to a cap,
so a queue with no workers is not flooded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from agentops.db import Store
from agentops.engine.dispatch import send_runs
from agentops.engine.worker import recover_crashed
from agentops.settings import get_settings

ACTOR = "system:sweeper"


@dataclass
class _Waiting:
    due: float
    interval: float


@dataclass
class Sweeper:
    store: Store
    resend_after: float = 10.0
    """Seconds a runnable run may stay unclaimed before it is sent again (then twice that, ...)."""
    max_resend_after: float = 300.0
    every: float = 1.0
    """Seconds between sweeps (`maybe_sweep`)."""
    housekeeping: Sequence[Callable[[Store], object]] = ()
    """Jobs run with each sweep (the service passes approval expiry and ledger checkpoints)."""
    send: Callable[[Sequence[str]], None] | None = None
    """Default: each run to its own queue (see agentops/engine/dispatch.py)."""
    _waiting: dict[str, _Waiting] = field(default_factory=dict)
    _last: float = float("-inf")

    def maybe_sweep(self) -> None:
        if time.monotonic() - self._last >= self.every:
            self.sweep()

    def sweep(self) -> tuple[list[str], list[str]]:
        """One pass: (the runs recovered as CRASHED, the unclaimed runs sent again)."""
        self._last = time.monotonic()
        recovered = recover_crashed(self.store, actor=ACTOR, stale_after=get_settings().stale_after_seconds)
        for job in self.housekeeping:
            job(self.store)
        now = time.monotonic()
        runnable = self.store.runnable_run_ids()
        self._waiting = {run_id: self._waiting.get(run_id) or _Waiting(now + self.resend_after, self.resend_after)
                         for run_id in runnable}
        for run_id in recovered:  # just sent by the CRASHED commit
            self._waiting[run_id] = _Waiting(now + self.resend_after, self.resend_after)
        resend = [run_id for run_id, waiting in self._waiting.items() if waiting.due <= now]
        for run_id in resend:
            waiting = self._waiting[run_id]
            waiting.interval = min(self.max_resend_after, waiting.interval * 2)
            waiting.due = now + waiting.interval
        if resend:
            (self.send or partial(send_runs, store=self.store))(resend)
        return recovered, resend
