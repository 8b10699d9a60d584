"""The app's sessions: rows keyed by the SHA-256 of a random session id, ended once (logout or expiry)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
    from agentops.db.schema import WebSession
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")
from agentops.db.ledger import LedgerSQL
from agentops.db.sql import as_row


class SessionsSQL(LedgerSQL):
    def add_session(self, values: dict[str, Any], events: Sequence[Event] = ()) -> None:
        with self.write() as conn:
            conn.execute(sa.insert(schema.WEB_SESSIONS), values)
            self._append(conn, events)

    def session_by_hash(self, id_hash: str) -> WebSession | None:
        sessions = schema.WEB_SESSIONS
        with self.read() as conn:
            found = conn.execute(sa.select(sessions).where(sessions.c.id_hash == id_hash)).first()
        return as_row(schema.WebSession, found._mapping) if found else None

    def end_session(self, id_hash: str, reason: str, events: Sequence[Event], *, now: float) -> bool:
        """End a live session with its events, once: False when it had already ended (by anyone, in any process)."""
        sessions = schema.WEB_SESSIONS
        with self.write() as conn:
            moved = conn.execute(sa.update(sessions).where(sessions.c.id_hash == id_hash, sessions.c.ended_at.is_(None))
                                 .values(ended_at=now, end_reason=reason)).rowcount == 1
            if moved:
                self._append(conn, events)
        return moved

    def sessions_of(self, user_name: str) -> list[WebSession]:
        sessions = schema.WEB_SESSIONS
        with self.read() as conn:
            rows = conn.execute(sa.select(sessions).where(sessions.c.user_name == user_name)
                                .order_by(sessions.c.created_at))
            return [as_row(schema.WebSession, r._mapping) for r in rows]
