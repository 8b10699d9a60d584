"""A run's outcome in words: its state, what it returned, the governed calls that were refused, rejected or
expired, and the approval it waits for. What the chat reply, `agentops run` and `runs list` say about a run.

The counts come from the run's own steps (the policy step's status, the approval step's decision), which are
written in the same transaction as their ledger events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentops.core import serialization
from agentops.core.states import State
from agentops.db import open_store
from agentops.db.records import RunRecord

_PROBLEMS = {("policy", "refused"): "refused", ("approval", "reject"): "rejected",
             ("approval", "expired"): "expired"}
_STATE_WORDS = {State.PENDING: "queued, waiting for a worker", State.RUNNING: "running",
                State.AWAITING_RETRY: "waiting to retry a step", State.CANCELLED: "cancelled",
                State.CRASHED: "crashed (a worker will pick it up again)"}


@dataclass(frozen=True)
class Waiting:
    """An approval the run is waiting for."""

    id: str
    action: str
    args: dict[str, Any]

    @property
    def words(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.args.items())
        return f"approval {self.id}: {self.action}({shown})"


@dataclass(frozen=True)
class Outcome:
    run_id: str
    flow: str
    state: str
    problems: Counter[str] = field(default_factory=Counter)
    waiting: list[Waiting] = field(default_factory=list)
    error: str | None = None
    result: str | None = None

    @property
    def note(self) -> str:
        """e.g. "1 refused call, 2 rejected"; empty when every governed call went through."""
        parts = [f"{n} {kind} call{'s' if n > 1 else ''}" for kind in ("refused", "rejected", "expired")
                 if (n := self.problems.get(kind, 0))]
        return ", ".join(parts)

    @property
    def words(self) -> str:
        state = State(self.state)
        if state == State.AWAITING_APPROVAL:
            text = "waiting for " + ("; ".join(w.words for w in self.waiting) or "an approval")
        elif state == State.FAILED:
            text = f"failed: {self.error or 'no error recorded'}"
        elif state == State.COMPLETED:
            text = "completed" + (f": {self.result}" if self.result else "")
        else:
            text = _STATE_WORDS.get(state, state.value.lower())
        return f"{text} ({self.note})" if self.note else text


def _short(value: Any, limit: int = 80) -> str:
    text = " ".join((value if isinstance(value, str) else json.dumps(value, default=str)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _result_words(run: RunRecord) -> str | None:
    """A one-line account of what a completed run returned: its text, or its summary, answer or subject."""
    try:
        result = serialization.loads(run.result, f"run {run.id} result") if run.result else None
    except Exception:
        return None
    if isinstance(result, dict):
        result = next((result[k] for k in ("summary", "answer", "subject") if isinstance(result.get(k), str)), None)
    return _short(result, 200) if isinstance(result, str) and result.strip() else None


def problems_of(run_ids: Sequence[str]) -> dict[str, Counter[str]]:
    """Per run: how many of its governed calls were refused by the policy, rejected or left to expire."""
    found: dict[str, Counter[str]] = {run_id: Counter() for run_id in run_ids}
    for run_id, kind, meta in open_store().governed_step_meta(run_ids):
        try:
            facts = json.loads(meta)
        except ValueError:
            continue
        status = facts.get("status") if kind == "policy" else facts.get("decision")
        if problem := _PROBLEMS.get((kind, status)):
            found[run_id][problem] += 1
    return found


def outcome_of(run: RunRecord) -> Outcome:
    pending = open_store().list_approvals(status="pending", run_id=run.id) if run.state == State.AWAITING_APPROVAL \
        else []
    waiting = [Waiting(a.id, a.action, serialization.loads(a.args, f"approval {a.id} arguments") or {})
               for a in pending]
    return Outcome(run.id, run.flow_name, run.state, problems_of([run.id])[run.id], waiting, run.error,
                   _result_words(run) if run.state == State.COMPLETED else None)
