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
from agentops.core.states import RESUMABLE, State, is_terminal
from agentops.db import Store, open_store
from agentops.engine import dispatch, secrets, tracing, transitions  # noqa: F401  (dispatch: for its on_open hook)
from agentops.engine.context import RunContext, current_run
from agentops.engine.heartbeat import heartbeater
from agentops.engine.logs import install_print_capture
from agentops.engine.registry import get_flow
from agentops.errors import (
    FlowPaused,
    InvalidStateError,
    LeaseLost,
    NotFoundError,
    ParameterError,
    RunFailed,
    SerializationError,
)

if TYPE_CHECKING:
    from agentops.db.records import RunRecord
    from agentops.engine.flows import Flow


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    state: State
    result: Any = None
    error: str | None = None
    message: str | None = None


CREATED_EPOCH = 1
"""The epoch of a run created already claimed (`create_run(queue=False)`): its creator executes it under this."""


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
              "state": State.PENDING.value, "queue": flow.run_queue(), **extra}
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
    """Validate parameters, then store a new run: PENDING (queued for a worker) or RUNNING (claimed here, under
    CREATED_EPOCH).

    Nothing is written when the parameters are wrong.
    """
    values, events = prepare_run(flow, parameters, trigger=trigger, created_by=created_by,
                                 parent_run_id=parent_run_id, run_id=run_id, inline_secrets=not queue)
    if not queue:
        now = values["created_at"]
        values.update(state=State.RUNNING.value, worker_id=worker_id or local_worker_id(), heartbeat_at=now,
                      started_at=now, epoch=CREATED_EPOCH)
        events.append(transitions.run_state(values["id"], State.RUNNING.value, ts=now, epoch=CREATED_EPOCH))
    store = store or open_store()
    store.create_run(values, events)
    return values["id"]


def execute_run(run_id: str, *, worker_id: str, epoch: int, store: Store | None = None,
                claimed: RunRecord | None = None) -> RunOutcome:
    """Run (or replay) a run this worker has claimed under `epoch`, to completion, failure or a pause.

    `claimed` is the run as the claim returned it (saves reading it again). If another execution takes the run
    over meanwhile, this one stops at its next write (LeaseLost), writes nothing more, and the outcome is the
    run's state as the new owner has it.
    """
    store = store or open_store()
    as_claimed = claimed is not None and claimed.id == run_id and claimed.epoch == epoch
    run = claimed if as_claimed else store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run with id '{run_id}'")
    recorded = {s.step_no: s for s in (store.steps_of_claim(run) if as_claimed else store.steps_for_run(run_id))}
    ctx = RunContext(run_id=run_id, flow_name=run.flow_name, store=store, recorded=recorded, worker_id=worker_id,
                     epoch=epoch)
    with tracing.execution(run_id, run.flow_name, created_at=run.created_at, worker_id=worker_id,
                           epoch=epoch) as span:
        outcome = _validated_and_executed(ctx, run)
        span.set({"agentops.run.state": outcome.state.value, "agentops.steps.recorded": len(recorded)})
    return outcome


def _validated_and_executed(ctx: RunContext, run: RunRecord) -> RunOutcome:
    try:
        flow = get_flow(run.flow_name)
        stored = serialization.loads(run.parameters, f"run {run.id} parameters") or {}
        params = flow.validate_parameters(secrets.resolve(flow, run.id, stored))
    except Exception as exc:
        return _finish(ctx, State.FAILED, error=f"{type(exc).__name__}: {exc}")
    with secret_values(secret_parameter_values(params)):
        return _execute(ctx, flow, params)


def _execute(ctx: RunContext, flow: Flow[Any, Any], params: dict[str, Any]) -> RunOutcome:
    store, run_id = ctx.store, ctx.run_id
    ctx.log_prints = flow.log_prints
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
        store.add_logs(ctx.take_logs(), epoch=ctx.epoch)
        return RunOutcome(run_id, State.AWAITING_APPROVAL, message=pause.reason)
    except LeaseLost as lost:
        return _lease_lost(ctx, lost)
    except Exception as exc:
        return _finish(ctx, State.FAILED, error=f"{type(exc).__name__}: {exc}")
    finally:
        current_run.reset(token)
        beats.unregister(run_id)
    try:
        text = serialization.stored(result)
    except SerializationError as exc:
        return _finish(ctx, State.FAILED, error=f"flow '{flow.name}' returned a result that cannot be stored: {exc}")
    return _finish(ctx, State.COMPLETED, result=result, result_text=text)


