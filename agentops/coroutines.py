"""Run a coroutine to completion from synchronous engine code, whether or not this thread already runs a loop."""

from __future__ import annotations

from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any, TypeVar

T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(coro), or, when this thread's event loop is already running (Jupyter, an async web handler,
    Playwright's sync API), asyncio.run on a helper thread that carries this thread's context variables."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentops-loop") as pool:
        return pool.submit(copy_context().run, asyncio.run, coro).result()
