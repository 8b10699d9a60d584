"""The statements of approval notifications: the outbox rows, their delivery attempts and outcomes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event
from agentops.db.ledger import LedgerSQL
from agentops.db.sql import as_row

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy import Connection

    from agentops.db import schema
    from agentops.db.schema import Notification
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")

QUEUED, SENDING, RETRYING, DELIVERED, FAILED, SKIPPED = "queued", "sending", "retrying", "delivered", "failed", \
    "skipped"
NOTIFICATION_STATES = (QUEUED, SENDING, RETRYING, DELIVERED, FAILED, SKIPPED)
"""A notification's delivery states (see schema.Notification)."""
OPEN_STATES = (QUEUED, SENDING, RETRYING)


class NotificationsSQL(LedgerSQL):
    def clock(self) -> float:
        """The database's clock in epoch seconds (on SQLite, this machine's): when a notification is due."""
        if self.is_sqlite:
            return time.time()
        with self._read_sql() as tx:
            row = tx.first("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION) AS now")
        return float(row["now"]) if row else time.time()

    @staticmethod
    def _add_notifications(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            conn.execute(sa.insert(schema.NOTIFICATIONS), list(rows))

    def due_notifications(self, now: float, limit: int = 100) -> list[Notification]:
        """Notifications to attempt at `now`: queued or retrying ones that are due, and ones whose attempt's lease
        ran out (the process making it stopped before it recorded the outcome)."""
        n = schema.NOTIFICATIONS
        query = sa.select(n).where(sa.or_(
            sa.and_(n.c.status.in_([QUEUED, RETRYING]), n.c.next_at <= now),
            sa.and_(n.c.status == SENDING, n.c.lease_until <= now))).order_by(n.c.next_at).limit(limit)
        with self.read() as conn:
            return [as_row(schema.Notification, r._mapping) for r in conn.execute(query)]

    def notifications_for(self, approval_id: str) -> list[Notification]:
        n = schema.NOTIFICATIONS
        with self.read() as conn:
            rows = conn.execute(sa.select(n).where(n.c.approval_id == approval_id).order_by(n.c.due_at, n.c.channel))
            return [as_row(schema.Notification, r._mapping) for r in rows]

    def notification(self, notification_id: str) -> Notification | None:
        n = schema.NOTIFICATIONS
        with self.read() as conn:
            found = conn.execute(sa.select(n).where(n.c.id == notification_id)).first()
        return as_row(schema.Notification, found._mapping) if found else None

    def start_notification_attempt(self, notification_id: str, seen_attempts: int, *, now: float,
                                   lease_until: float, events: Sequence[Event]) -> bool:
        """Take the next attempt of a notification still open, unless another process took one since this one read
        `seen_attempts`; its events are appended with it."""
        n = schema.NOTIFICATIONS
        with self.write() as conn:
            taken = conn.execute(sa.update(n).where(
                n.c.id == notification_id, n.c.attempts == seen_attempts, n.c.status.in_(OPEN_STATES),
            ).values(status=SENDING, attempts=seen_attempts + 1, lease_until=lease_until, updated_at=now)
            ).rowcount == 1
            if taken:
                self._append(conn, events)
            return taken

    def finish_notification_attempt(self, notification_id: str, attempt: int, values: dict[str, Any],
                                    events: Sequence[Event]) -> bool:
        """Record the outcome of attempt `attempt` and its events, unless a later attempt began (this one's lease
        ran out) or the notification was delivered already."""
        n = schema.NOTIFICATIONS
        where = [n.c.id == notification_id, n.c.status == SENDING]
        if values["status"] != DELIVERED:
            where.append(n.c.attempts == attempt)
        with self.write() as conn:
            moved = conn.execute(sa.update(n).where(*where).values(**values)).rowcount == 1
            self._append(conn, events)
            return moved

    def skip_notification(self, notification_id: str, seen_attempts: int, *, now: float, reason: str,
                          events: Sequence[Event]) -> bool:
        """Close an open notification that is no longer needed (its request was decided or closed)."""
        n = schema.NOTIFICATIONS
        with self.write() as conn:
            moved = conn.execute(sa.update(n).where(
                n.c.id == notification_id, n.c.attempts == seen_attempts, n.c.status.in_(OPEN_STATES),
            ).values(status=SKIPPED, last_error=reason, lease_until=None, updated_at=now)).rowcount == 1
            if moved:
                self._append(conn, events)
            return moved
