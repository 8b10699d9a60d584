"""The step runner: how a call inside a flow becomes a recorded, replayable step.

A step is recorded under (run, step number) when it ends: completed with its output, failed with its error,
or waiting for a retry. A replayed run gets the recorded output back instead of running the step again.
One retry loop (`_attempts`) serves sync and async tasks; a driver for each calls the task and sleeps.
A pausing step (`agentops.engine.tasks.pausing_step`) is the one other kind: its body may pause the run.

Every write goes through the store with the execution's epoch, so an execution that lost its lease (another
worker took the run over) stops at its next write with LeaseLost and writes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import copy_context
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from agentops.core import serialization
from agentops.core.coroutines import run_coroutine
from agentops.core.deferred import DeferredModule
from agentops.core.redaction import default_redactor, redact
from agentops.core.states import State
from agentops.engine import tracing, transitions
from agentops.engine.context import RunContext, StepInfo, current_step
from agentops.engine.logs import install_print_capture
from agentops.errors import FlowPaused, NonDeterministicFlowError, SerializationError, TaskTimeoutError
from agentops.settings import get_settings

if TYPE_CHECKING:
    import asyncio

    from agentops.db.records import StepRecord
    from agentops.engine.tasks import Task
else:
    asyncio = DeferredModule("asyncio")


@dataclass
class StepFacts:
    """What a step reports about its result besides the output: meta for the record, usage, audit events."""

    meta: dict[str, Any] | None = None
    tokens: int = 0
    cost: float = 0.0
    events: list[Any] | None = None
    payload: dict[str, Any] | None = None
    """Extra facts for the step's own state event in the ledger."""


@dataclass(frozen=True)
class CacheContext:
    """What a cache_key_fn receives besides the task's bound arguments."""

    task_name: str
    run_id: str
    flow_name: str


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def task_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=get_settings().task_workers, thread_name_prefix="agentops-task")
        return _pool


