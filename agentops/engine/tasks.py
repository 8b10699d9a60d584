"""The @task decorator: a function that, inside a flow, runs as a recorded, replayable step."""

from __future__ import annotations

import contextlib
import functools
import inspect
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import copy_context
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from agentops.core import serialization
from agentops.core.coroutines import run_coroutine
from agentops.core.deferred import DeferredModule
from agentops.core.redaction import default_redactor, redact
from agentops.core.states import State
from agentops.engine import transitions
from agentops.engine.context import RunContext, StepInfo, current_run, current_step
from agentops.engine.logs import install_print_capture
from agentops.errors import NonDeterministicFlowError, RunCancelled, SerializationError, TaskTimeoutError
from agentops.settings import get_settings

if TYPE_CHECKING:
    import asyncio
else:
    asyncio = DeferredModule("asyncio")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class StepFacts:
    """What a step reports about its result besides the output: meta for the record, usage, audit events."""

    meta: dict[str, Any] | None = None
    tokens: int = 0
    cost: float = 0.0
    events: list[Any] | None = None


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


class StepFuture(Generic[R]):
    """The pending result of `task.submit()`; `.result()` waits for it and re-raises its error."""

    def __init__(self, future: Future[R], step_no: int, name: str) -> None:
        self._future = future
        self.step_no = step_no
        self.name = name

    def result(self, timeout: float | None = None) -> R:
        return self._future.result(timeout)

    def done(self) -> bool:
        return self._future.done()

    def wait(self, timeout: float | None = None) -> None:
        with contextlib.suppress(FutureTimeout):
            self._future.exception(timeout)


def wait(futures: Iterable[StepFuture[Any]]) -> list[Any]:
    """The results of several futures, in order."""
    return [f.result() for f in futures]


class Task(Generic[P, R]):
    """A function registered as a task. Outside a flow, calling it is a plain function call."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        retries: int = 0,
        retry_delay_seconds: float | Sequence[float] = 0.0,
        retry_backoff: float = 1.0,
        retry_jitter: float = 0.0,
        timeout_seconds: float | None = None,
        cache_key_fn: Callable[[CacheContext, dict[str, Any]], str | None] | None = None,
        cache_ttl_seconds: float | None = None,
        tags: Iterable[str] = (),
        log_prints: bool = False,
        kind: str = "task",
        describe: Callable[[Any], StepFacts] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.retries = retries
        self.retry_delay_seconds = retry_delay_seconds
        self.retry_backoff = retry_backoff
        self.retry_jitter = retry_jitter
        self.timeout_seconds = timeout_seconds
        self.cache_key_fn = cache_key_fn
        self.cache_ttl_seconds = cache_ttl_seconds
        self.tags = tuple(tags)
        self.log_prints = log_prints
        self.kind = kind
        self.describe = describe
        self.is_async = inspect.iscoroutinefunction(fn)
        self._signature = inspect.signature(fn)
        self._return_adapter: Any = None
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        ctx = current_run.get()
        if ctx is None:
            return self.fn(*args, **kwargs)
        step_no = ctx.next_step_no()
        if self.is_async:
            return _run_step_async(ctx, self, step_no, args, kwargs)  # type: ignore[return-value]
        return _run_step(ctx, self, step_no, args, kwargs)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> StepFuture[R]:
        """Run the task on the thread pool; the step number is fixed now, in call order."""
        ctx = current_run.get()
        if ctx is None:
            future: Future[R] = task_pool().submit(copy_context().run, self._call_plain, args, kwargs)
            return StepFuture(future, 0, self.name)
        step_no = ctx.next_step_no()
        runner = _run_step_in_thread if not self.is_async else _run_async_step_in_thread
        future = task_pool().submit(copy_context().run, runner, ctx, self, step_no, args, kwargs)
        return StepFuture(future, step_no, self.name)

    def map(self, *iterables: Iterable[Any], **kwargs: Any) -> list[StepFuture[R]]:
        """Submit one step per item (zipped across iterables); extra keyword arguments go to every call."""
        return [self.submit(*items, **kwargs) for items in zip(*iterables, strict=True)]

    def _call_plain(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        if self.is_async:
            return run_coroutine(self.fn(*args, **kwargs))  # type: ignore[arg-type]
        return self.fn(*args, **kwargs)

    # -- helpers for the step runner ---------------------------------------------------------------

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task '{self.name}': {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def load_output(self, text: str | None) -> Any:
        if self._return_adapter is None:
            from pydantic import TypeAdapter

            hints = _return_hint(self.fn)
            self._return_adapter = TypeAdapter(hints) if hints is not None else False
        if text is None:
            return None
        if self._return_adapter is False:
            return serialization.loads(text, f"the recorded output of task '{self.name}'")
        try:
            return self._return_adapter.validate_json(text)
        except ValueError as exc:  # pydantic's ValidationError: the stored row was edited or damaged
            first = (str(exc).splitlines() or [""])[-1].strip()
            raise SerializationError(f"the recorded output of task '{self.name}' does not decode: {first}") from None

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if isinstance(self.retry_delay_seconds, Sequence):
            delays = list(self.retry_delay_seconds) or [0.0]
            delay = float(delays[min(attempt - 1, len(delays) - 1)])
        else:
            delay = float(self.retry_delay_seconds) * (self.retry_backoff ** (attempt - 1))
        if self.retry_jitter:
            delay *= 1 + random.uniform(-self.retry_jitter, self.retry_jitter)
        return max(delay, 0.0)


def _return_hint(fn: Callable[..., Any]) -> Any:
    import typing

    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:
        return None
    if hint is None or hint is type(None) or hint is Any:
        return None
    return hint


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay_seconds: float | Sequence[float] = 0.0,
    retry_backoff: float = 1.0,
    retry_jitter: float = 0.0,
    timeout_seconds: float | None = None,
    cache_key_fn: Callable[[CacheContext, dict[str, Any]], str | None] | None = None,
    cache_ttl_seconds: float | None = None,
    tags: Iterable[str] = (),
    log_prints: bool = False,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a task. `@task` or `@task(retries=3, retry_delay_seconds=1, retry_backoff=2, ...)`."""
    if fn is not None:
        return Task(fn)
    return lambda f: Task(f, **options)


