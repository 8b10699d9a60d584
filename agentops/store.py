"""The one module that holds SQL. Everything else calls these methods.

SQLite (WAL, the embedded default) and PostgreSQL share every statement here. Write transactions on
SQLite start with BEGIN IMMEDIATE and are serialised in-process by a lock, so no thread sleeps in
SQLite's busy handler; on PostgreSQL the ledger's hash chain is serialised by an advisory lock.
Every state change appends its audit events in the same transaction, so the ledger never disagrees
with the tables.

The engine's own path (runs, steps, logs, cache, the ledger) is written as SQL text that both databases
accept. On SQLite it runs on plain sqlite3 connections, so `agentops run` never imports SQLAlchemy;
everything else is built with SQLAlchemy Core on the SQLModel tables, imported on first use.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from agentops import ledger
from agentops.deferred import DeferredModule
from agentops.ledger import GENESIS, Event
from agentops.records import LogRecord, RunRecord, StepRecord, column_defaults, column_names

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy import Connection, Engine

    from agentops import tables as schema
    from agentops.tables import (
        Approval,
        ApprovalVote,
        ChatMessage,
        Deployment,
        LedgerEvent,
        MetricSample,
        OutboxEmail,
        ScaleEvent,
        Schedule,
        Ticket,
        User,
    )
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.tables")

CLAIMABLE = ("PENDING", "CRASHED")
_LEDGER_INSERT = ("INSERT INTO ledger (ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, "
                  "prev_hash, hash) VALUES (:ts, :actor, :action, :run_id, :step_no, :approval_id, :payload, "
                  ":policy_hash, :prev_hash, :hash)")
_LOG_INSERT = ("INSERT INTO log_lines (run_id, step_no, ts, level, message) "
               "VALUES (:run_id, :step_no, :ts, :level, :message)")
LEDGER_LOCK_KEY = 7_246_318


@dataclass(frozen=True)
class ScheduleFire:
    """One schedule's due fire: the runs to create and where its next fire time moves."""

    schedule_id: int
    expected_next: float
    next_fire_at: float | None
    runs: Sequence[dict[str, Any]]
    events: Sequence[Event]


def _row(row_type: type, mapping: Any) -> Any:
    return row_type(**dict(mapping))


