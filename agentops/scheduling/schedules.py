"""Cron and interval schedules: validation, fire times, and the operations that manage them.

A cron schedule is evaluated in its own timezone (so "0 9 * * 1-5" in Europe/Berlin stays at 09:00 local
across daylight-saving changes). An interval schedule fires at `created_at + k * interval`.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentops.core import serialization
from agentops.core.ledger import Event
from agentops.db import Store, open_store
from agentops.engine.registry import find_flow
from agentops.errors import AgentOpsError, NotFoundError, ScheduleError
from agentops.governance.users import CAN_SCHEDULE, require_user
from agentops.scheduling.cron_words import cron_words

if TYPE_CHECKING:
    from agentops.db.schema import Schedule

CATCHUP_POLICIES = ("skip", "once")
MIN_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class Cadence:
    """When a schedule fires: exactly one of a cron expression or an interval, in a timezone."""

    cron: str | None
    interval_seconds: float | None
    timezone: str
    anchor: float

    @classmethod
    def of(cls, schedule: Schedule) -> Cadence:
        return cls(schedule.cron, schedule.interval_seconds, schedule.timezone, schedule.created_at)

    def validate(self) -> None:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ScheduleError("give exactly one of --cron EXPR or --interval SECONDS")
        zone(self.timezone)
        from croniter import croniter

        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ScheduleError(f"'{self.cron}' is not a cron expression (e.g. \"0 9 * * 1-5\")")
        if self.interval_seconds is not None and not (
                math.isfinite(self.interval_seconds) and self.interval_seconds >= MIN_INTERVAL_SECONDS):
            raise ScheduleError(f"the interval must be at least {MIN_INTERVAL_SECONDS:g} s, "
                                f"not {self.interval_seconds:g}")

    def next_after(self, after: float) -> float:
        """The first fire time strictly after `after` (epoch seconds)."""
        if self.interval_seconds is not None:
            if after < self.anchor:
                return self.anchor
            steps = math.floor((after - self.anchor) / self.interval_seconds) + 1
            return self.anchor + steps * self.interval_seconds
        if self.cron is None:
            raise ScheduleError("a schedule needs a cron expression or an interval")
        start = datetime.fromtimestamp(after, zone(self.timezone))
        from croniter import croniter

        return float(croniter(self.cron, start).get_next(datetime).timestamp())

    def first_fire(self) -> float:
        """An interval fires at its anchor; a cron at its first match after the anchor."""
        return self.anchor if self.interval_seconds is not None else self.next_after(self.anchor)

    def fires_between(self, first: float, until: float, limit: int = 1000) -> Iterator[float]:
        """Fire times from `first` up to and including `until`, at most `limit` (the most recent ones)."""
        if first > until:
            return
        if self.interval_seconds is not None:
            count = math.floor((until - first) / self.interval_seconds) + 1
            skip = max(0, count - limit)
            for k in range(skip, count):
                yield first + k * self.interval_seconds
            return
        times = [first]
        while len(times) < 100_000:
            upcoming = self.next_after(times[-1])
            if upcoming > until:
                break
            times.append(upcoming)
        yield from times[-limit:]

    def describe(self) -> str:
        if self.cron is not None:
            words = cron_words(self.cron)
            return f"{words} {self.timezone} (cron {self.cron})" if words else f"cron {self.cron} ({self.timezone})"
        return f"every {_seconds_text(self.interval_seconds or 0)}"


def _seconds_text(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown timezone '{name}' (use an IANA name such as Europe/Berlin or UTC)") from None


def add_schedule(flow_name: str, *, cron: str | None = None, interval_seconds: float | None = None,
                 timezone: str = "UTC", parameters: dict[str, Any] | None = None, catchup: str = "skip",
                 user: str | None = None, store: Store | None = None) -> int:
    """Validate everything (cadence, flow, parameters, role), then store the schedule; its id."""
    store = store or open_store()
    require_user(store, user, CAN_SCHEDULE, "adding a schedule")
    if catchup not in CATCHUP_POLICIES:
        raise ScheduleError(f"catch-up policy must be one of {', '.join(CATCHUP_POLICIES)}, not '{catchup}'")
    now = time.time()
    cadence = Cadence(cron, interval_seconds, timezone, now)
    cadence.validate()
    params = find_flow(flow_name).validate_parameters(parameters or {})
    values = {"flow_name": flow_name, "cron": cron, "interval_seconds": interval_seconds, "timezone": timezone,
              "parameters": serialization.dumps(params), "catchup": catchup, "paused": False,
              "next_fire_at": cadence.first_fire(), "created_at": now, "created_by": user}
    event = Event(actor=f"user:{user}", action="schedule.created",
                  payload={"flow": flow_name, "cadence": cadence.describe(), "parameters": params,
                           "catchup": catchup})
    return store.add_schedule(values, [event])


def list_schedules(store: Store | None = None) -> list[Schedule]:
    return (store or open_store()).list_schedules()


def get_schedule(schedule_id: int, store: Store | None = None) -> Schedule:
    found = (store or open_store()).get_schedule(schedule_id)
    if found is None:
        raise NotFoundError(f"no schedule with id {schedule_id}")
    return found


def pause_schedule(schedule_id: int, *, user: str | None, store: Store | None = None) -> None:
    _change(schedule_id, "schedule.paused", {"paused": True}, user=user, store=store)


def resume_schedule(schedule_id: int, *, user: str | None, store: Store | None = None) -> None:
    """Resume from now: fire times missed while paused are not caught up."""
    store = store or open_store()
    schedule = get_schedule(schedule_id, store)
    upcoming = Cadence.of(schedule).next_after(time.time())
    _change(schedule_id, "schedule.resumed", {"paused": False, "next_fire_at": upcoming}, user=user, store=store)


def delete_schedule(schedule_id: int, *, user: str | None, store: Store | None = None) -> None:
    store = store or open_store()
    require_user(store, user, CAN_SCHEDULE, "deleting a schedule")
    event = Event(actor=f"user:{user}", action="schedule.deleted", payload={"schedule_id": schedule_id})
    if not store.delete_schedule(schedule_id, [event]):
        raise NotFoundError(f"no schedule with id {schedule_id}")


def _change(schedule_id: int, action: str, values: dict[str, Any], *, user: str | None,
            store: Store | None) -> None:
    store = store or open_store()
    require_user(store, user, CAN_SCHEDULE, action.replace(".", " "))
    event = Event(actor=f"user:{user}", action=action, payload={"schedule_id": schedule_id})
    if not store.update_schedule(schedule_id, values, [event]):
        raise NotFoundError(f"no schedule with id {schedule_id}")


def set_parameters(flow_name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters a schedule sets: without nulls and without values equal to the flow's own defaults (all of
    them kept when the flow is not loaded here)."""
    try:
        signature = inspect.signature(find_flow(flow_name).fn).parameters
    except AgentOpsError:
        signature = {}  # type: ignore[assignment]
    empty = inspect.Parameter.empty
    return {k: v for k, v in parameters.items() if v is not None
            and not (k in signature and signature[k].default is not empty and signature[k].default == v)}


def parameters_text(flow_name: str, parameters: dict[str, Any]) -> str:
    """`dataset = sales · recipients = ops@example.com`, or `the flow's defaults`."""
    shown = set_parameters(flow_name, parameters)
    if not shown:
        return "the flow's defaults"
    return " · ".join(f"{k} = {_value_text(v)}" for k, v in shown.items())


def _value_text(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    return value if isinstance(value, str) else serialization.dumps(value)


def describe(schedule: Schedule) -> dict[str, Any]:
    """A schedule as people read it (CLI tables, --json and the app)."""
    return {"id": schedule.id, "flow": schedule.flow_name, "when": Cadence.of(schedule).describe(),
            "timezone": schedule.timezone, "parameters": serialization.loads(schedule.parameters,
                                                f"schedule {schedule.id} parameters"),
            "catchup": schedule.catchup, "paused": schedule.paused, "next_fire_at": schedule.next_fire_at,
            "last_fire_at": schedule.last_fire_at, "created_by": schedule.created_by}
