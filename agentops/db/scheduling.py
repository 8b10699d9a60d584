"""The scheduler's statements: schedules, their fires (runs created atomically) and leases."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event
from agentops.db.records import RunRecord

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy import Connection

    from agentops.db import schema
    from agentops.db.schema import (
        Schedule,
    )
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")
from agentops.db.runs import RunsSQL
from agentops.db.sql import as_row


@dataclass(frozen=True)
class ScheduleFire:
    """One schedule's due fire: the runs to create and where its next fire time moves."""

    schedule_id: int
    expected_next: float
    next_fire_at: float | None
    runs: Sequence[dict[str, Any]]
    events: Sequence[Event]


class SchedulingSQL(RunsSQL):
    def add_schedule(self, values: dict[str, Any], events: Sequence[Event]) -> int:
        with self.write() as conn:
            query = sa.insert(schema.SCHEDULES).returning(schema.SCHEDULES.c.id)
            schedule_id = conn.execute(query, values).scalar_one()
            for ev in events:
                ev.payload["schedule_id"] = schedule_id
            self._append(conn, events)
        return schedule_id

    def get_schedule(self, schedule_id: int) -> Schedule | None:
        with self.read() as conn:
            found = conn.execute(sa.select(schema.SCHEDULES).where(schema.SCHEDULES.c.id == schedule_id)).first()
        return as_row(schema.Schedule, found._mapping) if found else None

    def list_schedules(self) -> list[Schedule]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.SCHEDULES).order_by(schema.SCHEDULES.c.id))
            return [as_row(schema.Schedule, r._mapping) for r in rows]

    def update_schedule(self, schedule_id: int, values: dict[str, Any], events: Sequence[Event]) -> bool:
        with self.write() as conn:
            query = sa.update(schema.SCHEDULES).where(schema.SCHEDULES.c.id == schedule_id).values(**values)
            changed = conn.execute(query).rowcount
            if changed:
                self._append(conn, events)
        return bool(changed)

    def delete_schedule(self, schedule_id: int, events: Sequence[Event]) -> bool:
        with self.write() as conn:
            changed = conn.execute(sa.delete(schema.SCHEDULES).where(schema.SCHEDULES.c.id == schedule_id)).rowcount
            if changed:
                self._append(conn, events)
        return bool(changed)

    def due_schedules(self, now: float, limit: int = 1000) -> list[Schedule]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.SCHEDULES).where(schema.SCHEDULES.c.paused.is_(False),
                                                        schema.SCHEDULES.c.next_fire_at <= now)
                                .order_by(schema.SCHEDULES.c.next_fire_at).limit(limit))
            return [as_row(schema.Schedule, r._mapping) for r in rows]

    def next_schedule_fire(self) -> float | None:
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.min(schema.SCHEDULES.c.next_fire_at))
                                .where(schema.SCHEDULES.c.paused.is_(False))).scalar()

    def fire_schedules(self, fires: Sequence[ScheduleFire]) -> list[int]:
        """Create each schedule's due runs and advance it, in one transaction; the ids actually fired.

        A fire is compare-and-set on `next_fire_at`, and runs are unique per (schedule, fire time), so a
        second scheduler, or a restart replaying the same tick, creates nothing twice.
        """
        if not fires:
            return []
        now = time.time()
        with self.write() as conn:
            current = dict(conn.execute(
                sa.select(schema.SCHEDULES.c.id, schema.SCHEDULES.c.next_fire_at)
                .where(schema.SCHEDULES.c.id.in_([f.schedule_id for f in fires])).with_for_update()).all())
            ready = [f for f in fires if current.get(f.schedule_id) == f.expected_next]
            try:
                with conn.begin_nested():
                    self._fire(conn, ready, now)
            except sa.exc.IntegrityError:
                ready = [f for f in ready if self._fire_alone(conn, f, now)]
            self._append(conn, [ev for f in ready for ev in f.events])
        return [f.schedule_id for f in ready]

    def _fire(self, conn: Connection, fires: Sequence[ScheduleFire], now: float) -> None:
        if not fires:
            return
        conn.execute(sa.update(schema.SCHEDULES).where(schema.SCHEDULES.c.id == sa.bindparam("fired_id"))
                     .values(next_fire_at=sa.bindparam("fired_next"), last_fire_at=now),
                     [{"fired_id": f.schedule_id, "fired_next": f.next_fire_at} for f in fires])
        runs = [run for f in fires for run in f.runs]
        if runs:
            conn.execute(sa.insert(schema.RUNS), runs)

    def _fire_alone(self, conn: Connection, fire: ScheduleFire, now: float) -> bool:
        """One fire in its own savepoint. When one of its runs already exists, only advance the schedule."""
        try:
            with conn.begin_nested():
                self._fire(conn, [fire], now)
        except sa.exc.IntegrityError:
            self._fire(conn, [replace(fire, runs=[])], now)
            return False
        return True

    def runs_for_schedule(self, schedule_id: int, limit: int = 5) -> list[RunRecord]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.RUNS).where(schema.RUNS.c.schedule_id == schedule_id)
                                .order_by(schema.RUNS.c.created_at.desc()).limit(limit))
            return [as_row(RunRecord, r._mapping) for r in rows]

    def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew a named lease; True while `holder` holds it."""
        with self.write() as conn:
            found = conn.execute(sa.select(schema.LEASES).where(schema.LEASES.c.name == name)).first()
            if found is None:
                conn.execute(sa.insert(schema.LEASES), {"name": name, "holder": holder, "expires_at": now + ttl})
                return True
            if found.holder != holder and found.expires_at > now:
                return False
            conn.execute(sa.update(schema.LEASES).where(schema.LEASES.c.name == name)
                         .values(holder=holder, expires_at=now + ttl))
            return True

    def lease_holder(self, name: str, now: float) -> str | None:
        with self.read() as conn:
            return conn.execute(sa.select(schema.LEASES.c.holder).where(schema.LEASES.c.name == name,
                                                              schema.LEASES.c.expires_at > now)).scalar()

    def release_lease(self, name: str, holder: str) -> None:
        with self.write() as conn:
            conn.execute(sa.delete(schema.LEASES).where(schema.LEASES.c.name == name, schema.LEASES.c.holder == holder))