# -- the step runner --------------------------------------------------------------------------------


@dataclass
class _Prepared:
    step_no: int
    inputs: dict[str, Any]
    digest: str
    cache_key: str | None
    exists: bool
    started_at: float


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
    if ctx.cancel_requested.is_set():
        raise RunCancelled(f"run {ctx.run_id} was cancelled")
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


def _record(ctx: RunContext, task: Task[Any, Any], prep: _Prepared, state: State, *, output_text: str | None = None,
            error: str | None = None, attempts: int = 1, meta: dict[str, Any] | None = None,
            facts: StepFacts | None = None) -> None:
    ended = time.time()
    if facts is not None and facts.meta:
        meta = {**(meta or {}), **facts.meta}
    values: dict[str, Any] = {
        "run_id": ctx.run_id, "step_no": prep.step_no, "name": task.name, "kind": task.kind, "state": state.value,
        "inputs_digest": prep.digest, "inputs": serialization.safe_dumps(redact(prep.inputs)),
        "output": output_text, "error": default_redactor().text(error) if error else None, "attempts": attempts,
        "started_at": prep.started_at,
        "ended_at": ended, "duration_ms": (ended - prep.started_at) * 1000.0,
        "tags": ",".join(task.tags) or None, "cache_key": prep.cache_key,
        "meta": serialization.stored(meta) if meta else None,
    }
    if facts is not None:
        values["tokens"], values["cost"] = facts.tokens, facts.cost
    events = [transitions.step_state(ctx.run_id, prep.step_no, task.name, state.value, ts=ended,
                                     attempts=attempts, **({"error": error} if error else {}))]
    if attempts <= 1 and state in (State.COMPLETED, State.FAILED):
        events.insert(0, transitions.step_state(ctx.run_id, prep.step_no, task.name, State.RUNNING.value,
                                                ts=prep.started_at))
    if facts is not None and facts.events:
        for ev in facts.events:
            ev.run_id, ev.step_no = ctx.run_id, prep.step_no
        events[-1:-1] = facts.events
    ctx.store.record_step(values, events, exists=prep.exists, logs=ctx.take_logs())
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
    if attempt > task.retries or isinstance(exc, SerializationError):
        _record(ctx, task, prep, State.FAILED, error=_error_text(exc), attempts=attempt)
        raise exc
    delay = task.retry_delay(attempt)
    _record(ctx, task, prep, State.AWAITING_RETRY, error=_error_text(exc), attempts=attempt,
            meta={"retry_in_seconds": round(delay, 3)})
    return delay


def _call_with_timeout(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if task.timeout_seconds is None:
        return task.fn(*args, **kwargs)
    future = task_pool().submit(copy_context().run, task.fn, *args, **kwargs)
    try:
        return future.result(timeout=task.timeout_seconds)
    except FutureTimeout:
        raise TaskTimeoutError(f"task '{task.name}' exceeded its timeout of {task.timeout_seconds}s") from None


def _run_step(ctx: RunContext, task: Task[Any, Any], step_no: int, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
    prep, output = _prepare(ctx, task, step_no, args, kwargs)
    if prep is None:
        return output
    if task.log_prints:
        install_print_capture()
    token = current_step.set(StepInfo(step_no, task.name, task.log_prints))
    try:
        attempt = 0
        while True:
            attempt += 1
            try:
                result = _call_with_timeout(task, args, kwargs)
            except Exception as exc:
                time.sleep(_after_failure(ctx, task, prep, exc, attempt))
                continue
            return _finish(ctx, task, prep, result, attempt)
    finally:
        current_step.reset(token)


async def _run_step_async(ctx: RunContext, task: Task[Any, Any], step_no: int, args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Any:
    prep, output = _prepare(ctx, task, step_no, args, kwargs)
    if prep is None:
        return output
    if task.log_prints:
        install_print_capture()
    token = current_step.set(StepInfo(step_no, task.name, task.log_prints))
    try:
        attempt = 0
        while True:
            attempt += 1
            try:
                coro = task.fn(*args, **kwargs)
                if task.timeout_seconds is not None:
                    try:
                        result = await asyncio.wait_for(coro, task.timeout_seconds)
                    except TimeoutError:
                        raise TaskTimeoutError(
                            f"task '{task.name}' exceeded its timeout of {task.timeout_seconds}s") from None
                else:
                    result = await coro
            except Exception as exc:
                await asyncio.sleep(_after_failure(ctx, task, prep, exc, attempt))
                continue
            return _finish(ctx, task, prep, result, attempt)
    finally:
        current_step.reset(token)


def _run_step_in_thread(ctx: RunContext, task: Task[Any, Any], step_no: int, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
    return _run_step(ctx, task, step_no, args, kwargs)


def _run_async_step_in_thread(ctx: RunContext, task: Task[Any, Any], step_no: int, args: tuple[Any, ...],
                              kwargs: dict[str, Any]) -> Any:
    return run_coroutine(_run_step_async(ctx, task, step_no, args, kwargs))
