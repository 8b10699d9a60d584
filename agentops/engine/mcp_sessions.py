"""Kept MCP client sessions (AGENTOPS_MCP_KEEP_SESSIONS): one per server configuration and process, so that a stdio
server is started once per worker rather than once per call.

The sessions live on one event loop in a daemon thread of this process. Each is opened and closed by a task of its
own (the SDK's task groups must be left by the task that entered them); calls from the engine's threads are sent
to that loop and wait for their answer. Calls on one session are serialised. A use of a kept session that fails
before anything was sent (the definition listing each call starts with) runs once more on a new session, so a
server that died between calls is started again rather than failing the call. A session whose use raised anything
but the errors the caller names as the server's answer (a refusal, a tool error, a request for input) is closed
and forgotten; a changed `mcp.yaml` entry gets a session of its own. A forked child (a prefork worker) starts with
no sessions and a loop of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class NotSent(Exception):
    """Raised by a session's work when it failed before it sent anything with effects (the definition listing): on
    a kept session that has served before, the server may have died since, so the work runs once more on a new
    session. `error` is what to raise otherwise."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error
Connect = Callable[[list[str]], AbstractAsyncContextManager[Any]]
"""Opens a client session; the list it is given collects the server's mid-call requests for input."""


@dataclass
class _Kept:
    client: Any
    asked: list[str]
    closed: asyncio.Event
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    used: bool = False
    """It answered a use before (so a failure now may be a server that died since)."""


class SessionPool:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start = threading.Lock()
        self._sessions: dict[str, _Kept] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    def after_fork(self) -> None:
        """In a forked child the loop's thread does not exist (only the forking thread is copied): a call sent to
        it would wait forever. The child forgets the parent's loop and sessions (their servers and pipes are the
        parent's) and opens its own on first use."""
        self._loop = None
        self._start = threading.Lock()
        self._sessions = {}
        self._opening = {}

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._start:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="agentops-mcp-sessions", daemon=True).start()
                self._loop = loop
            return self._loop

    def use(self, key: str, connect: Connect, work: Callable[[Any, list[str]], Awaitable[T]],
            keep_on: tuple[type[BaseException], ...]) -> T:
        """Run `work(client, asked)` on the kept session for `key` (opened with `connect` when there is none)."""
        future = asyncio.run_coroutine_threadsafe(self._use(key, connect, work, keep_on), self._running_loop())
        return future.result()

    async def _use(self, key: str, connect: Connect, work: Callable[[Any, list[str]], Awaitable[T]],
                   keep_on: tuple[type[BaseException], ...]) -> T:
        kept = await self._session(key, connect)
        try:
            return await self._run(key, kept, work, keep_on)
        except NotSent as failed:
            if not kept.used:
                raise failed.error from None
        kept = await self._session(key, connect)  # the old one was forgotten: a new server, tried once more
        try:
            return await self._run(key, kept, work, keep_on)
        except NotSent as failed:
            raise failed.error from None

    async def _run(self, key: str, kept: _Kept, work: Callable[[Any, list[str]], Awaitable[T]],
                   keep_on: tuple[type[BaseException], ...]) -> T:
        async with kept.lock:
            kept.asked.clear()
            try:
                result = await work(kept.client, kept.asked)
            except keep_on:
                kept.used = True
                raise
            except BaseException:
                self._forget(key, kept)
                raise
            kept.used = True
            return result

    async def _session(self, key: str, connect: Connect) -> _Kept:
        opening = self._opening.setdefault(key, asyncio.Lock())
        async with opening:
            kept = self._sessions.get(key)
            if kept is not None and not kept.closed.is_set():
                return kept
            ready: asyncio.Future[_Kept] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().create_task(self._own(connect, ready))
            kept = await ready
            self._sessions[key] = kept
            return kept

    async def _own(self, connect: Connect, ready: asyncio.Future[_Kept]) -> None:
        """The task that enters the session, holds it until it is closed, and leaves it."""
        asked: list[str] = []
        closed = asyncio.Event()
        try:
            async with connect(asked) as client:
                ready.set_result(_Kept(client, asked, closed))
                await closed.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
        finally:
            closed.set()

    def _forget(self, key: str, kept: _Kept) -> None:
        if self._sessions.get(key) is kept:
            del self._sessions[key]
        kept.closed.set()

    def close(self) -> None:
        """Close every kept session (their servers exit) and wait a little for them to go."""
        loop = self._loop
        if loop is None:
            return

        async def closing() -> None:
            for kept in list(self._sessions.values()):
                kept.closed.set()
            self._sessions.clear()
            await asyncio.sleep(0.2)

        with suppress(Exception):  # at exit: a loop already gone has nothing left to close
            asyncio.run_coroutine_threadsafe(closing(), loop).result(5)


_pool = SessionPool()
atexit.register(_pool.close)
os.register_at_fork(after_in_child=_pool.after_fork)


def pool() -> SessionPool:
    return _pool
