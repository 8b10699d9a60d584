"""Records as JSON documents for `--json` output: stored JSON text decoded into objects, never left as strings."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from agentops.core import serialization
from agentops.db.records import LogRecord, RunRecord, StepRecord
from agentops.errors import SerializationError
from agentops.service.audit import ledger_record
from agentops.service.runs import run_detail

if TYPE_CHECKING:
    from agentops.db.schema import Approval

RUN_JSON_FIELDS = ("parameters", "result")
STEP_JSON_FIELDS = ("inputs", "output", "tags", "meta")
APPROVAL_JSON_FIELDS = ("args", "verdict", "context", "decision")


def _decoded(row: dict[str, Any], fields: tuple[str, ...], what: str, *, strict: bool = False) -> dict[str, Any]:
    """`row` with its JSON-text `fields` decoded. A column that does not decode raises (strict), or keeps its
    text and is named under `damaged`, so a damaged run can still be read."""
    decoded = dict(row)
    damaged = []
    for field in fields:
        if row.get(field) is None:
            continue
        try:
            decoded[field] = serialization.loads(row[field], f"{what} {FIELD_NAMES.get(field, field)}")
        except SerializationError:
            if strict:
                raise
            damaged.append(field)
    return decoded | ({"damaged": damaged} if damaged else {})


FIELD_NAMES = {"args": "arguments"}


def run_document(run: RunRecord) -> dict[str, Any]:
    return _decoded(asdict(run), RUN_JSON_FIELDS, f"run {run.id}")


def step_document(step: StepRecord) -> dict[str, Any]:
    return _decoded(asdict(step), STEP_JSON_FIELDS, f"run {step.run_id} step {step.step_no}")


def approval_document(approval: Approval) -> dict[str, Any]:
    return _decoded(approval.model_dump(), APPROVAL_JSON_FIELDS, f"approval {approval.id}", strict=True)


def log_document(line: LogRecord) -> dict[str, Any]:
    return asdict(line)


def run_detail_document(run_id: str) -> dict[str, Any]:
    """A run with its steps, logs, state history and approvals, every stored JSON value as an object."""
    detail = run_detail(run_id)
    return {"run": run_document(detail.run), "steps": [step_document(s) for s in detail.steps],
            "logs": [log_document(x) for x in detail.logs],
            "history": [ledger_record(e) for e in detail.history if e.action.endswith(".state")],
            "approvals": [approval_document(a) for a in detail.approvals]}