def _finish(ctx: RunContext, state: State, *, result: Any = None, result_text: str | None = None,
            error: str | None = None) -> RunOutcome:
    secrets.forget(ctx.run_id)
    error = default_redactor().text(error) if error else error
    now = time.time()
    fields = {"ended_at": now, "result": result_text, "error": error, "heartbeat_at": None,
              "state_message": error}
    event = transitions.run_state(ctx.run_id, state.value, ts=now, **({"error": error} if error else {}))
    if ctx.store.set_run_state(ctx.run_id, state.value, [event], expect=[State.RUNNING.value], fence=ctx.epoch,
                               fields=fields, logs=ctx.take_logs()):
        tracing.run_ended(state.value, error)
        return RunOutcome(ctx.run_id, state, result=result, error=error)
    current = ctx.store.get_run(ctx.run_id)
    if current is None or current.epoch != ctx.epoch:
        return _lease_lost(ctx, ctx.lease_lost("recording the run's end"))
    return RunOutcome(ctx.run_id, State(current.state), error=error, message="the run changed state while executing")


def _lease_lost(ctx: RunContext, lost: LeaseLost) -> RunOutcome:
    """The run was taken from this execution: it writes only the ledger's note of that, and reports the run's
    state as its new owner has it."""
    ctx.take_logs()
    current = ctx.store.get_run(ctx.run_id)
    state = State(current.state) if current is not None else State.CANCELLED
    ctx.store.append_events([Event(actor=ctx.worker_id, action="run.lease_lost", run_id=ctx.run_id, payload={
        "epoch": ctx.epoch, "current_epoch": current.epoch if current is not None else None,
        "state": state.value, "where": lost.where})])
    return RunOutcome(ctx.run_id, state, message=str(lost))


def call_flow(flow: Flow[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A direct call of a flow: a recorded run executed in this thread; inside another flow, an inline call."""
    if current_run.get() is not None:
        return flow.fn(*args, **kwargs)
    bound = inspect.signature(flow.fn).bind_partial(*args, **kwargs)
    store = open_store()
    worker_id = local_worker_id()
    run_id = create_run(flow, dict(bound.arguments), queue=False, store=store, worker_id=worker_id)
    outcome = execute_run(run_id, worker_id=worker_id, epoch=CREATED_EPOCH, store=store)
    if outcome.state == State.COMPLETED:
        return outcome.result
    if outcome.state == State.FAILED:
        raise RunFailed(run_id, f"run {run_id} of flow '{flow.name}' failed: {outcome.error}")
    raise InvalidStateError(f"run {run_id} of flow '{flow.name}' is {outcome.state.value}: {outcome.message}")


def _resumable(store: Store, run_id: str) -> RunRecord:
    run = store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run with id '{run_id}'")
    if run.state not in RESUMABLE:
        allowed = ", ".join(sorted(RESUMABLE))
        raise InvalidStateError(f"run {run_id} is {run.state}; only {allowed} runs can be resumed")
    return run


def requeue_run(run_id: str, *, actor: str = transitions.ENGINE, store: Store | None = None) -> None:
    """Queue a run that is not running again (PENDING) for a worker, which replays its steps; with dispatch on,
    the commit sends it to the broker."""
    store = store or open_store()
    run = _resumable(store, run_id)
    event = transitions.run_state(run_id, State.PENDING.value, actor=actor, resumed_from=run.state)
    if not store.set_run_state(run_id, State.PENDING.value, [event], expect=[run.state],
                               fields={"worker_id": None, "heartbeat_at": None,
                                       "state_message": f"queued again by {actor}"}):
        raise InvalidStateError(f"run {run_id} changed state while queueing it; try again")


def resume_run(run_id: str, *, actor: str = transitions.ENGINE, store: Store | None = None) -> RunOutcome:
    """Claim a run that is not running and execute it now, in this process, replaying its steps."""
    store = store or open_store()
    run = _resumable(store, run_id)
    worker_id = local_worker_id()

    def events_for(before: RunRecord) -> list[Event]:
        return [transitions.run_state(run_id, State.RUNNING.value, actor=actor, resumed_from=before.state,
                                      epoch=before.epoch + 1)]

    claimed = store.claim_run_by_id(run_id, worker_id, [run.state], events_for)
    if claimed is None:
        raise InvalidStateError(f"run {run_id} changed state while resuming; try again")
    return execute_run(run_id, worker_id=worker_id, epoch=claimed.epoch, store=store)


def cancel_run(run_id: str, *, actor: str = transitions.ENGINE, store: Store | None = None) -> None:
    """Cancel a run that has not finished. An execution in progress loses its lease: its next write is refused."""
    store = store or open_store()
    run = store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run with id '{run_id}'")
    if is_terminal(run.state):
        raise InvalidStateError(f"run {run_id} is already {run.state}")
    now = time.time()
    moved = store.set_run_state(run_id, State.CANCELLED.value,
                                [transitions.run_state(run_id, State.CANCELLED.value, actor=actor, ts=now)],
                                expect=[run.state], revoke=True,
                                fields={"ended_at": now, "state_message": f"cancelled by {actor}", "worker_id": None,
                                        "heartbeat_at": None})
    if not moved:
        raise InvalidStateError(f"run {run_id} changed state while cancelling; try again")
