"""Run and step states, and the sets of them that the engine, the service, the CLI and the app share.

Every rule about which states allow what is written here once; nothing else lists states by hand.
"""

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
"""A run in one of these states never runs again on its own (a person may still resume a FAILED one)."""

CLAIMABLE: frozenset[State] = frozenset({State.PENDING, State.CRASHED})
"""A worker claims runs in these states on its own: queued ones, and crashed ones it recovers."""

RESUMABLE: frozenset[State] = frozenset(
    {State.PENDING, State.SCHEDULED, State.AWAITING_RETRY, State.AWAITING_APPROVAL, State.CRASHED, State.FAILED}
)
"""A person may resume a run in one of these states (`runs resume`, the app): it executes again, replaying its
completed steps. Only running, completed and cancelled runs cannot be resumed."""

STOPPED_SHORT: frozenset[State] = frozenset({State.AWAITING_RETRY, State.CRASHED, State.FAILED})
"""Resumable runs that stopped before finishing; the app offers to resume these (the other resumable ones are
waiting for a worker, the scheduler or a decision)."""

SETTLED: frozenset[State] = TERMINAL | {State.AWAITING_APPROVAL, State.CRASHED}
"""A run that stopped moving for now: finished, waiting for a person, or crashed (until a worker recovers it).
Faces that follow a run stop following it here."""


def is_terminal(state: str | State) -> bool:
    return State(state) in TERMINAL

