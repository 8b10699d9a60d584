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
    document = _decoded(asdict(step), STEP_JSON_FIELDS, f"run {step.run_id} step {step.step_no}")
    for field in ("output", "meta"):
        document[field] = _contents_nested(document.get(field))
    return document


def _contents_nested(value: Any) -> Any:
    """Every `content` (a tool's output as its model was given it, in a tool step and in a model step's messages)
    that spells a JSON object or array, as that object."""
    if isinstance(value, list):
        return [_contents_nested(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {k: _nested(v) if k == "content" and isinstance(v, str) else _contents_nested(v) for k, v in value.items()}


def _nested(text: str) -> Any:
    """Text as the object it spells, when it is a JSON object or array; any other text as it is."""
    if not text.lstrip().startswith(("{", "[")):
        return text
    try:
        return serialization.loads(text, "tool content")
    except SerializationError:
        return text


def approval_document(approval: Approval) -> dict[str, Any]:
    document = _decoded(approval.model_dump(), APPROVAL_JSON_FIELDS, f"approval {approval.id}", strict=True)
    document["context"] = _contents_nested(document.get("context"))
    return document


def log_document(line: LogRecord) -> dict[str, Any]:
    return asdict(line)


def run_detail_document(run_id: str) -> dict[str, Any]:
    """A run with its steps, logs, state history and approvals, every stored JSON value as an object."""
    detail = run_detail(run_id)
    return {"run": run_document(detail.run), "steps": [step_document(s) for s in detail.steps],
            "logs": [log_document(x) for x in detail.logs],
            "history": [ledger_record(e) for e in detail.history if e.action.endswith(".state")],
            "approvals": [approval_document(a) for a in detail.approvals]}
