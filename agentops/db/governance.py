"""Governance's statements: approvals and votes, users, policy rate windows."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event, LedgerRow
from agentops.core.states import TERMINAL

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
    from agentops.db.schema import (
        ApiToken,
        Approval,
        ApprovalVote,
        User,
    )
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")
from agentops.db.notifications import NotificationsSQL
from agentops.db.runs import RunsSQL
from agentops.db.sql import SqlText, as_row

VoteOutcome = Literal["recorded", "not_pending", "already_voted", "run_ended"]

MAX_LINEAGE = 32
"""How many parent runs `run_lineage` follows (chat dispatch -> flow -> sub-flow is three)."""

_LINEAGE = f"""
WITH RECURSIVE lineage(id, created_by, parent_run_id, state, depth) AS (
    SELECT id, created_by, parent_run_id, state, 0 FROM flow_runs WHERE id = :run_id
    UNION ALL
    SELECT r.id, r.created_by, r.parent_run_id, r.state, l.depth + 1
    FROM flow_runs r JOIN lineage l ON r.id = l.parent_run_id WHERE l.depth < {MAX_LINEAGE}
)
SELECT id, created_by, parent_run_id, state FROM lineage ORDER BY depth"""

_APPROVAL_EVENTS = ("SELECT seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev_hash, "
                    "hash FROM ledger WHERE run_id = :run_id AND approval_id = :approval_id "
                    "AND action = :action ORDER BY seq")


class Ancestor(NamedTuple):
    """One run of a lineage: the run itself first, then the run that started it, and so on."""

    id: str
    created_by: str | None
    parent_run_id: str | None
    state: str


class GovernanceSQL(RunsSQL, NotificationsSQL):
    def create_approval(self, values: dict[str, Any], events: Sequence[Event]) -> None:
        with self.write() as conn:
            conn.execute(sa.insert(schema.APPROVALS), values)
            self._append(conn, events)

    def open_approval(self, approval: dict[str, Any], step: dict[str, Any], *, epoch: int,
                      events: Sequence[Event], notifications: Sequence[dict[str, Any]] = ()) -> None:
        """Store an approval request, its step (AWAITING_APPROVAL), the run's pause and the notifications that tell
        its approvers, atomically, while the run is at `epoch` (the requesting execution's lease); otherwise nothing
        is written and LeaseLost is raised."""
        with self.write() as conn:
            self._pause_at_step(SqlText(conn), step, epoch=epoch, message=f"awaiting approval {approval['id']}")
            conn.execute(sa.insert(schema.APPROVALS), approval)
            NotificationsSQL._add_notifications(conn, notifications)
            self._append(conn, self._bind_step(events, step, exists=False))

    def get_approval(self, approval_id: str) -> Approval | None:
        return self._approval_where("id = :id", {"id": approval_id})

    def approval_for_step(self, run_id: str, step_no: int) -> Approval | None:
        return self._approval_where("run_id = :run_id AND step_no = :step_no", {"run_id": run_id, "step_no": step_no})

    def _approval_where(self, where: str, params: dict[str, Any]) -> Approval | None:
        """One approval by a unique key, read as SQL text (a resuming run reads its approval twice)."""
        with self._read_sql() as tx:
            found = tx.first(f"SELECT {', '.join(schema.APPROVALS.c.keys())} FROM approvals WHERE {where}", params)
        return as_row(schema.Approval, found) if found else None

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
        run_id: str | None,
        run_events: Sequence[Event] = (),
    ) -> VoteOutcome:
        """Store one approver's vote; with `final`, close the approval (once) and make its run resumable.

        The approval must still be pending with the digest the vote was made on, so a decision is
        used exactly once even when two approvers race; and its run must not have ended (the run's row
        is locked, so a concurrent cancel waits and then finds the run moved on). `run_events` are
        written only when the run did move from AWAITING_APPROVAL to PENDING.
        """
        approvals, runs = schema.APPROVALS, schema.RUNS
        with self.write() as conn:
            pending = conn.execute(sa.select(approvals.c.id).where(
                approvals.c.id == vote["approval_id"], approvals.c.status == "pending",
                approvals.c.args_digest == vote["args_digest"]).with_for_update()).first()
            if pending is None:
                return "not_pending"
            if run_id is not None:
                state = conn.execute(sa.select(runs.c.state).where(runs.c.id == run_id).with_for_update()).scalar()
                if state is None or state in TERMINAL:
                    return "run_ended"
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(schema.VOTES), vote)
            except sa.exc.IntegrityError:
                return "already_voted"
            moved = False
            if final is not None:
                conn.execute(sa.update(approvals).where(approvals.c.id == vote["approval_id"]).values(**final))
                if run_id is not None:
                    moved = conn.execute(sa.update(runs).where(runs.c.id == run_id,
                                                               runs.c.state == "AWAITING_APPROVAL")
                                         .values(state="PENDING", updated_at=time.time(), worker_id=None)
                                         ).rowcount == 1
            self._append(conn, [*events, *(run_events if moved else ())])
        return "recorded"

    def run_lineage(self, run_id: str) -> list[Ancestor]:
        """The run, the run that started it, and so on up (at most MAX_LINEAGE parents), in one statement."""
        with self._read_sql() as tx:
            return [Ancestor(**row) for row in tx.rows(_LINEAGE, {"run_id": run_id})]

    def approval_events(self, run_id: str, approval_id: str, action: str) -> list[LedgerRow]:
        """The ledger's `action` events (e.g. approval.decided) for one approval of a run, by the run's index."""
        params = {"run_id": run_id, "approval_id": approval_id, "action": action}
        with self._read_sql() as tx:
            return [tuple(row.values()) for row in tx.rows(_APPROVAL_EVENTS, params)]

    def expire_approvals(self, now: float, events_for: Callable[[Approval, bool], Sequence[Event]]
                         ) -> list[Approval]:
        """Close pending approvals past their expiry (fail closed) and make their runs resumable.

        `events_for(approval, run_moved)` gives each one's events; `run_moved` says whether its run went
        from AWAITING_APPROVAL to PENDING (a run that ended or is running is left alone).
        """
        return self._close_pending(sa.and_(schema.APPROVALS.c.expires_at.is_not(None),
                                           schema.APPROVALS.c.expires_at <= now),
                                   {"status": "expired", "decided_at": now, "decided_by": "system:expiry"},
                                   events_for, resume=True)

    def cancel_approvals(self, run_id: str, now: float, actor: str,
                         events_for: Callable[[Approval, bool], Sequence[Event]]) -> list[Approval]:
        """Close the pending approvals of a run that was cancelled: nobody can decide them any more."""
        return self._close_pending(schema.APPROVALS.c.run_id == run_id,
                                   {"status": "cancelled", "decided_at": now, "decided_by": actor},
                                   events_for, resume=False)

    def _close_pending(self, where: Any, values: dict[str, Any],
                       events_for: Callable[[Approval, bool], Sequence[Event]], *, resume: bool) -> list[Approval]:
        approvals, runs = schema.APPROVALS, schema.RUNS
        with self.write() as conn:
            rows = conn.execute(sa.select(approvals).where(approvals.c.status == "pending", where)
                                .with_for_update()).all()
            closed = [as_row(schema.Approval, r._mapping) for r in rows]
            if not closed:
                return []
            conn.execute(sa.update(approvals).where(approvals.c.id.in_([a.id for a in closed])).values(**values))
            events: list[Event] = []
            for appr in closed:
                moved = False
                if resume and appr.run_id:
                    moved = conn.execute(sa.update(runs).where(runs.c.id == appr.run_id,
                                                               runs.c.state == "AWAITING_APPROVAL")
                                         .values(state="PENDING", updated_at=values["decided_at"], worker_id=None)
                                         ).rowcount == 1
                events += events_for(appr, moved)
            self._append(conn, events)
        return closed

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

    def add_token(self, values: dict[str, Any], events: Sequence[Event]) -> bool:
        """Store a token (its digest) with its ledger events, in place of a revoked or expired one of the same name;
        False when a live token has the name."""
        tokens = schema.TOKENS
        with self.write() as conn:
            gone = tokens.c.revoked_at.is_not(None) | (tokens.c.expires_at <= values["created_at"])
            conn.execute(sa.delete(tokens).where(tokens.c.name == values["name"], gone))
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(tokens), values)
            except sa.exc.IntegrityError:
                return False
            self._append(conn, events)
        return True

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        with self.read() as conn:
            found = conn.execute(sa.select(schema.TOKENS).where(schema.TOKENS.c.token_hash == token_hash)).first()
        return as_row(schema.ApiToken, found._mapping) if found else None

    def list_tokens(self) -> list[ApiToken]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.TOKENS).order_by(schema.TOKENS.c.name))
            return [as_row(schema.ApiToken, r._mapping) for r in rows]

    def revoke_token(self, name: str, events: Sequence[Event], *, now: float) -> bool:
        """Mark a live token revoked, with its events; False when there is no live token of that name."""
        with self.write() as conn:
            moved = conn.execute(sa.update(schema.TOKENS).where(schema.TOKENS.c.name == name,
                                                                schema.TOKENS.c.revoked_at.is_(None))
                                 .values(revoked_at=now)).rowcount == 1
            if moved:
                self._append(conn, events)
        return moved

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
