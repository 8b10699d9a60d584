"""Governance's statements: approvals and votes, users, policy rate windows."""

from __future__ import annotations

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

    def open_approval(self, approval: dict[str, Any], step: dict[str, Any], *, epoch: int,
                      events: Sequence[Event]) -> None:
        """Store an approval request, its step (AWAITING_APPROVAL) and the run's pause, atomically, while the run
        is at `epoch` (the requesting execution's lease); otherwise nothing is written and LeaseLost is raised."""
        with self.write() as conn:
            self._pause_at_step(SqlText(conn), step, epoch=epoch, message=f"awaiting approval {approval['id']}")
            conn.execute(sa.insert(schema.APPROVALS), approval)
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

    def count_rate(self, key: str, since: float) -> int:
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(schema.RATES)
                                .where(schema.RATES.c.key == key, schema.RATES.c.ts >= since)).scalar_one()

    def add_rate(self, key: str, ts: float) -> None:
        with self.write() as conn:
            conn.execute(sa.insert(schema.RATES), {"key": key, "ts": ts})