def forget_task_pool_after_fork() -> None:
    """In a forked child: the parent's pool threads did not survive the fork; the next task.submit() makes a
    fresh pool (and a fresh lock, in case the fork caught another thread holding it)."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


@dataclass
class _Prepared:
    step_no: int
    inputs: dict[str, Any]
    digest: str
    cache_key: str | None
    exists: bool
    started_at: float
    waited: bool = False
    """The step paused its run before this execution, so its earlier transitions are in the ledger already."""


def _replayed(ctx: RunContext, task: Task[Any, Any], step_no: int) -> tuple[bool, Any, bool]:
    """(done, output, row_exists) for a step recorded by an earlier execution of this run."""
    recorded = ctx.recorded.get(step_no)
    if recorded is None:
        return False, None, False
    if recorded.name != task.name:
        raise NonDeterministicFlowError(
            f"run {ctx.run_id}: step {step_no} was recorded as task '{recorded.name}' but the flow now calls "
            f"'{task.name}' there; flows must call tasks in the same order on every execution"
        )
    if recorded.state == State.COMPLETED:
        return True, task.load_output(recorded.output), True
    return False, None, True


def _prepare(ctx: RunContext, task: Task[Any, Any], step_no: int, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> tuple[_Prepared | None, Any]:
    if ctx.lease_revoked.is_set():
        raise ctx.lease_lost(f"before step {step_no}")
    done, output, exists = _replayed(ctx, task, step_no)
    if done:
        return None, output
    inputs = task.bind(args, kwargs)
    digest = serialization.safe_digest(inputs)
    cache_key = None
    now = time.time()
    if task.cache_key_fn is not None:
        cache_key = task.cache_key_fn(CacheContext(task.name, ctx.run_id, ctx.flow_name), inputs)
        if cache_key is not None:
            cache_key = f"{task.name}:{cache_key}"
            cached = ctx.store.cache_get(cache_key, now)
            if cached is not None:
                _record(ctx, task, _Prepared(step_no, inputs, digest, cache_key, exists, now), State.COMPLETED,
                        output_text=cached, attempts=0, meta={"cache_hit": True})
                return None, task.load_output(cached)
    return _Prepared(step_no, inputs, digest, cache_key, exists, now), None


def _step_values(ctx: RunContext, task: Task[Any, Any], prep: _Prepared, state: State, *, ended: float | None,
                 output_text: str | None = None, error: str | None = None, attempts: int = 1,
                 meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "run_id": ctx.run_id, "step_no": prep.step_no, "name": task.name, "kind": task.kind, "state": state.value,
        "inputs_digest": prep.digest, "inputs": serialization.safe_dumps(redact(prep.inputs)),
        "output": output_text, "error": default_redactor().text(error) if error else None, "attempts": attempts,
        "started_at": prep.started_at,
        "ended_at": ended, "duration_ms": None if ended is None else (ended - prep.started_at) * 1000.0,
        "tags": ",".join(task.tags) or None, "cache_key": prep.cache_key,
        "meta": serialization.stored(meta) if meta else None,
    }


def _record(ctx: RunContext, task: Task[Any, Any], prep: _Prepared, state: State, *, output_text: str | None = None,
            error: str | None = None, attempts: int = 1, meta: dict[str, Any] | None = None,
            facts: StepFacts | None = None) -> None:
    ended = time.time()
    if facts is not None and facts.meta:
        meta = {**(meta or {}), **facts.meta}
    values = _step_values(ctx, task, prep, state, ended=ended, output_text=output_text, error=error,
                          attempts=attempts, meta=meta)
    if facts is not None:
        values["tokens"], values["cost"] = facts.tokens, facts.cost
    payload = {**({"error": error} if error else {}), **((facts.payload or {}) if facts is not None else {})}
    events = [transitions.step_state(ctx.run_id, prep.step_no, task.name, state.value, ts=ended,
                                     attempts=attempts, **payload)]
    if attempts <= 1 and state in (State.COMPLETED, State.FAILED) and not prep.waited:
        events.insert(0, transitions.step_state(ctx.run_id, prep.step_no, task.name, State.RUNNING.value,
                                                ts=prep.started_at))
    if facts is not None and facts.events:
        for ev in facts.events:
            ev.run_id, ev.step_no = ctx.run_id, prep.step_no
        events[-1:-1] = facts.events
    ctx.store.record_step(values, events, exists=prep.exists, epoch=ctx.epoch, logs=ctx.take_logs())
    executing = current_step.get()
    if executing is not None and executing.step_no == prep.step_no:  # inside the step's span
        tracing.current().set({"agentops.step.state": state.value, "agentops.step.attempts": attempts})
    ctx.count_step(task.kind, new_step=not prep.exists, tokens=values.get("tokens") or 0,
                   cost=values.get("cost") or 0.0)
    prep.exists = True


def _serialise_output(task: Task[Any, Any], result: Any) -> str:
    try:
        return serialization.stored(result)
    except SerializationError as exc:
        raise SerializationError(f"task '{task.name}' returned a result that cannot be stored: {exc}") from None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _finish(ctx: RunContext, task: Task[Any, Any], prep: _Prepared, result: Any, attempts: int) -> Any:
    try:
        text = _serialise_output(task, result)
    except SerializationError as exc:
        _record(ctx, task, prep, State.FAILED, error=str(exc), attempts=attempts)
        raise
    facts = task.describe(result) if task.describe is not None else None
    _record(ctx, task, prep, State.COMPLETED, output_text=text, attempts=attempts, facts=facts)
    if prep.cache_key is not None:
        expires = time.time() + task.cache_ttl_seconds if task.cache_ttl_seconds else None
        ctx.store.cache_put(prep.cache_key, text, time.time(), expires)
    return result


def _after_failure(ctx: RunContext, task: Task[Any, Any], prep: _Prepared, exc: BaseException, attempt: int) -> float:
    """Record a failed attempt; returns the delay before retrying, or re-raises when out of retries."""
    if attempt > task.retries or isinstance(exc, SerializationError) or not isinstance(exc, task.retry_on):
        _record(ctx, task, prep, State.FAILED, error=_error_text(exc), attempts=attempt)
        raise exc
    delay = task.retry_delay(attempt)
    _record(ctx, task, prep, State.AWAITING_RETRY, error=_error_text(exc), attempts=attempt,
            meta={"retry_in_seconds": round(delay, 3)}, facts=StepFacts(payload={"retry_in_seconds": round(delay, 3)}))
    return delay


# -- one retry loop, two drivers ----------------------------------------------------------------------

_Outcome = tuple[bool, Any]
"""(succeeded, the result or the exception) of one attempt."""


def _attempts(ctx: RunContext, task: Task[Any, Any], prep: _Prepared) -> Generator[float, _Outcome, Any]:
    """The retry loop of one step. Yields the seconds to wait before the next attempt (0 before the first); the
    driver waits, calls the task and sends back the outcome. Returns the step's result, or raises its error."""
    delay = 0.0
    attempt = 0
    while True:
        attempt += 1
        succeeded, value = yield delay
        if succeeded:
            return _finish(ctx, task, prep, value, attempt)
        delay = _after_failure(ctx, task, prep, value, attempt)


def _drive(loop: Generator[float, _Outcome, Any], call: Callable[[], Any]) -> Any:
    try:
        delay = next(loop)
        while True:
            if delay:
                time.sleep(delay)
            try:
                outcome: _Outcome = (True, call())
            except Exception as exc:
                outcome = (False, exc)
            delay = loop.send(outcome)
    except StopIteration as done:
        return done.value


async def _drive_async(loop: Generator[float, _Outcome, Any], call: Callable[[], Awaitable[Any]]) -> Any:
    try:
        delay = next(loop)
        while True:
            if delay:
                await asyncio.sleep(delay)
            try:
                outcome: _Outcome = (True, await call())
            except Exception as exc:
                outcome = (False, exc)
            delay = loop.send(outcome)
    except StopIteration as done:
        return done.value


