"""Run and step states, and the predicates the engine and the app share."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    AWAITING_RETRY = "AWAITING_RETRY"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"


TERMINAL: frozenset[State] = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})
"""A run in one of these states never runs again on its own."""

RESUMABLE: frozenset[State] = frozenset(
    {State.PENDING, State.SCHEDULED, State.AWAITING_RETRY, State.AWAITING_APPROVAL, State.CRASHED}
)
"""States from which `runs resume` (or a worker) may pick a run up again."""


def is_terminal(state: str | State) -> bool:
    return State(state) in TERMINAL
