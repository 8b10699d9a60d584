"""The engine's own rows as plain dataclasses: what the store returns for runs and steps.

The SQLModel classes in `agentops.db.schema` define the schema and its migrations; these records carry the
same columns (a test keeps the two in step) so the embedded engine can run without importing SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from functools import cache
from typing import Any


@dataclass(slots=True)
class RunRecord:
    """A row of `flow_runs`."""

    id: str
    flow_name: str
    created_at: float
    updated_at: float
    parameters: str = "{}"
    state: str = "PENDING"
    state_message: str | None = None
    trigger: str = "manual"
    created_by: str | None = None
    parent_run_id: str | None = None
    schedule_id: int | None = None
    scheduled_for: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    worker_id: str | None = None
    heartbeat_at: float | None = None
    epoch: int = 0
    """The run's lease: incremented by every claim; each write of an execution checks it."""
    wake_at: float | None = None
    result: str | None = None
    error: str | None = None
    queue: str | None = None
    """The broker queue the run is sent to (None: AGENTOPS_BROKER_QUEUE)."""


@dataclass(slots=True)
class StepRecord:
    """A row of `step_runs`: one durable step of a run."""

    run_id: str
    step_no: int
    name: str
    state: str
    id: int | None = None
    kind: str = "task"
    inputs_digest: str | None = None
    inputs: str | None = None
    output: str | None = None
    error: str | None = None
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    duration_ms: float | None = None
    tags: str | None = None
    cache_key: str | None = None
    meta: str | None = None
    """Kind-specific facts: model name, token usage, latency, verdict, approval id."""
    tokens: int = 0
    cost: float = 0.0


@dataclass(slots=True)
class LogRecord:
    """A row of `log_lines`: one logged or printed line of a run."""

    run_id: str
    ts: float
    level: str
    message: str
    id: int | None = None
    step_no: int | None = None
    line_key: str | None = None
    """The line's place in the flow (see agentops.engine.logs), so a replay stores it once."""


@cache
def column_names(record: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record))


@cache
def column_defaults(record: type) -> dict[str, Any]:
    """The values a new row takes for the columns an insert leaves out (the table's defaults; ids are generated)."""
    return {f.name: f.default for f in fields(record) if f.default is not MISSING and f.name != "id"}
