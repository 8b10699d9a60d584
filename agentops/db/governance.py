"""Governance's statements: approvals and votes, users, policy rate windows."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
    from agentops.db.schema import (
        Approval,
        ApprovalVote,
        User,
    )
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")
from agentops.db.runs import RunsSQL
from agentops.db.sql import SqlText, as_row


class GovernanceSQL(RunsSQL):
    def create_approval(self, values: dict[str, Any], events: Sequence[Event]) -> None:
        with self.write() as conn:
            conn.execute(sa.insert(schema.APPROVALS), values)
            self._append(conn, events)

    def open_approval(self, approval: dict[str, Any], step: dict[str, Any], *, step_exists: bool,
                      events: Sequence[Event]) -> None:
        """Store an approval request, its step (AWAITING_APPROVAL) and the run's pause, atomically."""
        with self.write() as conn:
            conn.execute(sa.insert(schema.APPROVALS), approval)
            self._put_step(SqlText(conn), step, exists=step_exists)
            conn.execute(sa.update(schema.RUNS).where(schema.RUNS.c.id == step["run_id"])
                         .values(state="AWAITING_APPROVAL", worker_id=None, heartbeat_at=None,
                                 updated_at=time.time(), state_message=f"awaiting approval {approval['id']}"))
            self._append(conn, events)

    def get_approval(self, approval_id: str) -> Approval | None:
        with self.read() as conn:
            found = conn.execute(sa.select(schema.APPROVALS).where(schema.APPROVALS.c.id == approval_id)).first()
        return as_row(schema.Approval, found._mapping) if found else None

    def approval_for_step(self, run_id: str, step_no: int) -> Approval | None:
        with self.read() as conn:
            found = conn.execute(sa.select(schema.APPROVALS).where(schema.APPROVALS.c.run_id == run_id,
                                                         schema.APPROVALS.c.step_no == step_no)).first()
        return as_row(schema.Approval, found._mapping) if found else None

    def list_approvals(self, *, status: str | None = "pending", run_id: str | None = None,
                       limit: int = 200) -> list[Approval]:
        query = sa.select(schema.APPROVALS)
        if status:
            query = query.where(schema.APPROVALS.c.status == status)
        if run_id:
            query = query.where(schema.APPROVALS.c.run_id == run_id)
        with self.read() as conn:
            rows = conn.execute(query.order_by(schema.APPROVALS.c.created_at.desc()).limit(limit))
            return [as_row(schema.Approval, r._mapping) for r in rows]

    def votes_for(self, approval_id: str) -> list[ApprovalVote]:
        with self.read() as conn:
            votes = schema.VOTES
            rows = conn.execute(sa.select(votes).where(votes.c.approval_id == approval_id).order_by(votes.c.id))
            return [as_row(schema.ApprovalVote, r._mapping) for r in rows]

    def record_vote(
        self,
        vote: dict[str, Any],
        events: Sequence[Event],
        *,
        final: dict[str, Any] | None,
        resume_run: str | None,
        run_events: Sequence[Event] = (),
    ) -> bool:
        """Store one approver's vote; with `final`, close the approval (once) and make its run resumable.

        The approval must still be pending with the digest the vote was made on, so a decision is
        used exactly once even when two approvers race.
        """
        with self.write() as conn:
            pending = conn.execute(sa.select(schema.APPROVALS.c.id).where(
                schema.APPROVALS.c.id == vote["approval_id"], schema.APPROVALS.c.status == "pending",
                schema.APPROVALS.c.args_digest == vote["args_digest"])).first()
            if pending is None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(schema.VOTES), vote)
            except sa.exc.IntegrityError:
                return False
            if final is not None:
                approvals = schema.APPROVALS
                conn.execute(sa.update(approvals).where(approvals.c.id == vote["approval_id"]).values(**final))
                if resume_run:
                    conn.execute(sa.update(schema.RUNS).where(schema.RUNS.c.id == resume_run,
                                                    schema.RUNS.c.state == "AWAITING_APPROVAL")
                                 .values(state="PENDING", updated_at=time.time(), worker_id=None))
            self._append(conn, [*events, *run_events])
        return True

    def expire_approvals(self, now: float, events_for: Any) -> list[Approval]:
        """Close pending approvals past their expiry (fail closed) and make their runs resumable."""
        with self.write() as conn:
            rows = conn.execute(sa.select(schema.APPROVALS).where(schema.APPROVALS.c.status == "pending",
                                                        schema.APPROVALS.c.expires_at.is_not(None),
                                                        schema.APPROVALS.c.expires_at <= now)).all()
            expired = [as_row(schema.Approval, r._mapping) for r in rows]
            for appr in expired:
                conn.execute(sa.update(schema.APPROVALS).where(schema.APPROVALS.c.id == appr.id)
                             .values(status="expired", decided_at=now, decided_by="system:expiry"))
                if appr.run_id:
                    conn.execute(sa.update(schema.RUNS).where(schema.RUNS.c.id == appr.run_id,
                                                    schema.RUNS.c.state == "AWAITING_APPROVAL")
                                 .values(state="PENDING", updated_at=now, worker_id=None))
                self._append(conn, events_for(appr))
        return expired

    def add_user(self, values: dict[str, Any], events: Sequence[Event]) -> bool:
        with self.write() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(schema.USERS), values)
            except sa.exc.IntegrityError:
                return False
            self._append(conn, events)
        return True

    def set_user(self, name: str, values: dict[str, Any], events: Sequence[Event]) -> None:
        with self.write() as conn:
            conn.execute(sa.update(schema.USERS).where(schema.USERS.c.name == name).values(**values))
            self._append(conn, events)

    def get_user(self, name: str) -> User | None:
        with self.read() as conn:
            found = conn.execute(sa.select(schema.USERS).where(schema.USERS.c.name == name)).first()
        return as_row(schema.User, found._mapping) if found else None

    def list_users(self) -> list[User]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.USERS).order_by(schema.USERS.c.name))
            return [as_row(schema.User, r._mapping) for r in rows]

    def take_rate(self, key: str, limit: int, window: float, *, now: float | None = None,
                  use_id: str | None = None) -> tuple[bool, int]:
        """Count the uses of `key` in the last `window` seconds and, when fewer than `limit`, record this one,
        as one atomic step across processes and hosts: (taken, uses counted before this one).

        SQLite's BEGIN IMMEDIATE holds the database's write lock from the first statement; PostgreSQL takes a
        transaction-scoped advisory lock on the key's hash before counting, so two workers can never both see
        the last free slot. `use_id` names the step taking the slot: found already, the step is running again
        (a crash before its verdict was stored) and keeps its slot without counting twice. Without `now`,
        PostgreSQL's clock decides (one clock for every host); on SQLite the machine's clock is the only one.
        """
        with self._write_sql() as tx:
            if not self.is_sqlite:
                tx.execute("SELECT pg_advisory_xact_lock(CAST(:space AS integer), CAST(:key AS integer))",
                           {"space": RATE_LOCK_SPACE, "key": _lock_key(key)})
                if now is None:
                    now = float(tx.first("SELECT EXTRACT(EPOCH FROM clock_timestamp()) AS now")["now"])  # type: ignore[index]
            now = time.time() if now is None else now
            if use_id is not None and tx.first("SELECT 1 AS found FROM rate_events WHERE use_id = :use_id",
                                               {"use_id": use_id}):
                return True, 0
            used = tx.first("SELECT COUNT(*) AS n FROM (SELECT 1 FROM rate_events WHERE key = :key AND ts >= :since "
                            "LIMIT :limit) AS recent", {"key": key, "since": now - window, "limit": limit})
            count = int(used["n"]) if used else 0
            if count >= limit:
                return False, count
            tx.execute("INSERT INTO rate_events (key, ts, use_id) VALUES (:key, :ts, :use_id)",
                       {"key": key, "ts": now, "use_id": use_id})
            return True, count


RATE_LOCK_SPACE = 0x5241
"""The first key of PostgreSQL's two-key advisory locks taken on rate keys ("RA"); the ledger uses the one-key form."""


def _lock_key(key: str) -> int:
    """A signed 32-bit hash of a rate key (two keys sharing a hash only wait for each other)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big", signed=True)