@contextmanager
def _executing(task: Task[Any, Any], step_no: int) -> Iterator[None]:
    if task.log_prints:
        install_print_capture()
    token = current_step.set(StepInfo(step_no, task.name, task.log_prints))
    try:
        with tracing.span(f"step {task.name}", {"agentops.step.no": step_no, "agentops.task.name": task.name,
                                                "agentops.step.kind": task.kind}):
            yield
    finally:
        current_step.reset(token)


def _call_with_timeout(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if task.timeout_seconds is None:
        return task.fn(*args, **kwargs)
    future = task_pool().submit(copy_context().run, task.fn, *args, **kwargs)
    try:
        return future.result(timeout=task.timeout_seconds)
    except FutureTimeout:
        raise TaskTimeoutError(f"task '{task.name}' exceeded its timeout of {task.timeout_seconds}s") from None


async def _await_with_timeout(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    coro = task.fn(*args, **kwargs)
    if task.timeout_seconds is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, task.timeout_seconds)
    except TimeoutError:
        raise TaskTimeoutError(f"task '{task.name}' exceeded its timeout of {task.timeout_seconds}s") from None


def run_step(ctx: RunContext, task: Task[Any, Any], step_no: int, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
    prep, output = _prepare(ctx, task, step_no, args, kwargs)
    if prep is None:
        return output
    with _executing(task, step_no):
        return _drive(_attempts(ctx, task, prep), lambda: _call_with_timeout(task, args, kwargs))


async def run_step_async(ctx: RunContext, task: Task[Any, Any], step_no: int, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
    prep, output = _prepare(ctx, task, step_no, args, kwargs)
    if prep is None:
        return output
    with _executing(task, step_no):
        return await _drive_async(_attempts(ctx, task, prep), lambda: _await_with_timeout(task, args, kwargs))


def run_async_step_in_thread(ctx: RunContext, task: Task[Any, Any], step_no: int, args: tuple[Any, ...],
                             kwargs: dict[str, Any]) -> Any:
    return run_coroutine(run_step_async(ctx, task, step_no, args, kwargs))


# -- steps whose body pauses the run ------------------------------------------------------------------


@dataclass
class PausingStep:
    """What the body of a `pausing_step` knows about its step."""

    ctx: RunContext
    step_no: int
    record: StepRecord | None
    """The row an earlier execution stored when this step paused the run; None on the step's first execution."""
    _task: Task[Any, Any]
    _prep: _Prepared

    def row(self, state: State, **columns: Any) -> dict[str, Any]:
        """The step's row in `state`, for the body to store with what it waits for, in the one transaction that
        pauses the run (fenced by `ctx.epoch`)."""
        return {**_step_values(self.ctx, self._task, self._prep, state, ended=None), **columns}

    def pause(self, reason: str, **payload: Any) -> NoReturn:
        """Pause the run at this step for the first time: the step's row (AWAITING_APPROVAL) and the run's pause
        are stored in one transaction, fenced by the execution's epoch. (A body that stores more with the pause,
        as an approval request does, writes the row from `row()` in a transaction of its own.)"""
        ctx, name = self.ctx, self._task.name
        events = [transitions.step_state(ctx.run_id, self.step_no, name, State.AWAITING_APPROVAL.value, **payload),
                  transitions.run_state(ctx.run_id, State.AWAITING_APPROVAL.value, **payload)]
        ctx.store.pause_at_step(self.row(State.AWAITING_APPROVAL), events, epoch=ctx.epoch, message=reason)
        raise FlowPaused(reason)

    def pause_again(self, reason: str, **payload: Any) -> NoReturn:
        """Pause the run again: what this step waits for is stored already and has not happened yet."""
        ctx = self.ctx
        event = transitions.run_state(ctx.run_id, State.AWAITING_APPROVAL.value, **payload)
        if not ctx.store.set_run_state(ctx.run_id, State.AWAITING_APPROVAL.value, [event],
                                       expect=[State.RUNNING.value], fence=ctx.epoch,
                                       fields={"worker_id": None, "heartbeat_at": None, "state_message": reason}):
            raise ctx.lease_lost(f"pausing at step {self.step_no}")
        raise FlowPaused(reason)


def run_pausing_step(ctx: RunContext, task: Task[Any, Any], step_no: int, inputs: dict[str, Any]) -> Any:
    """Run a task whose body takes a PausingStep and may pause the run (see `agentops.engine.tasks.pausing_step`)."""
    done, output, exists = _replayed(ctx, task, step_no)
    if done:
        return output
    record = ctx.recorded.get(step_no)
    started = record.started_at if record is not None and record.started_at else time.time()
    prep = _Prepared(step_no, inputs, serialization.safe_digest(inputs), None, exists, started,
                     waited=record is not None)
    with _executing(task, step_no):
        result = task.fn(PausingStep(ctx, step_no, record, task, prep))
    return _finish(ctx, task, prep, result, attempts=1)
