"""Executing flow runs: create, execute (or replay), pause, finish, resume and cancel."""

from __future__ import annotations

import inspect
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentops.core import serialization
from agentops.core.coroutines import run_coroutine
from agentops.core.ledger import Event
from agentops.core.redaction import default_redactor, redact, secret_parameter_values, secret_values
from agentops.core.states import State
from agentops.db import Store, open_store
from agentops.engine import secrets, transitions
from agentops.engine.context import RunContext, current_run
from agentops.engine.heartbeat import heartbeater
from agentops.engine.logs import install_print_capture
from agentops.engine.registry import get_flow
from agentops.errors import (
    FlowPaused,
    InvalidStateError,
    NotFoundError,
    ParameterError,
    RunCancelled,
    RunFailed,
    SerializationError,
)

if TYPE_CHECKING:
    from agentops.engine.flows import Flow


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    state: State
    result: Any = None
    error: str | None = None
    message: str | None = None


def new_run_id() -> str:
    return uuid.uuid4().hex


def local_worker_id() -> str:
    return f"local:{os.getpid()}:{threading.get_ident()}"


def prepare_run(flow: Flow[Any, Any], parameters: dict[str, Any], *, trigger: str = "manual",
                created_by: str | None = None, parent_run_id: str | None = None, run_id: str | None = None,
                now: float | None = None, inline_secrets: bool = False,
                **extra: Any) -> tuple[dict[str, Any], list[Event]]:
    """The row and the PENDING event of a new run, after validating its parameters (raises ParameterError).

    Secrets never reach the row: secret parameters become references (see engine/secrets.py), and values under
    secret-looking names or with secret-looking contents are redacted.
    """
    params = flow.validate_parameters(parameters)
    run_id = run_id or new_run_id()
    references = secrets.store_form(flow, run_id, params, inline_allowed=inline_secrets)
    refs = {name: references[name] for name in secrets.secret_names(flow) if name in references}
    plain = {name: value for name, value in params.items() if name not in refs}
    try:
        params = {**redact(serialization.loads(serialization.dumps(plain))), **refs}
        params_text = serialization.dumps(params)
    except SerializationError as exc:
        raise ParameterError(f"flow '{flow.name}': {exc}") from None
    now = time.time() if now is None else now
    values = {"id": run_id, "flow_name": flow.name, "parameters": params_text, "trigger": trigger,
              "created_by": created_by, "created_at": now, "updated_at": now, "parent_run_id": parent_run_id,
              "state": State.PENDING.value, **extra}
    actor = f"user:{created_by}" if created_by else transitions.ENGINE
    events = [transitions.run_state(run_id, State.PENDING.value, actor=actor, ts=now, flow=flow.name,
                                    trigger=trigger, parameters=params)]
    return values, events


def create_run(
    flow: Flow[Any, Any],
    parameters: dict[str, Any],
    *,
    trigger: str = "manual",
    created_by: str | None = None,
    queue: bool = True,
    store: Store | None = None,
    worker_id: str | None = None,
    parent_run_id: str | None = None,
    run_id: str | None = None,
) -> str:
    """Validate parameters, then store a new run: PENDING (queued for a worker) or RUNNING (claimed here).

    Nothing is written when the parameters are wrong.
    """
    values, events = prepare_run(flow, parameters, trigger=trigger, created_by=created_by,
                                 parent_run_id=parent_run_id, run_id=run_id, inline_secrets=not queue)
    if not queue:
        now = values["created_at"]
        values.update(state=State.RUNNING.value, worker_id=worker_id or local_worker_id(), heartbeat_at=now,
                      started_at=now)
        events.append(transitions.run_state(values["id"], State.RUNNING.value, ts=now))
    store = store or open_store()
    store.create_run(values, events)
    return values["id"]


def execute_run(run_id: str, *, worker_id: str, store: Store | None = None) -> RunOutcome:
    """Run (or replay) a run this worker has claimed, to completion, failure or a pause."""
    store = store or open_store()
    run = store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run with id '{run_id}'")
    try:
        flow = get_flow(run.flow_name)
        stored = serialization.loads(run.parameters, f"run {run_id} parameters") or {}
        params = flow.validate_parameters(secrets.resolve(flow, run_id, stored))
    except Exception as exc:
        return _finish(store, run_id, State.FAILED, error=f"{type(exc).__name__}: {exc}")
    with secret_values(secret_parameter_values(params)):
        return _execute(store, run_id, flow, params, worker_id)


