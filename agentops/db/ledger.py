"""The audit ledger's statements: append to the hash chain, read, search, count."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from agentops.core import ledger
from agentops.core.deferred import DeferredModule
from agentops.core.ledger import GENESIS, Event

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy import Connection

    from agentops.db import schema
    from agentops.db.schema import (
        LedgerEvent,
    )
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")
from agentops.db.base import StoreBase
from agentops.db.sql import SqlText, as_row

_LEDGER_INSERT = ("INSERT INTO ledger (ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, "
                  "prev_hash, hash) VALUES (:ts, :actor, :action, :run_id, :step_no, :approval_id, :payload, "
                  ":policy_hash, :prev_hash, :hash)")
LEDGER_LOCK_KEY = 7_246_318


class LedgerSQL(StoreBase):
    def _chain(self, tx: SqlText, events: Sequence[Event]) -> None:
        """Append events to the hash chain inside the caller's transaction."""
        if not events:
            return
        if not self.is_sqlite:
            tx.execute("SELECT pg_advisory_xact_lock(:k)", {"k": LEDGER_LOCK_KEY})
        last = tx.first("SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1")
        tx.execute_many(_LEDGER_INSERT, ledger.chain(last["hash"] if last else GENESIS, events))

    def _append(self, conn: Connection, events: Sequence[Event]) -> None:
        self._chain(SqlText(conn), events)

    def append_events(self, events: Sequence[Event]) -> None:
        with self._write_sql() as tx:
            self._chain(tx, events)

    def iter_ledger(self, chunk: int = 50_000) -> Iterator[ledger.LedgerRow]:
        cols = [schema.LEDGER.c[n] for n in ("seq", "ts", "actor", "action", "run_id", "step_no", "approval_id",
                                        "payload", "policy_hash", "prev_hash", "hash")]
        after = 0
        while True:
            with self.read() as conn:
                rows = conn.execute(
                    sa.select(*cols).where(schema.LEDGER.c.seq > after).order_by(schema.LEDGER.c.seq).limit(chunk)
                ).all()
            if not rows:
                return
            yield from (tuple(r) for r in rows)
            after = rows[-1][0]

    def search_ledger(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        run_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 200,
        ascending: bool = False,
        after_seq: int | None = None,
    ) -> list[LedgerEvent]:
        query = sa.select(schema.LEDGER)
        if after_seq is not None:
            query = query.where(schema.LEDGER.c.seq > after_seq)
        if actor:
            query = query.where(schema.LEDGER.c.actor == actor)
        if action:
            query = query.where(schema.LEDGER.c.action.like(f"{action}%"))
        if run_id:
            query = query.where(schema.LEDGER.c.run_id == run_id)
        if since is not None:
            query = query.where(schema.LEDGER.c.ts >= since)
        if until is not None:
            query = query.where(schema.LEDGER.c.ts < until)
        order = schema.LEDGER.c.seq.asc() if ascending else schema.LEDGER.c.seq.desc()
        with self.read() as conn:
            return [as_row(schema.LedgerEvent, r._mapping) for r in conn.execute(query.order_by(order).limit(limit))]

    def ledger_count(self) -> int:
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(schema.LEDGER)).scalar_one()
