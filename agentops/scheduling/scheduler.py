"""The scheduler: one active instance, under a database lease, turns due schedules into queued runs.

Standby instances keep trying the lease and take over once the active one stops renewing it. Each fire is
compare-and-set on the schedule's next fire time and each run is unique per (schedule, fire time), so a
due run is created exactly once across restarts and takeovers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentops.core import serialization
from agentops.core.ledger import Event
from agentops.db import Store
from agentops.db.scheduling import ScheduleFire
from agentops.engine.registry import get_flow
from agentops.engine.runner import prepare_run
from agentops.engine.sweeper import Sweeper
from agentops.errors import AgentOpsError
from agentops.scheduling.schedules import Cadence

if TYPE_CHECKING:
    from agentops.db.schema import Schedule

log = logging.getLogger("agentops.scheduling.scheduler")

ACTOR = "system:scheduler"
LEASE_NAME = "scheduler"
_RUN_NAMESPACE = uuid.UUID("5b0f1c2e-7d44-4c59-9a8e-2f61a0c3d9b7")


def scheduled_run_id(schedule_id: int, fire_time: float) -> str:
    return uuid.uuid5(_RUN_NAMESPACE, f"{schedule_id}:{fire_time!r}").hex


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Scheduler:
    """Creates the runs of due schedules. `tick()` does one pass; `run()` loops until stopped.

    Each pass runs a schedule's latest due fire time if it is at most `misfire_grace` late. Earlier fire
    times were missed (the scheduler was down or paused): the `skip` policy drops them all; `once` runs the
    most recent of them once when nothing is on time.
    """

    store: Store
    holder: str = field(default_factory=default_holder)
    tick_seconds: float = 0.25
    lease_ttl: float = 10.0
    misfire_grace: float = 60.0
    batch: int = 1000
    active: bool = False
    sweeper: Sweeper | None = None
    """With dispatch on: recovers crashed runs and re-sends unclaimed ones, only while this holds the lease."""

    def tick(self, now: float | None = None) -> list[str]:
        """Fire everything due at `now`; the ids of the runs created."""
        now = time.time() if now is None else now
        self.active = self.store.acquire_lease(LEASE_NAME, self.holder, self.lease_ttl, now)
        if not self.active:
            return []
        if self.sweeper is not None:
            try:
                self.sweeper.maybe_sweep()
            except Exception:
                log.exception("sweep failed; retrying at the next tick")
        created: list[str] = []
        while True:
            due = self.store.due_schedules(now, limit=self.batch)
            if not due:
                return created
            fires = [self.plan(schedule, now) for schedule in due]
            fired = set(self.store.fire_schedules(fires))
            created += [run["id"] for fire in fires if fire.schedule_id in fired for run in fire.runs]
            if len(due) < self.batch:
                return created

    def plan(self, schedule: Schedule, now: float) -> ScheduleFire:
        """The runs this schedule owes at `now`, per its catch-up policy, and its next fire time."""
        assert schedule.id is not None and schedule.next_fire_at is not None
        cadence = Cadence.of(schedule)
        due = list(cadence.fires_between(schedule.next_fire_at, now))
        latest, missed = due[-1:], due[:-1]
        if latest and now - latest[0] > self.misfire_grace:
            latest, missed = [], due
        to_run = latest or (missed[-1:] if schedule.catchup == "once" else [])
        payload = {"schedule_id": schedule.id, "flow": schedule.flow_name, "fire_times": to_run,
                   "missed": len(missed) - (0 if latest else len(to_run))}
        runs: list[dict[str, Any]] = []
        events: list[Event] = []
        try:
            runs, events = self._runs(schedule, to_run, now)
            action = "schedule.fired"
        except AgentOpsError as exc:
            action, payload["error"] = "schedule.failed", str(exc)
            log.warning("schedule %s (%s) cannot fire: %s", schedule.id, schedule.flow_name, exc)
        events.append(Event(actor=ACTOR, action=action, payload=payload, ts=now))
        return ScheduleFire(schedule.id, schedule.next_fire_at, cadence.next_after(now), runs, events)

    def _runs(self, schedule: Schedule, fire_times: list[float],
              now: float) -> tuple[list[dict[str, Any]], list[Event]]:
        flow = get_flow(schedule.flow_name)
        params = serialization.loads(schedule.parameters, f"schedule {schedule.id} parameters")
        runs: list[dict[str, Any]] = []
        events: list[Event] = []
        for fire_time in fire_times:
            values, run_events = prepare_run(
                flow, params, trigger="schedule", run_id=scheduled_run_id(schedule.id or 0, fire_time), now=now,
                schedule_id=schedule.id, scheduled_for=fire_time, created_by=schedule.created_by)
            for ev in run_events:
                ev.actor = ACTOR
            runs.append(values)
            events += run_events
        return runs, events

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set; sleep until the next fire time when it is sooner than a tick."""
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:
                    log.exception("scheduler tick failed; retrying")
                stop.wait(self._pause())
        finally:
            if self.active:
                self.store.release_lease(LEASE_NAME, self.holder)

    def _pause(self) -> float:
        if not self.active:
            return self.tick_seconds
        upcoming = self.store.next_schedule_fire()
        if upcoming is None:
            return self.tick_seconds
        return min(self.tick_seconds, max(0.005, upcoming - time.time()))
