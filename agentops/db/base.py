"""The store's connections and transactions; every owner's statements build on them (see agentops/db/).

SQLite (WAL, the embedded default) and PostgreSQL share every statement here. Write transactions on
SQLite start with BEGIN IMMEDIATE and are serialised in-process by a lock, so no thread sleeps in
SQLite's busy handler; on PostgreSQL the ledger's hash chain is serialised by its head row's lock
(`ledger_head`, FOR UPDATE), held for one statement and its commit (see agentops/db/ledger.py).
Every state change appends its audit events in the same transaction, so the ledger never disagrees
with the tables. That is also how a store knows, once a write transaction has committed, which runs it made
runnable (their last `run.state` event in it is PENDING or CRASHED): it passes their ids to each of its
`after_commit` listeners (dispatch to a broker listens there), and to none when the transaction rolled back.

Times that decide who holds a run (heartbeats, staleness) come from the database's clock: on PostgreSQL
`clock_timestamp()`, so workers on hosts whose clocks disagree still agree; on SQLite, whose writers all
share one machine, that machine's clock (`time.time()`) is the database's clock.

The engine's own path (runs, steps, logs, cache, the ledger) is written as SQL text that both databases
accept. It runs on plain driver connections: sqlite3 on SQLite, so `agentops run` never imports SQLAlchemy,
and psycopg on PostgreSQL (`PgConnections`, in autocommit: a read is one round trip, and a state change with
its events is one statement where it can be, see `RunsSQL._guarded_write`). Everything else is built with
SQLAlchemy Core on the SQLModel tables, imported on first use.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event
from agentops.core.states import CLAIMABLE

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy import Connection, Engine

    from agentops.db import schema
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")

from agentops.db.sql import PsycopgText, SqlText, connect_sqlite, sqlite_path
from agentops.db.wakeups import LocalWakeups, wake_all, wake_dir

log = logging.getLogger("agentops.db")

RunnableListener = Callable[[list[str]], None]
"""Called after a write transaction commits, with the ids of the runs it made runnable."""


RUNNABLE_CHANNEL = "agentops_runnable"
NOTIFY_RUNNABLE = f"SELECT pg_notify('{RUNNABLE_CHANNEL}', '')"
"""Sent inside a transaction that makes a run runnable; PostgreSQL delivers it only if that transaction commits."""


class RunnableWakeups:
    """A connection of its own, in autocommit, LISTENing on RUNNABLE_CHANNEL (PostgreSQL)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True)
        self._conn.execute(f"LISTEN {RUNNABLE_CHANNEL}")

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True if a run became runnable meanwhile (several wake-ups count once)."""
        return any(True for _ in self._conn.notifies(timeout=timeout, stop_after=1))

    def close(self) -> None:
        self._conn.close()


class PgConnections:
    """The engine path's own psycopg connections to PostgreSQL, in autocommit, the idle ones kept for the next
    caller: a read is its one statement, a write transaction sends its own BEGIN and COMMIT. Plain psycopg, as
    plain sqlite3 serves SQLite: on this path SQLAlchemy's checkout, isolation-level reset and result wrapping
    cost several times the round trip itself. psycopg prepares a statement once a connection has run it five
    times. An idle connection is pinged (and replaced if gone) only after PING_AFTER_IDLE_SECONDS."""

    def __init__(self, dsn: str, keep: int = 16) -> None:
        self._dsn = dsn
        self._keep = keep
        self._idle: list[tuple[Any, float]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _take(self) -> Any:
        import psycopg

        while True:
            with self._lock:
                if self._pid != os.getpid():  # forked: the parent's connections are not ours to use or close
                    self._idle.clear()
                    self._pid = os.getpid()
                if not self._idle:
                    break
                conn, since = self._idle.pop()
            if time.monotonic() - since <= PING_AFTER_IDLE_SECONDS:
                return conn
            try:
                conn.execute("SELECT 1")
                return conn
            except Exception:
                conn.close()
        return psycopg.connect(self._dsn, autocommit=True)

    def _give(self, conn: Any) -> None:
        from psycopg.pq import TransactionStatus

        if not conn.closed and not conn.broken and conn.pgconn.transaction_status == TransactionStatus.IDLE:
            with self._lock:
                if self._pid == os.getpid() and len(self._idle) < self._keep:
                    self._idle.append((conn, time.monotonic()))
                    return
        conn.close()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._give(conn)

    @contextmanager
    def transaction(self, setup: str = "") -> Iterator[SqlText]:
        """One write transaction: BEGIN (with `setup`, in the same round trip), the caller's statements, COMMIT;
        rolled back if anything fails."""
        with self.connection() as conn:
            conn.execute(f"BEGIN; {setup}" if setup else "BEGIN")  # no parameters: one simple query
            try:
                yield PsycopgText(conn)
                conn.execute("COMMIT")
            except BaseException:
                if not conn.closed and not conn.broken:
                    try:
                        conn.execute("ROLLBACK")
                    except Exception:
                        conn.close()
                raise

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def forget(self) -> None:
        """In a forked child: drop the parent's connections without closing them (see forget_stores_after_fork)."""
        with self._lock:
            self._idle = []


