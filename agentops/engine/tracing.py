"""OpenTelemetry traces of runs, steps, model calls and tool calls, exported over OTLP/HTTP; off by default.

Tracing is on when the standard variables ask for it: `OTEL_TRACES_EXPORTER=otlp`, or an OTLP endpoint
(`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`) with `OTEL_TRACES_EXPORTER` unset;
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turns it off. The exporter, the batch processor, the
sampler and the resource read their own `OTEL_*` variables. When it is off, nothing here imports OpenTelemetry
and every span is a no-op.

One run is one trace, whichever processes and hosts execute it: the trace id is the run id (a run id that is
not 32 hex digits is hashed), and the run's root span has an id derived from it. Each execution is a span under
that root; the broker message carries the W3C `traceparent` of the root, and an execution continues the
context its message carried. The root span itself is exported once, by the execution that ends the run, from
the run's creation to its end. A run that never ends (it waits for a decision forever) has no root span.

No secret reaches a span: attributes are ids, names, states, verdicts and counts, and every text value passes
the redactor (known secret values, secret-looking keys and tokens are removed); an error is its type and its
redacted message.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentops.core.redaction import default_redactor, is_secret_key
from agentops.db import Store
from agentops.db.open import on_open
from agentops.errors import ConfigError, FlowPaused

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import Tracer

TRACER_NAME = "agentops"
MAX_TEXT = 512
"""Characters kept of one text attribute."""

Attributes = Mapping[str, Any]


class Span:
    """A span being recorded (or, with tracing off, nothing)."""

    def __init__(self, span: OtelSpan | None = None) -> None:
        self._span = span

    def set(self, attributes: Attributes) -> None:
        if self._span is not None:
            self._span.set_attributes(clean(attributes))


NOOP = Span()


def clean(attributes: Attributes) -> dict[str, str | bool | int | float]:
    """Attributes fit for a span: no None, no secret-looking key, text redacted and cut."""
    out: dict[str, str | bool | int | float] = {}
    for key, value in attributes.items():
        if value is None or is_secret_key(key.rsplit(".", 1)[-1]):
            continue
        if isinstance(value, bool | int | float):
            out[key] = value
        else:
            out[key] = default_redactor().text(str(value))[:MAX_TEXT]
    return out


# -- on or off ----------------------------------------------------------------------------------------

_lock = threading.Lock()
_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_enabled: bool | None = None


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def enabled() -> bool:
    """Whether the OTEL_* variables turn tracing on (decided once per process; a bad value is a ConfigError)."""
    global _enabled
    if _enabled is None:
        _enabled = _decide()
    return _enabled


def _decide() -> bool:
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return False
    exporters = [e.strip() for e in _env("OTEL_TRACES_EXPORTER").lower().split(",") if e.strip()]
    if exporters:
        unknown = [e for e in exporters if e not in ("otlp", "none")]
        if unknown:
            raise ConfigError(f"OTEL_TRACES_EXPORTER={','.join(exporters)}: agentops exports traces over OTLP "
                              "(otlp) or not at all (none)")
        on = "otlp" in exporters
    else:
        on = bool(_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if on:
        for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = _env(name)
            if protocol:
                if protocol != "http/protobuf":
                    raise ConfigError(f"{name}={protocol}: agentops exports traces over OTLP/HTTP only "
                                      "(http/protobuf)")
                break
    return on


def _check_on_open(_: Store) -> None:
    """A bad OTEL_* value stops the process where a bad setting does, before a run is written."""
    enabled()


on_open(_check_on_open)


def _tracer_or_none() -> Tracer | None:
    global _provider, _tracer
    if not enabled():
        return None
    with _lock:
        if _tracer is None:
            _provider = _make_provider()
            _tracer = _provider.get_tracer(TRACER_NAME)
        return _tracer


def _make_provider() -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = _env("OTEL_SERVICE_NAME") or "service.name=" in _env("OTEL_RESOURCE_ATTRIBUTES")
    resource = Resource.create({"host.name": socket.gethostname(), "process.pid": os.getpid(),
                                **({} if named else {"service.name": TRACER_NAME})})
    provider = TracerProvider(resource=resource, id_generator=_run_ids())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def flush(timeout_seconds: float = 5.0) -> None:
    """Export the spans still waiting in the batch (a process about to exit, a test)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_seconds * 1000))


def shutdown() -> None:
    global _provider, _tracer, _enabled
    with _lock:
        if _provider is not None:
            _provider.shutdown()
        _provider, _tracer, _enabled = None, None, None


def forget_after_fork() -> None:
    """In a forked child: decide again, and build a provider of our own on the first span."""
    global _provider, _tracer, _enabled, _lock
    _provider, _tracer, _enabled, _lock = None, None, None, threading.Lock()


# -- one run, one trace -------------------------------------------------------------------------------

@dataclass
class RunTrace:
    run_id: str
    flow_name: str
    created_at: float | None
    trace_id: int
    root_span_id: int
    ended: tuple[str, str | None] | None = None
    """(state, error) once this execution ended the run."""


