"""Schedules for every face: add, list, pause, resume, delete, and the runs a schedule made."""

from __future__ import annotations

from agentops.db import open_store
from agentops.db.records import RunRecord
from agentops.scheduling.schedules import (
    Cadence,
    add_schedule,
    delete_schedule,
    describe,
    get_schedule,
    list_schedules,
    parameters_text,
    pause_schedule,
    resume_schedule,
    set_parameters,
)

__all__ = ["Cadence", "add_schedule", "delete_schedule", "describe", "get_schedule", "list_schedules",
           "parameters_text", "pause_schedule", "recent_runs", "resume_schedule", "set_parameters"]


def recent_runs(schedule_id: int, limit: int = 5) -> list[RunRecord]:
    return open_store().runs_for_schedule(schedule_id, limit=limit)