class StoreBase:
    """Connections and transactions on SQLite or PostgreSQL. The Store in agentops.db.store adds the statements."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self._sqlite_path = sqlite_path(url) if self.is_sqlite else ""
        self._raw_writer: sqlite3.Connection | None = None
        self._idle_readers: list[sqlite3.Connection] = []
        self.after_commit: list[RunnableListener] = []
        self._unstarted: set[tuple[str, int]] = set()
        self._transactions = threading.local()
        self._wake_dir = wake_dir(self._sqlite_path) if self.is_sqlite and self._sqlite_path not in ("", ":memory:") \
            else None
        if self._wake_dir is not None:
            self.after_commit.append(self._wake_local)
        self.now_sql = ":now" if self.is_sqlite else "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
        """The database's clock in epoch seconds, in SQL text (on SQLite the `:now` parameter: this machine's)."""
        self.share_lock = "" if self.is_sqlite else " FOR SHARE"
        """Appended to a read that must not interleave with a concurrent claim (SQLite serialises writers)."""
        self._pg: PgConnections | None = None
        if not self.is_sqlite:
            self._engine = self._create_engine(url)
            self._pg = PgConnections(self._engine.url.set(drivername="postgresql").render_as_string(
                hide_password=False))

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
            return _ping_when_idle(sa.create_engine(url, pool_size=20, max_overflow=40))
        engine = sa.create_engine(url, creator=lambda: connect_sqlite(self._sqlite_path), pool_size=8,
                                  max_overflow=64)

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")

        return engine

    @contextmanager
    def _tracking_runnable(self) -> Iterator[None]:
        """Around one write transaction: note the runs it moves (see `_note_states`) and, once it has committed,
        tell the listeners which of them it left runnable. Transactions nest per thread (each is its own)."""
        stack: list[dict[str, str]] = self._transactions.__dict__.setdefault("stack", [])
        stack.append({})
        try:
            yield
        except BaseException:
            stack.pop()
            raise
        runnable = [run_id for run_id, state in stack.pop().items() if state in CLAIMABLE]
        if runnable:
            for listener in list(self.after_commit):
                try:
                    listener(runnable)
                except Exception:  # committed is committed: the sweeper re-sends what was not sent
                    log.exception("after-commit listener %r failed for runs %s", listener, runnable)

    def _note_states(self, events: Sequence[Event]) -> bool:
        """Record, for the transaction in progress, the last state each `run.state` event moves its run to.
        True when these events leave a run runnable."""
        moved = {e.run_id: str(e.payload.get("state")) for e in events if e.action == "run.state" and e.run_id}
        stack = self._transactions.__dict__.get("stack")
        if stack:
            stack[-1].update(moved)
        return any(state in CLAIMABLE for state in moved.values())

    def _forget_states(self) -> None:
        """The write in progress changed nothing after all: it made no run runnable."""
        stack = self._transactions.__dict__.get("stack")
        if stack:
            stack[-1].clear()

    def listen_runnable(self) -> RunnableWakeups | LocalWakeups | None:
        """Wake-ups for an idle worker whenever a transaction makes a run runnable: on PostgreSQL a connection
        LISTENing for their NOTIFY (see `_chain`), on SQLite a local socket (agentops/db/wakeups.py). None where
        there can be none (an in-memory database, a socket path too long): the worker polls."""
        if not self.is_sqlite:
            return RunnableWakeups(self.engine.url.render_as_string(hide_password=False))
        if self._wake_dir is None:
            return None
        try:
            return LocalWakeups(self._wake_dir)
        except OSError as exc:
            log.info("no local wake-ups for %s (%s); the worker polls", self._sqlite_path, exc)
            return None

    def _wake_local(self, _runnable: list[str]) -> None:
        if self._wake_dir is not None:
            wake_all(self._wake_dir)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), committed on exit."""
        if self._write_lock is not None:
            with self._tracking_runnable(), self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            with self._tracking_runnable(), self.engine.begin() as conn:
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(readonly=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _write_sql(self, *, setup: str = "") -> Iterator[SqlText]:
        """A write transaction for SQL text: plain sqlite3 under the write lock, or the engine's own psycopg
        connections on PostgreSQL, where `setup` (SQL text without parameters, e.g. SET LOCAL) is sent with the
        BEGIN."""
        if self._pg is not None:
            with self._tracking_runnable(), self._pg.transaction(setup) as tx:
                yield tx
            return
        assert self._write_lock is not None  # SQLite
        with self._tracking_runnable(), self._write_lock:
            if self._raw_writer is None:
                self._raw_writer = connect_sqlite(self._sqlite_path)
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
        """Reads for SQL text, one statement each (so each sees one snapshot): a pooled sqlite3 connection or a
        pooled PostgreSQL one, both in autocommit."""
        if self._pg is not None:
            # One statement is its own snapshot: in autocommit it costs no BEGIN and no ROLLBACK round trip.
            with self._pg.connection() as conn:
                yield PsycopgText(conn)
            return
        with self._lock:
            reader = self._idle_readers.pop() if self._idle_readers else None
        if reader is None:
            reader = connect_sqlite(self._sqlite_path)
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
        if self._pg is not None:
            self._pg.close()
        if self._engine is not None:
            self._engine.dispose()

    def forget_connections(self) -> None:
        """In a forked child: drop the parent's connections without closing them; the child opens its own."""
        if self._pg is not None:
            self._pg.forget()
        if self._engine is not None:
            self._engine.dispose(close=False)


    def schema_revision(self) -> str | None:
        try:
            with self._read_sql() as tx:
                found = tx.first("SELECT version_num FROM alembic_version")
        except Exception:
            return None
        return found["version_num"] if found else None


PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled PostgreSQL connection idle longer than this is pinged as it is checked out; one used more recently
is not (a ping is a round trip on every transaction). A connection that broke anyway fails its statement as a
disconnect, which SQLAlchemy invalidates with the rest of the pool."""


def _ping_when_idle(engine: Engine) -> Engine:
    @sa.event.listens_for(engine, "checkin")
    def _checkin(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since > PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi)
            except Exception:
                raise sa.exc.DisconnectionError("the pooled connection is gone") from None  # the pool takes another

    return engine