def run_trace_ids(run_id: str) -> tuple[int, int]:
    """(trace id, root span id) of a run: the run id itself when it is 32 hex digits, else its hash."""
    digest = hashlib.sha256(f"agentops-run:{run_id}".encode()).hexdigest()
    try:
        trace_id = int(run_id, 16) if len(run_id) == 32 else 0
    except ValueError:
        trace_id = 0
    return trace_id or int(digest[:32], 16), int(digest[32:48], 16) or 1


def traceparent(run_id: str) -> str:
    """The W3C traceparent of a run's root span, for the broker message that carries the run."""
    trace_id, span_id = run_trace_ids(run_id)
    return f"00-{trace_id:032x}-{span_id:016x}-01"


_carried: ContextVar[str | None] = ContextVar("agentops_carried_traceparent", default=None)
_run: ContextVar[RunTrace | None] = ContextVar("agentops_run_trace", default=None)
_forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("agentops_forced_span_ids", default=None)


@contextmanager
def continuing(carried: object) -> Iterator[None]:
    """Executions in this context continue the trace context a broker message carried."""
    token = _carried.set(carried if isinstance(carried, str) and len(carried) <= 128 else None)
    try:
        yield
    finally:
        _carried.reset(token)


def _run_ids() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunIds(RandomIdGenerator):
        """Random ids, except for a run's root span, whose ids follow from the run id."""

        def generate_span_id(self) -> int:
            forced = _forced_ids.get()
            return forced[1] if forced else super().generate_span_id()

        def generate_trace_id(self) -> int:
            forced = _forced_ids.get()
            return forced[0] if forced else super().generate_trace_id()

    return RunIds()


def _parent_context(run: RunTrace) -> Any:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carried = _carried.get()
    if carried:
        context = TraceContextTextMapPropagator().extract({"traceparent": carried})
        if trace.get_current_span(context).get_span_context().is_valid:
            return context
    parent = trace.SpanContext(run.trace_id, run.root_span_id, is_remote=True,
                               trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


@contextmanager
def execution(run_id: str, flow_name: str, *, created_at: float | None, worker_id: str,
              epoch: int) -> Iterator[Span]:
    """The span of one execution of a run, in the run's trace."""
    tracer = _tracer_or_none()
    if tracer is None:
        yield NOOP
        return
    run = RunTrace(run_id, flow_name, created_at, *run_trace_ids(run_id))
    token = _run.set(run)
    try:
        with tracer.start_as_current_span(f"execute {flow_name}", context=_parent_context(run),
                                          record_exception=False, set_status_on_exception=False) as otel:
            handle = Span(otel)
            handle.set({"agentops.run.id": run_id, "agentops.flow.name": flow_name, "agentops.worker.id": worker_id,
                        "agentops.run.epoch": epoch})
            try:
                yield handle
            except BaseException as exc:
                _failed(otel, exc)
                raise
    finally:
        _run.reset(token)
    if run.ended is not None:
        _export_root(tracer, run, *run.ended)


def run_ended(state: str, error: str | None = None) -> None:
    """The run this execution executes has ended in `state`: its root span is exported once the execution's
    span has ended, from the run's creation to then."""
    run = _run.get()
    if run is not None:
        run.ended = (state, error)


def _export_root(tracer: Tracer, run: RunTrace, state: str, error: str | None) -> None:
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Status, StatusCode

    start = int((run.created_at or time.time()) * 1e9)
    ids = _forced_ids.set((run.trace_id, run.root_span_id))
    try:
        root = tracer.start_span(f"run {run.flow_name}", context=otel_context.Context(), start_time=start)
    finally:
        _forced_ids.reset(ids)
    root.set_attributes(clean({"agentops.run.id": run.run_id, "agentops.flow.name": run.flow_name,
                               "agentops.run.state": state}))
    if error:
        root.set_status(Status(StatusCode.ERROR, default_redactor().text(error)[:MAX_TEXT]))
    root.end()


# -- steps, model calls, tool calls -------------------------------------------------------------------

@contextmanager
def span(name: str, attributes: Attributes | None = None) -> Iterator[Span]:
    """A span under the current one (a step under its execution, a model call under its step). An exception
    marks it failed with its type and redacted message; a run pausing for a decision does not."""
    tracer = _tracer_or_none()
    if tracer is None:
        yield NOOP
        return
    with tracer.start_as_current_span(name, record_exception=False, set_status_on_exception=False) as otel:
        handle = Span(otel)
        if attributes:
            handle.set(attributes)
        try:
            yield handle
        except BaseException as exc:
            _failed(otel, exc)
            raise


def current() -> Span:
    """The span being recorded in this context (NOOP when none is, or tracing is off)."""
    if _tracer is None:
        return NOOP
    from opentelemetry import trace

    found = trace.get_current_span()
    return Span(found) if found.is_recording() else NOOP


def _failed(otel: OtelSpan, exc: BaseException) -> None:
    if isinstance(exc, FlowPaused):
        otel.set_attribute("agentops.paused", True)
        return
    from opentelemetry.trace import Status, StatusCode

    otel.set_attribute("error.type", type(exc).__name__)
    otel.set_status(Status(StatusCode.ERROR, default_redactor().text(f"{type(exc).__name__}: {exc}")[:MAX_TEXT]))
