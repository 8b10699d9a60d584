"""The audit ledger's statements: append to the hash chain, read it (in one snapshot, for verification),
search, count, and the database's copy of the signed checkpoints.

Sequence numbers come from `ledger_head`, a one-row high-water mark (seq, hash) that every append reads
under a lock (BEGIN IMMEDIATE on SQLite, FOR UPDATE on PostgreSQL) and moves in the same transaction. A
rolled-back append leaves no gap, and deleting rows never lowers the mark, so a number is never handed out
twice and any missing number is a deleted row. (A PostgreSQL sequence would leave a gap for every rolled-back
append, which verification could not tell from a deletion.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agentops.core import ledger
from agentops.core.deferred import DeferredModule
from agentops.core.ledger import RUN_BOUND, BoundRow, Event
from agentops.errors import LedgerError

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
from agentops.db.base import RUNNABLE_CHANNEL, StoreBase
from agentops.db.sql import SqlText, as_row, connect_sqlite, insert_sql

LEDGER_COLUMNS = "seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev_hash, hash"
CHECKPOINT_COLUMNS = ("seq", "hash", "count", "ts", "key_fingerprint", "signature")
_LEDGER_INSERT = insert_sql("ledger", LEDGER_COLUMNS.split(", "))
_HEAD = "SELECT seq, hash FROM ledger_head WHERE id = 1"
_MOVE_HEAD = "UPDATE ledger_head SET seq = :seq, hash = :hash WHERE id = 1"
HEAD_GONE = ("the ledger's high-water mark (the row of table ledger_head) is gone, so nothing can be appended: "
             "run `agentops audit verify` to see what else was changed")


def append_ctes(events: Sequence[Event], *, notify: bool, guard: str | None = None) -> tuple[list[str], dict[str, Any]]:
    """PostgreSQL: the whole append as common table expressions of one statement. They lock the head, link each
    event to the one before by sha256 over (previous hash + the event's material, see core.ledger.event_material),
    insert the rows and move the head (`moved` returns a row when it did); with `notify` they also wake the
    workers LISTENing. The head stays locked only for this statement and its commit, and costs no round trip of
    its own. With `guard` (the name of an earlier CTE), nothing is appended unless that CTE returned a row."""
    params: dict[str, Any] = {}
    only_if = f" AND EXISTS (SELECT 1 FROM {guard})" if guard else ""
    ctes = [f"head AS (SELECT seq, hash FROM ledger_head WHERE id = 1{only_if} FOR UPDATE)"]
    prev = "head"
    for i, ev in enumerate(events):
        payload = ev.payload_text()
        params |= {f"ts_{i}": ev.ts, f"actor_{i}": ev.actor, f"action_{i}": ev.action, f"run_id_{i}": ev.run_id,
                   f"step_no_{i}": ev.step_no, f"approval_id_{i}": ev.approval_id, f"payload_{i}": payload,
                   f"policy_hash_{i}": ev.policy_hash,
                   f"material_{i}": ledger.event_material(ev.ts, ev.actor, ev.action, ev.run_id, ev.step_no,
                                                          ev.approval_id, payload, ev.policy_hash)}
        ctes.append(f"e{i} AS (SELECT seq + 1 AS seq, hash AS prev_hash, "
                    f"encode(sha256(convert_to(hash || CAST(:material_{i} AS TEXT), 'UTF8')), 'hex') AS hash "
                    f"FROM {prev})")
        ctes.append(f"i{i} AS (INSERT INTO ledger ({LEDGER_COLUMNS}) SELECT seq, :ts_{i}, :actor_{i}, :action_{i}, "
                    f":run_id_{i}, :step_no_{i}, :approval_id_{i}, :payload_{i}, :policy_hash_{i}, prev_hash, hash "
                    f"FROM e{i})")
        prev = f"e{i}"
    sources = prev + (f", (SELECT pg_notify('{RUNNABLE_CHANNEL}', '')) AS notified" if notify else "")
    ctes.append(f"moved AS (UPDATE ledger_head SET seq = {prev}.seq, hash = {prev}.hash FROM {sources} "
                "WHERE ledger_head.id = 1 RETURNING 1)")
    return ctes, params


HEAD_CHECK = "1 / (SELECT count(*) FROM moved)"
"""SQL text that fails the statement (division by zero, so nothing it wrote stays) when the head did not move:
the head row is gone. `ledger_error` turns that failure into the ledger's own error."""


def _append_statement(events: Sequence[Event], *, notify: bool) -> tuple[str, dict[str, Any]]:
    ctes, params = append_ctes(events, notify=notify)
    return f"WITH {', '.join(ctes)} SELECT {HEAD_CHECK} AS appended", params


def ledger_error(exc: BaseException) -> LedgerError | None:
    """The ledger's error for an append whose HEAD_CHECK failed (PostgreSQL), else None."""
    if getattr(getattr(exc, "orig", exc), "sqlstate", None) == "22012":  # division_by_zero
        return LedgerError(HEAD_GONE)
    return None


class LedgerSnapshot:
    """Reads that all see one snapshot of the database, so the chain and the rows it binds agree."""

    def __init__(self, query: Callable[[str], Iterator[Any]]) -> None:
        self._query = query

    def events(self) -> Iterator[ledger.LedgerRow]:
        return self._query(f"SELECT {LEDGER_COLUMNS} FROM ledger ORDER BY seq")

    def head(self) -> tuple[int, str] | None:
        found = list(self._query(_HEAD))
        return (found[0][0], found[0][1]) if found else None

    def checkpoints(self) -> list[dict[str, Any]]:
        rows = self._query(f"SELECT id, {', '.join(CHECKPOINT_COLUMNS)} FROM ledger_checkpoints ORDER BY id")
        return [dict(zip(("id", *CHECKPOINT_COLUMNS), row, strict=True)) for row in rows]

    def bound_values(self) -> Iterator[BoundRow]:
        """Every stored value the chain binds: runs' parameters and results, steps' outputs."""
        for run_id, parameters, result in self._query("SELECT id, parameters, result FROM flow_runs"):
            yield run_id, None, "parameters", parameters
            yield run_id, None, "result", result
        for run_id, step_no, output in self._query("SELECT run_id, step_no, output FROM step_runs"):
            yield run_id, step_no, "output", output

    def mcp_pins(self) -> Iterator[tuple[str, str, str, str]]:
        """Every MCP pin row: (server, tool, digest, stored definition)."""
        return self._query("SELECT server, tool, digest, definition FROM mcp_pins ORDER BY server, tool")


class LedgerSQL(StoreBase):
    def _chain(self, tx: SqlText, events: Sequence[Event]) -> None:
        """Append events to the hash chain inside the caller's transaction."""
        if not events:
            return
        runnable = self._note_states(events)
        if not self.is_sqlite:
            sql, params = _append_statement(events, notify=runnable)
            try:
                tx.execute(sql, params)
            except Exception as exc:
                found = ledger_error(exc)
                if found is not None:
                    raise found from None
                raise
            return
        head = tx.first(_HEAD)
        if head is None:
            raise LedgerError(HEAD_GONE)
        rows = ledger.chain(head["hash"], events, head["seq"] + 1)
        tx.execute_many(_LEDGER_INSERT, rows)
        tx.execute(_MOVE_HEAD, {"seq": rows[-1]["seq"], "hash": rows[-1]["hash"]})

    @staticmethod
    def _bind_runs(events: Sequence[Event], rows: Sequence[dict[str, Any]]) -> Sequence[Event]:
        """Bind the bound columns each run row writes into its last run.state event (see ledger.bind)."""
        written = [(row["id"], None, {c: row[c] for c in RUN_BOUND if c in row}) for row in rows]
        written = [w for w in written if w[2]]
        return ledger.bind(events, "run.state", written) if written else events

    @staticmethod
    def _bind_step(events: Sequence[Event], values: dict[str, Any], *, exists: bool) -> Sequence[Event]:
        """Bind a step's output into its last step.state event when the row is created or its output written."""
        if exists and "output" not in values:
            return events
        return ledger.bind(events, "step.state", [(values["run_id"], values["step_no"],
                                                   {"output": values.get("output")})])

    def _append(self, conn: Connection, events: Sequence[Event]) -> None:
        self._chain(SqlText(conn), events)

    def append_events(self, events: Sequence[Event]) -> None:
        with self._write_sql() as tx:
            self._chain(tx, events)

    def iter_ledger(self, chunk: int = 50_000, *, after: int = 0) -> Iterator[ledger.LedgerRow]:
        """The events after seq `after`, in order, read a chunk per statement."""
        sql = f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE seq > :after ORDER BY seq LIMIT :limit"
        while True:
            with self._read_sql() as tx:
                rows = tx.tuples(sql, {"after": after, "limit": chunk})
            if not rows:
                return
            yield from rows
            after = rows[-1][0]

    @contextmanager
    def ledger_snapshot(self) -> Iterator[LedgerSnapshot]:
        """One read transaction (a repeatable-read snapshot on PostgreSQL) for a whole verification."""
        if self.is_sqlite:
            raw = connect_sqlite(self._sqlite_path)
            try:
                raw.execute("BEGIN")
                yield LedgerSnapshot(lambda sql: iter(raw.execute(sql)))
            finally:
                raw.close()
            return
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ",
                                                     postgresql_readonly=True) as conn, conn.begin():
            streaming = conn.execution_options(stream_results=True, yield_per=20_000)
            yield LedgerSnapshot(lambda sql: iter(streaming.execute(sa.text(sql))))

    def ledger_head(self) -> tuple[int, str] | None:
        with self._read_sql() as tx:
            found = tx.first(_HEAD)
        return (found["seq"], found["hash"]) if found else None

    def ledger_hash_at(self, seq: int) -> str | None:
        with self._read_sql() as tx:
            found = tx.first("SELECT hash FROM ledger WHERE seq = :seq", {"seq": seq})
        return found["hash"] if found else None

    def add_checkpoint(self, values: dict[str, Any]) -> None:
        with self._write_sql() as tx:
            tx.execute(insert_sql("ledger_checkpoints", CHECKPOINT_COLUMNS), values)

    def latest_checkpoints(self, limit: int = 1) -> list[dict[str, Any]]:
        """The database's copies of the newest signed checkpoints, newest first."""
        with self._read_sql() as tx:
            return tx.rows(f"SELECT id, {', '.join(CHECKPOINT_COLUMNS)} FROM ledger_checkpoints "
                           "ORDER BY seq DESC, id DESC LIMIT :limit", {"limit": limit})

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
