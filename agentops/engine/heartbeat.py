"""One thread per process refreshes the heartbeat of every run executing here, and notices cancellation."""

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
        by_worker: dict[tuple[int, str], list[RunContext]] = {}
        for ctx in active:
            by_worker.setdefault((id(ctx.store), ctx.worker_id), []).append(ctx)
        now = time.time()
        for contexts in by_worker.values():
            store, worker_id = contexts[0].store, contexts[0].worker_id
            try:
                lost = store.heartbeat([c.run_id for c in contexts], worker_id, now)
            except Exception:
                continue
            for ctx in contexts:
                if ctx.run_id in lost:
                    ctx.cancel_requested.set()

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
