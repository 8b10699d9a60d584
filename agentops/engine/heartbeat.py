"""One thread per process refreshes the heartbeat of every run executing here, and notices a run taken away
(cancelled, recovered as crashed, claimed by another worker): that execution stops before its next step."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from agentops.settings import get_settings

if TYPE_CHECKING:
    from agentops.engine.context import RunContext


class Heartbeater:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._active: dict[str, RunContext] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, ctx: RunContext) -> None:
        with self._lock:
            self._active[ctx.run_id] = ctx
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="agentops-heartbeat", daemon=True)
                self._thread.start()

    def unregister(self, run_id: str) -> None:
        with self._lock:
            self._active.pop(run_id, None)

    def beat(self) -> None:
        with self._lock:
            active = list(self._active.values())
        by_store: dict[int, list[RunContext]] = {}
        for ctx in active:
            by_store.setdefault(id(ctx.store), []).append(ctx)
        for contexts in by_store.values():
            try:
                lost = contexts[0].store.heartbeat({c.run_id: c.epoch for c in contexts})
            except Exception:
                continue
            for ctx in contexts:
                if ctx.run_id in lost:
                    ctx.lease_revoked.set()

    def _loop(self) -> None:
        while True:
            time.sleep(self.interval)
            self.beat()


_heartbeater: Heartbeater | None = None


def heartbeater() -> Heartbeater:
    global _heartbeater
    if _heartbeater is None:
        _heartbeater = Heartbeater(get_settings().heartbeat_seconds)
    return _heartbeater


def forget_heartbeater_after_fork() -> None:
    """In a forked child: the parent's heartbeat thread and the runs it beat for stay with the parent."""
    global _heartbeater
    _heartbeater = None