def _insert_sql(table: str, columns: Iterable[str]) -> str:
    columns = list(columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"


def _update_sql(table: str, columns: Iterable[str], where: str) -> str:
    return f"UPDATE {table} SET {', '.join(f'{c} = :{c}' for c in columns)} WHERE {where}"


def _in_list(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`(:name0, :name1, ...)` and its parameters, for an IN over a list in SQL text."""
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(":" + k for k in params) + ")", params


RUN_COLUMNS = ", ".join(column_names(RunRecord))
STEP_COLUMNS = ", ".join(column_names(StepRecord))
LOG_COLUMNS = ", ".join(column_names(LogRecord))


def _complete(record: type, row: dict[str, Any]) -> dict[str, Any]:
    """The row with the table's defaults filled in, so one INSERT text fits every row (and no column is unknown)."""
    unknown = row.keys() - column_names(record)
    if unknown:
        raise ValueError(f"not columns of {record.__name__}: {', '.join(sorted(unknown))}")
    return {**column_defaults(record), **row}


class SqlText:
    """Runs the engine's SQL text on a plain sqlite3 connection or inside a SQLAlchemy transaction.

    Both take `:name` parameters, so one statement serves SQLite and PostgreSQL.
    """

    def __init__(self, conn: sqlite3.Connection | Connection) -> None:
        self.conn = conn
        self.raw = isinstance(conn, sqlite3.Connection)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run one statement; returns the number of rows it changed."""
        if self.raw:
            return self.conn.execute(sql, params or {}).rowcount  # type: ignore[union-attr]
        return self.conn.execute(sa.text(sql), params or {}).rowcount  # type: ignore[union-attr]

    def execute_many(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.raw:
            self.conn.executemany(sql, rows)  # type: ignore[union-attr]
        else:
            self.conn.execute(sa.text(sql), list(rows))

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if self.raw:
            cursor = self.conn.execute(sql, params or {})  # type: ignore[union-attr]
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]
        return [dict(m) for m in self.conn.execute(sa.text(sql), params or {}).mappings()]

    def first(self, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None


def sqlite_path(url: str) -> str:
    """The file a sqlite:/// URL names, read as SQLAlchemy reads it (query options dropped, %XX decoded)."""
    return unquote(url.split("///", 1)[-1].split("?", 1)[0])


def _connect_sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Store:
    """Database access for the whole engine. Build one with `open_store(url)`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self._sqlite_path = sqlite_path(url) if self.is_sqlite else ""
        self._raw_writer: sqlite3.Connection | None = None
        self._idle_readers: list[sqlite3.Connection] = []
        if self.is_sqlite and self._sqlite_path and self._sqlite_path != ":memory:":
            Path(self._sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        if not self.is_sqlite:
            self._engine = self._create_engine(url)

    # -- connection plumbing ---------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine; on SQLite it is built on first use, off the engine's own path."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._create_engine(self.url)
        return self._engine

    def _create_engine(self, url: str) -> Engine:
        if not self.is_sqlite:
            return sa.create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)
        engine = sa.create_engine(url, creator=lambda: _connect_sqlite(self._sqlite_path), pool_size=8,
                                  max_overflow=64)

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")

        return engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), committed on exit."""
        if self._write_lock is not None:
            with self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(readonly=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _write_sql(self) -> Iterator[SqlText]:
        """A write transaction for SQL text: plain sqlite3 under the write lock, or SQLAlchemy on PostgreSQL."""
        if self._write_lock is None:
            with self.write() as conn:
                yield SqlText(conn)
            return
        with self._write_lock:
            if self._raw_writer is None:
                self._raw_writer = _connect_sqlite(self._sqlite_path)
            raw = self._raw_writer
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield SqlText(raw)
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise

    @contextmanager
    def _read_sql(self) -> Iterator[SqlText]:
        """Reads for SQL text: a pooled sqlite3 connection in autocommit (each read is one statement, so it sees
        one snapshot), or a SQLAlchemy read transaction."""
        if not self.is_sqlite:
            with self.read() as conn:
                yield SqlText(conn)
            return
        with self._lock:
            reader = self._idle_readers.pop() if self._idle_readers else None
        if reader is None:
            reader = _connect_sqlite(self._sqlite_path)
        try:
            yield SqlText(reader)
        finally:
            with self._lock:
                self._idle_readers.append(reader)

    def dispose(self) -> None:
        with self._lock:
            for conn in self._idle_readers:
                conn.close()
            self._idle_readers.clear()
        if self._write_lock is not None:
            with self._write_lock:
                if self._raw_writer is not None:
                    self._raw_writer.close()
                    self._raw_writer = None
        if self._engine is not None:
            self._engine.dispose()

    # -- ledger ------------------------------------------------------------------------------------

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
            yield from (tuple(r) for r in rows)  # type: ignore[misc]
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
            return [_row(schema.LedgerEvent, r._mapping) for r in conn.execute(query.order_by(order).limit(limit))]

    def ledger_count(self) -> int:
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(schema.LEDGER)).scalar_one()

    # -- runs --------------------------------------------------------------------------------------

    def create_run(self, values: dict[str, Any], events: Sequence[Event]) -> None:
        self.create_runs([values], events)

    def create_runs(self, rows: Sequence[dict[str, Any]], events: Sequence[Event]) -> None:
        """Insert runs and their events in one transaction (an import, a backfill)."""
        complete = [_complete(RunRecord, row) for row in rows]
        with self._write_sql() as tx:
            if complete:
                tx.execute_many(_insert_sql("flow_runs", complete[0]), complete)
            self._chain(tx, events)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._read_sql() as tx:
            found = tx.first(f"SELECT {RUN_COLUMNS} FROM flow_runs WHERE id = :id", {"id": run_id})
        return RunRecord(**found) if found else None

    def find_run_ids(self, prefix: str, limit: int = 2) -> list[str]:
        with self.read() as conn:
            query = sa.select(schema.RUNS.c.id).where(schema.RUNS.c.id.like(f"{prefix}%")).limit(limit)
            return list(conn.execute(query).scalars())

    def set_run_state(
        self,
        run_id: str,
        state: str,
        events: Sequence[Event],
        *,
        expect: Iterable[str] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Move a run to `state` (only from one of `expect`, if given). False if the run was not there."""
        values = {"state": state, "updated_at": time.time(), **(fields or {})}
        sql = _update_sql("flow_runs", values, "id = :where_id")
        params = {**values, "where_id": run_id}
        if expect is not None:
            expect = list(expect)
            if not expect:
                return False
            expected, expected_params = _in_list("expect_", expect)
            sql += f" AND state IN {expected}"
            params |= expected_params
        with self._write_sql() as tx:
            if tx.execute(sql, params) != 1:
                return False
            self._chain(tx, events)
        return True

    def _run_filters(self, query: Any, state: str | None, flow: str | None, trigger: str | None,
                     since: float | None, until: float | None) -> Any:
        if state:
            query = query.where(schema.RUNS.c.state == state)
        if flow:
            query = query.where(schema.RUNS.c.flow_name == flow)
        if trigger:
            query = query.where(schema.RUNS.c.trigger == trigger)
        if since is not None:
            query = query.where(schema.RUNS.c.created_at >= since)
        if until is not None:
            query = query.where(schema.RUNS.c.created_at < until)
        return query

    def list_runs(self, *, state: str | None = None, flow: str | None = None, trigger: str | None = None,
                  since: float | None = None, until: float | None = None, limit: int = 50,
                  offset: int = 0) -> list[RunRecord]:
        query = self._run_filters(sa.select(schema.RUNS), state, flow, trigger, since, until)
        query = query.order_by(schema.RUNS.c.created_at.desc()).limit(limit).offset(offset)
        with self.read() as conn:
            return [_row(RunRecord, r._mapping) for r in conn.execute(query)]

    def count_runs(self, *, state: str | None = None, flow: str | None = None, trigger: str | None = None,
                   since: float | None = None, until: float | None = None) -> int:
        query = self._run_filters(sa.select(sa.func.count()).select_from(schema.RUNS), state, flow, trigger, since,
                                  until)
        with self.read() as conn:
            return conn.execute(query).scalar_one()

    def flow_names(self) -> list[str]:
        with self.read() as conn:
            return list(conn.execute(sa.select(schema.RUNS.c.flow_name).distinct()).scalars())

    def claim_run(self, worker_id: str, now: float, events_for: Any) -> RunRecord | None:
        """Take the oldest queued (or crashed) run for this worker; `events_for(run)` builds its audit events."""
        query = (sa.select(schema.RUNS).where(schema.RUNS.c.state.in_(CLAIMABLE))
                 .where(sa.or_(schema.RUNS.c.wake_at.is_(None), schema.RUNS.c.wake_at <= now))
                 .order_by(schema.RUNS.c.created_at).limit(1))
        if not self.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        with self.write() as conn:
            found = conn.execute(query).first()
            if found is None:
                return None
            run = _row(RunRecord, found._mapping)
            conn.execute(sa.update(schema.RUNS).where(schema.RUNS.c.id == run.id).values(
                state="RUNNING", worker_id=worker_id, heartbeat_at=now, updated_at=now,
                started_at=run.started_at or now))
            self._append(conn, events_for(run))
        run.state, run.worker_id = "RUNNING", worker_id
        return run

    def has_claimable(self, now: float) -> bool:
        with self.read() as conn:
            return conn.execute(sa.select(schema.RUNS.c.id).where(schema.RUNS.c.state.in_(CLAIMABLE))
                                .where(sa.or_(schema.RUNS.c.wake_at.is_(None), schema.RUNS.c.wake_at <= now))
                                .limit(1)).first() is not None

    def heartbeat(self, run_ids: Sequence[str], worker_id: str, now: float) -> set[str]:
        """Refresh the heartbeat of runs this worker holds; returns those no longer RUNNING here."""
        if not run_ids:
            return set()
        ids, params = _in_list("run_", list(run_ids))
        held = f"id IN {ids} AND state = 'RUNNING' AND worker_id = :worker_id"
        params |= {"worker_id": worker_id, "now": now}
        with self._write_sql() as tx:
            tx.execute(f"UPDATE flow_runs SET heartbeat_at = :now WHERE {held}", params)
            alive = {row["id"] for row in tx.rows(f"SELECT id FROM flow_runs WHERE {held}", params)}
        return set(run_ids) - alive

    def stale_runs(self, stale_before: float) -> list[RunRecord]:
        with self.read() as conn:
            runs = schema.RUNS
            rows = conn.execute(sa.select(runs).where(
                runs.c.state == "RUNNING", sa.or_(runs.c.heartbeat_at.is_(None), runs.c.heartbeat_at < stale_before)))
            return [_row(RunRecord, r._mapping) for r in rows]

    def mark_crashed(self, run: RunRecord, stale_before: float, events: Sequence[Event]) -> bool:
        with self.write() as conn:
            changed = conn.execute(sa.update(schema.RUNS).where(
                schema.RUNS.c.id == run.id, schema.RUNS.c.state == "RUNNING",
                sa.or_(schema.RUNS.c.heartbeat_at.is_(None), schema.RUNS.c.heartbeat_at < stale_before),
            ).values(state="CRASHED", worker_id=None, updated_at=time.time(),
                     state_message="worker stopped heartbeating")).rowcount
            if changed:
                steps = schema.STEPS
                conn.execute(sa.update(steps).where(steps.c.run_id == run.id, steps.c.state == "RUNNING")
                             .values(state="CRASHED"))
                self._append(conn, events)
        return bool(changed)

    def delete_run(self, run_id: str) -> None:
        """Remove a run that never started (a failed enqueue); its ledger events stay."""
        with self.write() as conn:
            conn.execute(sa.delete(schema.RUNS).where(schema.RUNS.c.id == run_id))

    # -- steps, logs and cache ---------------------------------------------------------------------

    def steps_for_run(self, run_id: str) -> list[StepRecord]:
        with self._read_sql() as tx:
            rows = tx.rows(f"SELECT {STEP_COLUMNS} FROM step_runs WHERE run_id = :run_id ORDER BY step_no",
                           {"run_id": run_id})
        return [StepRecord(**row) for row in rows]

    def record_step(self, values: dict[str, Any], events: Sequence[Event], *, exists: bool,
                    logs: Sequence[dict[str, Any]] = ()) -> None:
        """Insert or update the step row, with its audit events and buffered log lines, atomically."""
        with self._write_sql() as tx:
            self._put_step(tx, values, exists=exists)
            tx.execute_many(_LOG_INSERT, logs)
            self._chain(tx, events)

    @staticmethod
    def _put_step(tx: SqlText, values: dict[str, Any], *, exists: bool) -> None:
        if exists:
            changed = [c for c in values if c not in ("run_id", "step_no")]
            tx.execute(_update_sql("step_runs", changed, "run_id = :run_id AND step_no = :step_no"), values)
        else:
            row = _complete(StepRecord, values)
            tx.execute(_insert_sql("step_runs", row), row)

    def add_logs(self, logs: Sequence[dict[str, Any]]) -> None:
        if logs:
            with self._write_sql() as tx:
                tx.execute_many(_LOG_INSERT, logs)

    def logs_for_run(self, run_id: str, limit: int = 5000) -> list[LogRecord]:
        with self._read_sql() as tx:
            rows = tx.rows(f"SELECT {LOG_COLUMNS} FROM log_lines WHERE run_id = :run_id ORDER BY id LIMIT :limit",
                           {"run_id": run_id, "limit": limit})
        return [LogRecord(**row) for row in rows]

    def cache_get(self, key: str, now: float) -> str | None:
        with self._read_sql() as tx:
            found = tx.first("SELECT value, expires_at FROM task_cache WHERE key = :key", {"key": key})
        if found is None or (found["expires_at"] is not None and found["expires_at"] <= now):
            return None
        return found["value"]

    def cache_put(self, key: str, value: str, now: float, expires_at: float | None) -> None:
        with self._write_sql() as tx:
            tx.execute("DELETE FROM task_cache WHERE key = :key", {"key": key})
            tx.execute(_insert_sql("task_cache", ("key", "value", "created_at", "expires_at")),
                       {"key": key, "value": value, "created_at": now, "expires_at": expires_at})

    # -- approvals ---------------------------------------------------------------------------------

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
        return _row(schema.Approval, found._mapping) if found else None

    def approval_for_step(self, run_id: str, step_no: int) -> Approval | None:
        with self.read() as conn:
            found = conn.execute(sa.select(schema.APPROVALS).where(schema.APPROVALS.c.run_id == run_id,
                                                         schema.APPROVALS.c.step_no == step_no)).first()
        return _row(schema.Approval, found._mapping) if found else None

    def list_approvals(self, *, status: str | None = "pending", run_id: str | None = None,
                       limit: int = 200) -> list[Approval]:
        query = sa.select(schema.APPROVALS)
        if status:
            query = query.where(schema.APPROVALS.c.status == status)
        if run_id:
            query = query.where(schema.APPROVALS.c.run_id == run_id)
        with self.read() as conn:
            rows = conn.execute(query.order_by(schema.APPROVALS.c.created_at.desc()).limit(limit))
            return [_row(schema.Approval, r._mapping) for r in rows]

    def votes_for(self, approval_id: str) -> list[ApprovalVote]:
        with self.read() as conn:
            votes = schema.VOTES
            rows = conn.execute(sa.select(votes).where(votes.c.approval_id == approval_id).order_by(votes.c.id))
            return [_row(schema.ApprovalVote, r._mapping) for r in rows]

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
            expired = [_row(schema.Approval, r._mapping) for r in rows]
            for appr in expired:
                conn.execute(sa.update(schema.APPROVALS).where(schema.APPROVALS.c.id == appr.id)
                             .values(status="expired", decided_at=now, decided_by="system:expiry"))
                if appr.run_id:
                    conn.execute(sa.update(schema.RUNS).where(schema.RUNS.c.id == appr.run_id,
                                                    schema.RUNS.c.state == "AWAITING_APPROVAL")
                                 .values(state="PENDING", updated_at=now, worker_id=None))
                self._append(conn, events_for(appr))
        return expired

    # -- users -------------------------------------------------------------------------------------

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
        return _row(schema.User, found._mapping) if found else None

    def list_users(self) -> list[User]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.USERS).order_by(schema.USERS.c.name))
            return [_row(schema.User, r._mapping) for r in rows]

    # -- schedules and leases ----------------------------------------------------------------------

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
        return _row(schema.Schedule, found._mapping) if found else None

    def list_schedules(self) -> list[Schedule]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.SCHEDULES).order_by(schema.SCHEDULES.c.id))
            return [_row(schema.Schedule, r._mapping) for r in rows]

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
            return [_row(schema.Schedule, r._mapping) for r in rows]

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
            current = dict(conn.execute(  # type: ignore[arg-type]
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
            return [_row(RunRecord, r._mapping) for r in rows]

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

    # -- policy rate windows -----------------------------------------------------------------------

    def count_rate(self, key: str, since: float) -> int:
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(schema.RATES)
                                .where(schema.RATES.c.key == key, schema.RATES.c.ts >= since)).scalar_one()

    def add_rate(self, key: str, ts: float) -> None:
        with self.write() as conn:
            conn.execute(sa.insert(schema.RATES), {"key": key, "ts": ts})

    # -- embedded tool backends --------------------------------------------------------------------

    def _insert_once(self, table: Any, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Insert keyed by idempotency_key; a repeat returns the first row and created=False."""
        with self.write() as conn:
            found = conn.execute(sa.select(table).where(table.c.idempotency_key == values["idempotency_key"])).first()
            if found is not None:
                return dict(found._mapping), False
            row_id = conn.execute(sa.insert(table).returning(table.c.id), values).scalar_one()
            return {**values, "id": row_id}, True

    def outbox_add(self, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return self._insert_once(schema.OUTBOX, values)

    def outbox_list(self, limit: int = 200) -> list[OutboxEmail]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.OUTBOX).order_by(schema.OUTBOX.c.id.desc()).limit(limit))
            return [_row(schema.OutboxEmail, r._mapping) for r in rows]

    def ticket_create(self, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return self._insert_once(schema.TICKETS, values)

    def ticket_update(self, ticket_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
        with self.write() as conn:
            query = sa.update(schema.TICKETS).where(schema.TICKETS.c.id == ticket_id).values(**values)
            if not conn.execute(query).rowcount:
                return None
            return dict(conn.execute(sa.select(schema.TICKETS).where(schema.TICKETS.c.id == ticket_id)).one()._mapping)

    def tickets_list(self, status: str | None = None, limit: int = 200) -> list[Ticket]:
        query = sa.select(schema.TICKETS)
        if status:
            query = query.where(schema.TICKETS.c.status == status)
        with self.read() as conn:
            rows = conn.execute(query.order_by(schema.TICKETS.c.id.desc()).limit(limit))
            return [_row(schema.Ticket, r._mapping) for r in rows]

    def deployments(self) -> list[Deployment]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.DEPLOYMENTS).order_by(schema.DEPLOYMENTS.c.name))
            return [_row(schema.Deployment, r._mapping) for r in rows]

    def deployment(self, name: str) -> Deployment | None:
        with self.read() as conn:
            found = conn.execute(sa.select(schema.DEPLOYMENTS).where(schema.DEPLOYMENTS.c.name == name)).first()
        return _row(schema.Deployment, found._mapping) if found else None

    def upsert_deployment(self, values: dict[str, Any]) -> None:
        with self.write() as conn:
            changed = conn.execute(sa.update(schema.DEPLOYMENTS).where(schema.DEPLOYMENTS.c.name == values["name"])
                                   .values(**values)).rowcount
            if not changed:
                conn.execute(sa.insert(schema.DEPLOYMENTS), values)

    def seed_deployments(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert deployments that do not exist yet; returns how many were added."""
        added = 0
        with self.write() as conn:
            existing = set(conn.execute(sa.select(schema.DEPLOYMENTS.c.name)).scalars())
            fresh = [r for r in rows if r["name"] not in existing]
            if fresh:
                conn.execute(sa.insert(schema.DEPLOYMENTS), fresh)
                added = len(fresh)
        return added

    def scale(self, values: dict[str, Any], metrics: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record a scale action once per idempotency key and apply it to the simulated cluster."""
        with self.write() as conn:
            query = sa.select(schema.SCALES).where(schema.SCALES.c.idempotency_key == values["idempotency_key"])
            found = conn.execute(query).first()
            if found is not None:
                return dict(found._mapping), False
            conn.execute(sa.update(schema.DEPLOYMENTS).where(schema.DEPLOYMENTS.c.name == values["deployment"])
                         .values(replicas=values["to_replicas"], **metrics))
            row_id = conn.execute(sa.insert(schema.SCALES).returning(schema.SCALES.c.id), values).scalar_one()
            return {**values, "id": row_id}, True

    def scale_event(self, idempotency_key: str) -> ScaleEvent | None:
        with self.read() as conn:
            query = sa.select(schema.SCALES).where(schema.SCALES.c.idempotency_key == idempotency_key)
            found = conn.execute(query).first()
        return _row(schema.ScaleEvent, found._mapping) if found else None

    def scale_events(self, limit: int = 200) -> list[ScaleEvent]:
        with self.read() as conn:
            return [_row(schema.ScaleEvent, r._mapping)
                    for r in conn.execute(sa.select(schema.SCALES).order_by(schema.SCALES.c.id.desc()).limit(limit))]

    def add_metric_samples(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            with self.write() as conn:
                conn.execute(sa.insert(schema.METRICS), list(rows))

    def metric_samples(self, deployment: str, since: float | None = None) -> list[MetricSample]:
        query = sa.select(schema.METRICS).where(schema.METRICS.c.deployment == deployment)
        if since is not None:
            query = query.where(schema.METRICS.c.ts >= since)
        with self.read() as conn:
            return [_row(schema.MetricSample, r._mapping) for r in conn.execute(query.order_by(schema.METRICS.c.ts))]

    def count_metric_samples(self) -> int:
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(schema.METRICS)).scalar_one()

    # -- chat --------------------------------------------------------------------------------------

    def add_chat_message(self, values: dict[str, Any], events: Sequence[Event] = ()) -> None:
        with self.write() as conn:
            conn.execute(sa.insert(schema.CHAT), values)
            self._append(conn, events)

    def chat_messages(self, conversation_id: str) -> list[ChatMessage]:
        with self.read() as conn:
            chat = schema.CHAT
            rows = conn.execute(sa.select(chat).where(chat.c.conversation_id == conversation_id).order_by(chat.c.id))
            return [_row(schema.ChatMessage, r._mapping) for r in rows]

    # -- schema ------------------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        try:
            with self._read_sql() as tx:
                found = tx.first("SELECT version_num FROM alembic_version")
        except Exception:
            return None
        return found["version_num"] if found else None


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """The process's Store for `url` (default: from settings), migrated to the latest schema."""
    from agentops.settings import get_settings

    url = url or get_settings().url
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = Store(url)
            if migrate:
                from agentops.migrate import ensure_schema

                ensure_schema(store)
            _stores[url] = store
    return store


def close_stores() -> None:
    with _stores_lock:
        for store in _stores.values():
            store.dispose()
        _stores.clear()
