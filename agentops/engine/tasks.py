"""The @task decorator: a function that, inside a flow, runs as a recorded, replayable step.

The step runner itself is in agentops.engine.steps; this module holds the definitions people write.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import random
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import copy_context
from typing import Any, Generic, ParamSpec, TypeVar, overload

from agentops.core import serialization
from agentops.core.coroutines import run_coroutine
from agentops.engine.context import current_run
from agentops.engine.steps import (
    CacheContext,
    PausingStep,
    StepFacts,
    run_async_step_in_thread,
    run_pausing_step,
    run_step,
    run_step_async,
    task_pool,
)
from agentops.errors import AgentOpsError, SerializationError

__all__ = ["CacheContext", "PausingStep", "StepFacts", "StepFuture", "Task", "pausing_step", "task", "wait"]

P = ParamSpec("P")
R = TypeVar("R")


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
        retry_on: tuple[type[BaseException], ...] = (Exception,),
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
        self.retry_on = retry_on
        """Only these errors are retried; any other fails the step at once."""
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
            return run_step_async(ctx, self, step_no, args, kwargs)  # type: ignore[return-value]
        return run_step(ctx, self, step_no, args, kwargs)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> StepFuture[R]:
        """Run the task on the thread pool; the step number is fixed now, in call order."""
        ctx = current_run.get()
        if ctx is None:
            future: Future[R] = task_pool().submit(copy_context().run, self._call_plain, args, kwargs)
            return StepFuture(future, 0, self.name)
        step_no = ctx.next_step_no()
        runner = run_step if not self.is_async else run_async_step_in_thread
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
    retry_on: tuple[type[BaseException], ...] = (Exception,),
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


def pausing_step(name: str, body: Callable[[PausingStep], R], *, kind: str, inputs: dict[str, Any],
                 describe: Callable[[R], StepFacts] | None = None) -> R:
    """A durable step whose body may pause the run until something outside it happens (a person decides).

    Numbered, checked for determinism and replayed like a task: once completed, the step returns its recorded
    output (typed by the body's return annotation) and the body never runs again. Until then the body runs on
    every execution. On the first (`step.record` is None) it pauses the run with `step.pause(...)`, or stores
    what it waits for together with `step.row(...)` in the transaction that pauses the run and raises
    FlowPaused. Later it either finds the wait still on and calls `step.pause_again(...)`, or returns the step's
    result, which is recorded like a task's output. `inputs` are what the step records as its inputs.
    """
    ctx = current_run.get()
    if ctx is None:
        raise AgentOpsError(f"'{name}' must be called inside a running flow")
    step = Task(body, name=name, kind=kind, describe=describe)
    return run_pausing_step(ctx, step, ctx.next_step_no(), inputs)