def _execute(store: Store, run_id: str, flow: Flow[Any, Any], params: dict[str, Any], worker_id: str) -> RunOutcome:
    recorded = {s.step_no: s for s in store.steps_for_run(run_id)}
    ctx = RunContext(run_id=run_id, flow_name=flow.name, store=store, recorded=recorded, worker_id=worker_id,
                     log_prints=flow.log_prints)
    if flow.log_prints:
        install_print_capture()
    beats = heartbeater()
    beats.register(ctx)
    token = current_run.set(ctx)
    try:
        if flow.is_async:
            result = run_coroutine(flow.fn(**params))
        else:
            result = flow.fn(**params)
            if inspect.isawaitable(result):
                result = run_coroutine(result)  # type: ignore[arg-type]
    except FlowPaused as pause:
        store.add_logs(ctx.take_logs())
        return RunOutcome(run_id, State.AWAITING_APPROVAL, message=pause.reason)
    except RunCancelled:
        store.add_logs(ctx.take_logs())
        return RunOutcome(run_id, State.CANCELLED, message="cancelled")
    except Exception as exc:
        return _finish(store, run_id, State.FAILED, error=f"{type(exc).__name__}: {exc}", ctx=ctx)
    finally:
        current_run.reset(token)
        beats.unregister(run_id)
    try:
        text = serialization.stored(result)
    except SerializationError as exc:
        return _finish(store, run_id, State.FAILED, error=f"flow '{flow.name}' returned a result that cannot be "
                                                          f"stored: {exc}", ctx=ctx)
    return _finish(store, run_id, State.COMPLETED, result=result, result_text=text, ctx=ctx)


def _finish(store: Store, run_id: str, state: State, *, result: Any = None, result_text: str | None = None,
            error: str | None = None, ctx: RunContext | None = None) -> RunOutcome:
    if ctx is not None:
        store.add_logs(ctx.take_logs())
    secrets.forget(run_id)
    error = default_redactor().text(error) if error else error
    now = time.time()
    fields = {"ended_at": now, "result": result_text, "error": error, "heartbeat_at": None,
              "state_message": error}
    event = transitions.run_state(run_id, state.value, ts=now, **({"error": error} if error else {}))
    moved = store.set_run_state(run_id, state.value, [event], expect=[State.RUNNING.value], fields=fields)
    if not moved:
        current = store.get_run(run_id)
        actual = State(current.state) if current else state
        return RunOutcome(run_id, actual, error=error, message="the run changed state while executing")
    return RunOutcome(run_id, state, result=result, error=error)


def call_flow(flow: Flow[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A direct call of a flow: a recorded run executed in this thread; inside another flow, an inline call."""
    if current_run.get() is not None:
        return flow.fn(*args, **kwargs)
    bound = inspect.signature(flow.fn).bind_partial(*args, **kwargs)
    store = open_store()
    worker_id = local_worker_id()
    run_id = create_run(flow, dict(bound.arguments), queue=False, store=store, worker_id=worker_id)
    outcome = execute_run(run_id, worker_id=worker_id, store=store)
    if outcome.state == State.COMPLETED:
        return outcome.result
    if outcome.state == State.FAILED:
        raise RunFailed(run_id, f"run {run_id} of flow '{flow.name}' failed: {outcome.error}")
    raise InvalidStateError(f"run {run_id} of flow '{flow.name}' is {outcome.state.value}: {outcome.message}")


RESUMABLE_BY_HAND = (State.PENDING, State.CRASHED, State.FAILED, State.AWAITING_APPROVAL, State.AWAITING_RETRY,
                     State.SCHEDULED)


def resume_run(run_id: str, *, actor: str = transitions.ENGINE, store: Store | None = None) -> RunOutcome:
    """Claim a run that is not running and execute it now, in this process, replaying its steps."""
    store = store or open_store()
    run = store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run with id '{run_id}'")
    if run.state not in RESUMABLE_BY_HAND:
        raise InvalidStateError(f"run {run_id} is {run.state}; only {', '.join(RESUMABLE_BY_HAND)} runs can be resumed")
    worker_id = local_worker_id()
    now = time.time()
    moved = store.set_run_state(
        run_id, State.RUNNING.value, [transitions.run_state(run_id, State.RUNNING.value, actor=actor, ts=now,
                                                            resumed_from=run.state)],
        expect=[run.state], fields={"worker_id": worker_id, "heartbeat_at": now, "ended_at": None, "error": None},
    )
    if not moved:
        raise InvalidStateError(f"run {run_id} changed state while resuming; try again")
    return execute_run(run_id, worker_id=worker_id, store=store)


def cancel_run(run_id: str, *, actor: str = transitions.ENGINE, store: Store | None = None) -> None:
    store = store or open_store()
    run = store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run with id '{run_id}'")
    if State(run.state) in (State.COMPLETED, State.FAILED, State.CANCELLED):
        raise InvalidStateError(f"run {run_id} is already {run.state}")
    now = time.time()
    moved = store.set_run_state(run_id, State.CANCELLED.value,
                                [transitions.run_state(run_id, State.CANCELLED.value, actor=actor, ts=now)],
                                expect=[run.state], fields={"ended_at": now, "state_message": f"cancelled by {actor}"})
    if not moved:
        raise InvalidStateError(f"run {run_id} changed state while cancelling; try again")
