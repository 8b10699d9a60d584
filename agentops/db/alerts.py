"""The alert receiver's statements: alert groups and the run each one's firing started."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event
from agentops.core.states import is_terminal

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
    from agentops.db.schema import AlertGroup
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")
from agentops.db.ledger import LedgerSQL
from agentops.db.sql import as_row

Claim = Literal["claimed", "active", "recent"]


class AlertsSQL(LedgerSQL):
    def claim_alert_group(self, key_hash: str, group_key: str, run_id: str, *, now: float,
                          starting_for: float, cooldown: float) -> tuple[Claim, str | None]:
        """("claimed", run_id) when this caller is to start `run_id` for the group: none ran, or its run ended
        at least `cooldown` seconds ago. ("recent", its run) when it ended sooner (the alert may not have caught up
        with the remedy yet). ("active", its run) when its run has not ended, or was claimed less than
        `starting_for` seconds ago and is not written yet. Two callers racing read the same generation; only one
        moves it on."""
        groups = schema.ALERT_GROUPS
        with self.write() as conn:
            row = conn.execute(sa.select(groups).where(groups.c.key_hash == key_hash)).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(groups), {"key_hash": key_hash, "group_key": group_key,
                                                         "generation": 1, "run_id": run_id, "claimed_at": now,
                                                         "status": "firing", "updated_at": now})
                    return "claimed", run_id
                except sa.exc.IntegrityError:
                    row = conn.execute(sa.select(groups).where(groups.c.key_hash == key_hash)).first()
                    return "active", row.run_id if row else None
            runs = schema.RUNS
            found = conn.execute(sa.select(runs.c.state, runs.c.ended_at, runs.c.updated_at)
                                 .where(runs.c.id == row.run_id)).first() if row.run_id else None
            starting = row.run_id is not None and found is None and now - row.claimed_at < starting_for
            ended = found is not None and is_terminal(found.state)
            recent = found is not None and ended and now - (found.ended_at or found.updated_at) < cooldown
            if starting or (found is not None and not ended) or recent:
                conn.execute(sa.update(groups).where(groups.c.key_hash == key_hash)
                             .values(status="firing", updated_at=now))
                return ("recent" if recent else "active"), row.run_id
            moved = conn.execute(sa.update(groups).where(groups.c.key_hash == key_hash,
                                                         groups.c.generation == row.generation)
                                 .values(generation=row.generation + 1, run_id=run_id, claimed_at=now,
                                         status="firing", updated_at=now)).rowcount == 1
            return ("claimed", run_id) if moved else ("active", row.run_id)

    def release_alert_claim(self, key_hash: str, run_id: str) -> None:
        """The claimed run was not started (refused): the group's next notification may try again at once."""
        groups = schema.ALERT_GROUPS
        with self.write() as conn:
            conn.execute(sa.update(groups).where(groups.c.key_hash == key_hash, groups.c.run_id == run_id)
                         .values(run_id=None))

    def alert_group(self, key_hash: str) -> AlertGroup | None:
        groups = schema.ALERT_GROUPS
        with self.read() as conn:
            found = conn.execute(sa.select(groups).where(groups.c.key_hash == key_hash)).first()
        return as_row(schema.AlertGroup, found._mapping) if found else None

    def set_alert_status(self, key_hash: str, status: str, events: Sequence[Event], *, now: float) -> None:
        groups = schema.ALERT_GROUPS
        with self.write() as conn:
            conn.execute(sa.update(groups).where(groups.c.key_hash == key_hash).values(status=status, updated_at=now))
            self._append(conn, events)
