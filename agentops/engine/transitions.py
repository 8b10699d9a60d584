"""Audit events for state transitions of runs and steps (the ledger stores every one)."""

from __future__ import annotations

import time
from typing import Any

from agentops.core.ledger import Event

ENGINE = "system:engine"


def run_state(run_id: str, state: str, *, actor: str = ENGINE, ts: float | None = None,
              **payload: Any) -> Event:
    return Event(actor=actor, action="run.state", run_id=run_id, payload={"state": state, **payload},
                 ts=ts if ts is not None else time.time())


def step_state(run_id: str, step_no: int, name: str, state: str, *, actor: str = ENGINE,
               ts: float | None = None, **payload: Any) -> Event:
    return Event(actor=actor, action="step.state", run_id=run_id, step_no=step_no,
                 payload={"state": state, "task": name, **payload}, ts=ts if ts is not None else time.time())
