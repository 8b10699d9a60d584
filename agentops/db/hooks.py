"""The HTTP faces' own statements: signed webhook deliveries seen (replays), refused authentications per minute."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event
from agentops.db.ledger import LedgerSQL

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")

KEEP_COUNTED_MINUTES = 7 * 24 * 60
"""Counted failures the ledger has been told of are kept this long (for /metrics), then deleted."""
FLUSH_LIMIT = 200


class HooksSQL(LedgerSQL):
    def remember_hook_delivery(self, key: str, hook: str, *, signed_at: float, now: float, run_id: str,
                               forget_before: float) -> bool:
        """Record a signed delivery; False when the same signature was recorded before (a replay). Deliveries
        signed before `forget_before` are deleted first: their signatures are stale and refused anyway."""
        table = schema.HOOK_DELIVERIES
        with self.write() as conn:
            conn.execute(sa.delete(table).where(table.c.signed_at < forget_before))
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(table), {"key": key, "hook": hook, "signed_at": signed_at,
                                                    "seen_at": now, "run_id": run_id})
            except sa.exc.IntegrityError:
                return False
        return True

    def hook_delivery_run(self, key: str) -> str | None:
        table = schema.HOOK_DELIVERIES
        with self.read() as conn:
            return conn.execute(sa.select(table.c.run_id).where(table.c.key == key)).scalar()

    def count_auth_failure(self, key: str, minute: int, *, kind: str, subject: str, reason: str, now: float,
                           first: Event, summary: Callable[[str, str, str, int, int], Event]) -> bool:
        """Count one refused authentication in its minute. The first of a (key, minute) appends `first` and a
        `summary(kind, subject, reason, minute, uncounted)` event for each earlier minute whose further failures
        the ledger was not told of yet; later ones only count. True when `first` was appended."""
        table = schema.AUTH_FAILURES
        this = (table.c.key == key) & (table.c.minute == minute)
        with self.write() as conn:
            bump = sa.update(table).where(this).values(count=table.c.count + 1, last_at=now)
            if conn.execute(bump).rowcount == 1:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(table), {"key": key, "minute": minute, "kind": kind, "subject": subject,
                                                    "reason": reason, "count": 1, "recorded": 1, "first_at": now,
                                                    "last_at": now})
            except sa.exc.IntegrityError:
                conn.execute(bump)
                return False
            events = [first]
            behind = conn.execute(sa.select(table).where(table.c.minute < minute, table.c.count > table.c.recorded)
                                  .order_by(table.c.minute).limit(FLUSH_LIMIT)).all()
            for row in behind:
                told = conn.execute(sa.update(table).where(table.c.key == row.key, table.c.minute == row.minute,
                                                           table.c.recorded == row.recorded,
                                                           table.c.count == row.count)
                                    .values(recorded=row.count)).rowcount == 1
                if told:
                    events.append(summary(row.kind, row.subject, row.reason, row.minute, row.count - row.recorded))
            conn.execute(sa.delete(table).where(table.c.minute < minute - KEEP_COUNTED_MINUTES,
                                                table.c.count == table.c.recorded))
            self._append(conn, events)
        return True

    def auth_failure_counts(self) -> list[tuple[str, str, int]]:
        """(kind, reason, failures) over the minutes kept."""
        table = schema.AUTH_FAILURES
        with self.read() as conn:
            rows = conn.execute(sa.select(table.c.kind, table.c.reason, sa.func.sum(table.c.count))
                                .group_by(table.c.kind, table.c.reason)).all()
        return [(r[0], r[1], int(r[2])) for r in rows]
