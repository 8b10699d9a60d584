"""Run a coroutine to completion from synchronous engine code, whether or not this thread already runs a loop."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Coroutine
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, TypeVar

from agentops.core.deferred import DeferredModule

if TYPE_CHECKING:
    import asyncio
else:
    asyncio = DeferredModule("asyncio")

T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(coro), or, when this thread's event loop is already running (Jupyter, an async web handler,
    Playwright's sync API), a fresh loop on a helper thread that carries this thread's context variables.

    On the helper thread the caller's loop is blocked until the coroutine finishes, and objects bound to the
    caller's loop cannot be used inside it. An interrupt (Ctrl-C) cancels the coroutine and is re-raised here.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    return _LoopThread(coro).result()


class _LoopThread:
    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.loop = asyncio.new_event_loop()
        self.coro = coro
        self.task: asyncio.Task[Any] | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.cancel_requested = False
        self.thread = threading.Thread(target=copy_context().run, args=(self._run,), name="agentops-loop",
                                       daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.task = self.loop.create_task(self.coro)
            if self.cancel_requested:  # interrupted before the task existed
                self.task.cancel()
            self.value = self.loop.run_until_complete(self.task)
        except BaseException as exc:
            self.error = exc
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                self.loop.close()
                self.finished.set()

    def result(self) -> Any:
        self.thread.start()
        try:
            while not self.finished.wait(0.05):
                pass
        except BaseException:
            self.cancel_requested = True
            if self.task is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                    self.loop.call_soon_threadsafe(self.task.cancel)
            self.finished.wait()
            raise
        if self.error is not None:
            raise self.error
        return self.value
