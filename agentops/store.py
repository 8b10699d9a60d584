"""The one module that holds SQL. Everything else calls these methods.

SQLite (WAL, the embedded default) and PostgreSQL share every statement here. Write transactions on
SQLite start with BEGIN IMMEDIATE and are serialised in-process by a lock, so no thread sleeps in
SQLite's busy handler; on PostgreSQL the ledger's hash chain is serialised by an advisory lock.
Every state change appends its audit events in the same transaction, so the ledger never disagrees
with the tables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from agentops import ledger
from agentops.ledger import GENESIS, Event
from agentops.tables import (
    Approval,
    ApprovalVote,
    CacheEntry,
    ChatMessage,
    Deployment,
    FlowRun,
    Lease,
    LedgerEvent,
    LogLine,
    MetricSample,
    OutboxEmail,
    RateEvent,
    ScaleEvent,
    Schedule,
    StepRun,
    Ticket,
    User,
)

RUNS = FlowRun.__table__
STEPS = StepRun.__table__
LOGS = LogLine.__table__
CACHE = CacheEntry.__table__
LEDGER = LedgerEvent.__table__
APPROVALS = Approval.__table__
VOTES = ApprovalVote.__table__
USERS = User.__table__
SCHEDULES = Schedule.__table__
LEASES = Lease.__table__
RATES = RateEvent.__table__
OUTBOX = OutboxEmail.__table__
TICKETS = Ticket.__table__
DEPLOYMENTS = Deployment.__table__
SCALES = ScaleEvent.__table__
METRICS = MetricSample.__table__
CHAT = ChatMessage.__table__

CLAIMABLE = ("PENDING", "CRASHED")
_LEDGER_INSERT = ("INSERT INTO ledger (ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, "
                  "prev_hash, hash) VALUES (:ts, :actor, :action, :run_id, :step_no, :approval_id, :payload, "
                  ":policy_hash, :prev_hash, :hash)")
LEDGER_LOCK_KEY = 7_246_318


@dataclass(frozen=True)
class ScheduleFire:
    """One schedule's due fire: the runs to create and where its next fire time moves."""

    schedule_id: int
    expected_next: float
    next_fire_at: float | None
    runs: Sequence[dict[str, Any]]
    events: Sequence[Event]


def _row(table_model: type, mapping: Any) -> Any:
    return table_model(**dict(mapping))


class Store:
    """Database access for the whole engine. Build one with `open_store(url)`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = self._create_engine(url)
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self._raw_writer: Any = None

    # -- connection plumbing ---------------------------------------------------------------------

    def _create_engine(self, url: str) -> Engine:
        if not self.is_sqlite:
            return create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8,
                               max_overflow=64)

        @event.listens_for(engine, "connect")
        def _configure(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
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

    def dispose(self) -> None:
        if self._raw_writer is not None:
            self._raw_writer.close()
            self._raw_writer = None
        self.engine.dispose()

    def _sqlite_writer(self) -> Any:
        """A plain sqlite3 connection for the per-step hot path (called under the write lock)."""
        if self._raw_writer is None:
            import sqlite3

            raw = sqlite3.connect(self.url.split("///", 1)[-1], isolation_level=None, check_same_thread=False,
                                  timeout=30)
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("PRAGMA busy_timeout=30000")
            self._raw_writer = raw
        return self._raw_writer

    # -- ledger ------------------------------------------------------------------------------------

    def _append(self, conn: Connection, events: Sequence[Event]) -> None:
        if not events:
            return
        if not self.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LEDGER_LOCK_KEY})
        prev = conn.execute(select(LEDGER.c.hash).order_by(LEDGER.c.seq.desc()).limit(1)).scalar()
        conn.execute(insert(LEDGER), ledger.chain(prev or GENESIS, events))

    def append_events(self, events: Sequence[Event]) -> None:
        with self.write() as conn:
            self._append(conn, events)

    def iter_ledger(self, chunk: int = 50_000) -> Iterator[ledger.LedgerRow]:
        cols = [LEDGER.c[n] for n in ("seq", "ts", "actor", "action", "run_id", "step_no", "approval_id",
                                        "payload", "policy_hash", "prev_hash", "hash")]
        after = 0
        while True:
            with self.read() as conn:
                rows = conn.execute(
                    select(*cols).where(LEDGER.c.seq > after).order_by(LEDGER.c.seq).limit(chunk)
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
        query = select(LEDGER)
        if after_seq is not None:
            query = query.where(LEDGER.c.seq > after_seq)
        if actor:
            query = query.where(LEDGER.c.actor == actor)
        if action:
            query = query.where(LEDGER.c.action.like(f"{action}%"))
        if run_id:
            query = query.where(LEDGER.c.run_id == run_id)
        if since is not None:
            query = query.where(LEDGER.c.ts >= since)
        if until is not None:
            query = query.where(LEDGER.c.ts < until)
        order = LEDGER.c.seq.asc() if ascending else LEDGER.c.seq.desc()
        with self.read() as conn:
            return [_row(LedgerEvent, r._mapping) for r in conn.execute(query.order_by(order).limit(limit))]

    def ledger_count(self) -> int:
        with self.read() as conn:
            return conn.execute(select(func.count()).select_from(LEDGER)).scalar_one()

    # -- runs --------------------------------------------------------------------------------------

    def create_run(self, values: dict[str, Any], events: Sequence[Event]) -> None:
        self.create_runs([values], events)

    def create_runs(self, rows: Sequence[dict[str, Any]], events: Sequence[Event]) -> None:
        """Insert runs and their events in one transaction (an import, a backfill)."""
        with self.write() as conn:
            conn.execute(insert(RUNS), list(rows))
            self._append(conn, events)

    def get_run(self, run_id: str) -> FlowRun | None:
        with self.read() as conn:
            found = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
        return _row(FlowRun, found._mapping) if found else None

    def find_run_ids(self, prefix: str, limit: int = 2) -> list[str]:
        with self.read() as conn:
            return list(conn.execute(select(RUNS.c.id).where(RUNS.c.id.like(f"{prefix}%")).limit(limit)).scalars())

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
        query = update(RUNS).where(RUNS.c.id == run_id)
        if expect is not None:
            query = query.where(RUNS.c.state.in_(list(expect)))
        with self.write() as conn:
            if conn.execute(query.values(**values)).rowcount != 1:
                return False
            self._append(conn, events)
        return True

    def _run_filters(self, query: Any, state: str | None, flow: str | None, trigger: str | None,
                     since: float | None, until: float | None) -> Any:
        if state:
            query = query.where(RUNS.c.state == state)
        if flow:
            query = query.where(RUNS.c.flow_name == flow)
        if trigger:
            query = query.where(RUNS.c.trigger == trigger)
        if since is not None:
            query = query.where(RUNS.c.created_at >= since)
        if until is not None:
            query = query.where(RUNS.c.created_at < until)
        return query

    def list_runs(self, *, state: str | None = None, flow: str | None = None, trigger: str | None = None,
                  since: float | None = None, until: float | None = None, limit: int = 50,
                  offset: int = 0) -> list[FlowRun]:
        query = self._run_filters(select(RUNS), state, flow, trigger, since, until)
        query = query.order_by(RUNS.c.created_at.desc()).limit(limit).offset(offset)
        with self.read() as conn:
            return [_row(FlowRun, r._mapping) for r in conn.execute(query)]

    def count_runs(self, *, state: str | None = None, flow: str | None = None, trigger: str | None = None,
                   since: float | None = None, until: float | None = None) -> int:
        query = self._run_filters(select(func.count()).select_from(RUNS), state, flow, trigger, since, until)
        with self.read() as conn:
            return conn.execute(query).scalar_one()

    def flow_names(self) -> list[str]:
        with self.read() as conn:
            return list(conn.execute(select(RUNS.c.flow_name).distinct()).scalars())

    def claim_run(self, worker_id: str, now: float, events_for: Any) -> FlowRun | None:
        """Take the oldest queued (or crashed) run for this worker; `events_for(run)` builds its audit events."""
        query = (select(RUNS).where(RUNS.c.state.in_(CLAIMABLE))
                 .where(or_(RUNS.c.wake_at.is_(None), RUNS.c.wake_at <= now))
                 .order_by(RUNS.c.created_at).limit(1))
        if not self.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        with self.write() as conn:
            found = conn.execute(query).first()
            if found is None:
                return None
            run = _row(FlowRun, found._mapping)
            conn.execute(update(RUNS).where(RUNS.c.id == run.id).values(
                state="RUNNING", worker_id=worker_id, heartbeat_at=now, updated_at=now,
                started_at=run.started_at or now))
            self._append(conn, events_for(run))
        run.state, run.worker_id = "RUNNING", worker_id
        return run

    def has_claimable(self, now: float) -> bool:
        with self.read() as conn:
            return conn.execute(select(RUNS.c.id).where(RUNS.c.state.in_(CLAIMABLE))
                                .where(or_(RUNS.c.wake_at.is_(None), RUNS.c.wake_at <= now))
                                .limit(1)).first() is not None

    def heartbeat(self, run_ids: Sequence[str], worker_id: str, now: float) -> set[str]:
        """Refresh the heartbeat of runs this worker holds; returns those no longer RUNNING here."""
        if not run_ids:
            return set()
        with self.write() as conn:
            conn.execute(update(RUNS).where(RUNS.c.id.in_(list(run_ids)), RUNS.c.state == "RUNNING",
                                            RUNS.c.worker_id == worker_id).values(heartbeat_at=now))
            alive = set(conn.execute(select(RUNS.c.id).where(
                RUNS.c.id.in_(list(run_ids)), RUNS.c.state == "RUNNING", RUNS.c.worker_id == worker_id)).scalars())
        return set(run_ids) - alive

    def stale_runs(self, stale_before: float) -> list[FlowRun]:
        with self.read() as conn:
            rows = conn.execute(select(RUNS).where(RUNS.c.state == "RUNNING",
                                                   or_(RUNS.c.heartbeat_at.is_(None),
                                                       RUNS.c.heartbeat_at < stale_before)))
            return [_row(FlowRun, r._mapping) for r in rows]

    def mark_crashed(self, run: FlowRun, stale_before: float, events: Sequence[Event]) -> bool:
        with self.write() as conn:
            changed = conn.execute(update(RUNS).where(
                RUNS.c.id == run.id, RUNS.c.state == "RUNNING",
                or_(RUNS.c.heartbeat_at.is_(None), RUNS.c.heartbeat_at < stale_before),
            ).values(state="CRASHED", worker_id=None, updated_at=time.time(),
                     state_message="worker stopped heartbeating")).rowcount
            if changed:
                conn.execute(update(STEPS).where(STEPS.c.run_id == run.id, STEPS.c.state == "RUNNING")
                             .values(state="CRASHED"))
                self._append(conn, events)
        return bool(changed)

    def delete_run(self, run_id: str) -> None:
        """Remove a run that never started (a failed enqueue); its ledger events stay."""
        with self.write() as conn:
            conn.execute(delete(RUNS).where(RUNS.c.id == run_id))

    # -- steps, logs and cache ---------------------------------------------------------------------

    def steps_for_run(self, run_id: str) -> list[StepRun]:
        with self.read() as conn:
            rows = conn.execute(select(STEPS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.step_no))
            return [_row(StepRun, r._mapping) for r in rows]

    def record_step(self, values: dict[str, Any], events: Sequence[Event], *, exists: bool,
                    logs: Sequence[dict[str, Any]] = ()) -> None:
        """Insert or update the step row, with its audit events and buffered log lines, atomically."""
        if self.is_sqlite and not exists:
            self._record_step_sqlite(values, events, logs)
            return
        with self.write() as conn:
            if exists:
                conn.execute(update(STEPS).where(STEPS.c.run_id == values["run_id"],
                                                 STEPS.c.step_no == values["step_no"]).values(**values))
            else:
                conn.execute(insert(STEPS), values)
            if logs:
                conn.execute(insert(LOGS), list(logs))
            self._append(conn, events)

    def _record_step_sqlite(self, values: dict[str, Any], events: Sequence[Event],
                            logs: Sequence[dict[str, Any]]) -> None:
        """The same statements as record_step, on a plain sqlite3 connection: SQLAlchemy's per-statement
        overhead was most of a durable step's cost."""
        assert self._write_lock is not None
        values = {"tokens": 0, "cost": 0.0, **values}
        with self._write_lock:
            raw = self._sqlite_writer()
            raw.execute("BEGIN IMMEDIATE")
            try:
                columns = ", ".join(values)
                raw.execute(f"INSERT INTO step_runs ({columns}) VALUES ({', '.join(':' + c for c in values)})",
                            values)
                if logs:
                    raw.executemany("INSERT INTO log_lines (run_id, step_no, ts, level, message) "
                                    "VALUES (:run_id, :step_no, :ts, :level, :message)", logs)
                if events:
                    last = raw.execute("SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
                    raw.executemany(_LEDGER_INSERT, ledger.chain(last[0] if last else GENESIS, events))
                raw.execute("COMMIT")
            except BaseException:
                raw.execute("ROLLBACK")
                raise

    def add_logs(self, logs: Sequence[dict[str, Any]]) -> None:
        if logs:
            with self.write() as conn:
                conn.execute(insert(LOGS), list(logs))

    def logs_for_run(self, run_id: str, limit: int = 5000) -> list[LogLine]:
        with self.read() as conn:
            rows = conn.execute(select(LOGS).where(LOGS.c.run_id == run_id).order_by(LOGS.c.id).limit(limit))
            return [_row(LogLine, r._mapping) for r in rows]

    def cache_get(self, key: str, now: float) -> str | None:
        with self.read() as conn:
            found = conn.execute(select(CACHE.c.value, CACHE.c.expires_at).where(CACHE.c.key == key)).first()
        if found is None or (found.expires_at is not None and found.expires_at <= now):
            return None
        return found.value

    def cache_put(self, key: str, value: str, now: float, expires_at: float | None) -> None:
        with self.write() as conn:
            conn.execute(delete(CACHE).where(CACHE.c.key == key))
            conn.execute(insert(CACHE), {"key": key, "value": value, "created_at": now, "expires_at": expires_at})

    # -- approvals ---------------------------------------------------------------------------------

    def create_approval(self, values: dict[str, Any], events: Sequence[Event]) -> None:
        with self.write() as conn:
            conn.execute(insert(APPROVALS), values)
            self._append(conn, events)

    def open_approval(self, approval: dict[str, Any], step: dict[str, Any], *, step_exists: bool,
                      events: Sequence[Event]) -> None:
        """Store an approval request, its step (AWAITING_APPROVAL) and the run's pause, atomically."""
        with self.write() as conn:
            conn.execute(insert(APPROVALS), approval)
            if step_exists:
                conn.execute(update(STEPS).where(STEPS.c.run_id == step["run_id"],
                                                 STEPS.c.step_no == step["step_no"]).values(**step))
            else:
                conn.execute(insert(STEPS), step)
            conn.execute(update(RUNS).where(RUNS.c.id == step["run_id"])
                         .values(state="AWAITING_APPROVAL", worker_id=None, heartbeat_at=None,
                                 updated_at=time.time(), state_message=f"awaiting approval {approval['id']}"))
            self._append(conn, events)

    def get_approval(self, approval_id: str) -> Approval | None:
        with self.read() as conn:
            found = conn.execute(select(APPROVALS).where(APPROVALS.c.id == approval_id)).first()
        return _row(Approval, found._mapping) if found else None

    def approval_for_step(self, run_id: str, step_no: int) -> Approval | None:
        with self.read() as conn:
            found = conn.execute(select(APPROVALS).where(APPROVALS.c.run_id == run_id,
                                                         APPROVALS.c.step_no == step_no)).first()
        return _row(Approval, found._mapping) if found else None

    def list_approvals(self, *, status: str | None = "pending", run_id: str | None = None,
                       limit: int = 200) -> list[Approval]:
        query = select(APPROVALS)
        if status:
            query = query.where(APPROVALS.c.status == status)
        if run_id:
            query = query.where(APPROVALS.c.run_id == run_id)
        with self.read() as conn:
            rows = conn.execute(query.order_by(APPROVALS.c.created_at.desc()).limit(limit))
            return [_row(Approval, r._mapping) for r in rows]

    def votes_for(self, approval_id: str) -> list[ApprovalVote]:
        with self.read() as conn:
            rows = conn.execute(select(VOTES).where(VOTES.c.approval_id == approval_id).order_by(VOTES.c.id))
            return [_row(ApprovalVote, r._mapping) for r in rows]

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
            pending = conn.execute(select(APPROVALS.c.id).where(
                APPROVALS.c.id == vote["approval_id"], APPROVALS.c.status == "pending",
                APPROVALS.c.args_digest == vote["args_digest"])).first()
            if pending is None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(insert(VOTES), vote)
            except IntegrityError:
                return False
            if final is not None:
                conn.execute(update(APPROVALS).where(APPROVALS.c.id == vote["approval_id"]).values(**final))
                if resume_run:
                    conn.execute(update(RUNS).where(RUNS.c.id == resume_run,
                                                    RUNS.c.state == "AWAITING_APPROVAL")
                                 .values(state="PENDING", updated_at=time.time(), worker_id=None))
            self._append(conn, [*events, *run_events])
        return True

    def expire_approvals(self, now: float, events_for: Any) -> list[Approval]:
        """Close pending approvals past their expiry (fail closed) and make their runs resumable."""
        with self.write() as conn:
            rows = conn.execute(select(APPROVALS).where(APPROVALS.c.status == "pending",
                                                        APPROVALS.c.expires_at.is_not(None),
                                                        APPROVALS.c.expires_at <= now)).all()
            expired = [_row(Approval, r._mapping) for r in rows]
            for appr in expired:
                conn.execute(update(APPROVALS).where(APPROVALS.c.id == appr.id)
                             .values(status="expired", decided_at=now, decided_by="system:expiry"))
                if appr.run_id:
                    conn.execute(update(RUNS).where(RUNS.c.id == appr.run_id,
                                                    RUNS.c.state == "AWAITING_APPROVAL")
                                 .values(state="PENDING", updated_at=now, worker_id=None))
                self._append(conn, events_for(appr))
        return expired

    # -- users -------------------------------------------------------------------------------------

    def add_user(self, values: dict[str, Any], events: Sequence[Event]) -> bool:
        with self.write() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(insert(USERS), values)
            except IntegrityError:
                return False
            self._append(conn, events)
        return True

    def set_user(self, name: str, values: dict[str, Any], events: Sequence[Event]) -> None:
        with self.write() as conn:
            conn.execute(update(USERS).where(USERS.c.name == name).values(**values))
            self._append(conn, events)

    def get_user(self, name: str) -> User | None:
        with self.read() as conn:
            found = conn.execute(select(USERS).where(USERS.c.name == name)).first()
        return _row(User, found._mapping) if found else None

    def list_users(self) -> list[User]:
        with self.read() as conn:
            return [_row(User, r._mapping) for r in conn.execute(select(USERS).order_by(USERS.c.name))]

    # -- schedules and leases ----------------------------------------------------------------------

    def add_schedule(self, values: dict[str, Any], events: Sequence[Event]) -> int:
        with self.write() as conn:
            schedule_id = conn.execute(insert(SCHEDULES).returning(SCHEDULES.c.id), values).scalar_one()
            for ev in events:
                ev.payload["schedule_id"] = schedule_id
            self._append(conn, events)
        return schedule_id

    def get_schedule(self, schedule_id: int) -> Schedule | None:
        with self.read() as conn:
            found = conn.execute(select(SCHEDULES).where(SCHEDULES.c.id == schedule_id)).first()
        return _row(Schedule, found._mapping) if found else None

    def list_schedules(self) -> list[Schedule]:
        with self.read() as conn:
            return [_row(Schedule, r._mapping) for r in conn.execute(select(SCHEDULES).order_by(SCHEDULES.c.id))]

    def update_schedule(self, schedule_id: int, values: dict[str, Any], events: Sequence[Event]) -> bool:
        with self.write() as conn:
            changed = conn.execute(update(SCHEDULES).where(SCHEDULES.c.id == schedule_id).values(**values)).rowcount
            if changed:
                self._append(conn, events)
        return bool(changed)

    def delete_schedule(self, schedule_id: int, events: Sequence[Event]) -> bool:
        with self.write() as conn:
            changed = conn.execute(delete(SCHEDULES).where(SCHEDULES.c.id == schedule_id)).rowcount
            if changed:
                self._append(conn, events)
        return bool(changed)

    def due_schedules(self, now: float, limit: int = 1000) -> list[Schedule]:
        with self.read() as conn:
            rows = conn.execute(select(SCHEDULES).where(SCHEDULES.c.paused.is_(False),
                                                        SCHEDULES.c.next_fire_at <= now)
                                .order_by(SCHEDULES.c.next_fire_at).limit(limit))
            return [_row(Schedule, r._mapping) for r in rows]

    def next_schedule_fire(self) -> float | None:
        with self.read() as conn:
            return conn.execute(select(func.min(SCHEDULES.c.next_fire_at))
                                .where(SCHEDULES.c.paused.is_(False))).scalar()

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
                select(SCHEDULES.c.id, SCHEDULES.c.next_fire_at)
                .where(SCHEDULES.c.id.in_([f.schedule_id for f in fires])).with_for_update()).all())
            ready = [f for f in fires if current.get(f.schedule_id) == f.expected_next]
            try:
                with conn.begin_nested():
                    self._fire(conn, ready, now)
            except IntegrityError:
                ready = [f for f in ready if self._fire_alone(conn, f, now)]
            self._append(conn, [ev for f in ready for ev in f.events])
        return [f.schedule_id for f in ready]

    def _fire(self, conn: Connection, fires: Sequence[ScheduleFire], now: float) -> None:
        if not fires:
            return
        conn.execute(update(SCHEDULES).where(SCHEDULES.c.id == bindparam("fired_id"))
                     .values(next_fire_at=bindparam("fired_next"), last_fire_at=now),
                     [{"fired_id": f.schedule_id, "fired_next": f.next_fire_at} for f in fires])
        runs = [run for f in fires for run in f.runs]
        if runs:
            conn.execute(insert(RUNS), runs)

    def _fire_alone(self, conn: Connection, fire: ScheduleFire, now: float) -> bool:
        """One fire in its own savepoint. When one of its runs already exists, only advance the schedule."""
        try:
            with conn.begin_nested():
                self._fire(conn, [fire], now)
        except IntegrityError:
            self._fire(conn, [replace(fire, runs=[])], now)
            return False
        return True

    def runs_for_schedule(self, schedule_id: int, limit: int = 5) -> list[FlowRun]:
        with self.read() as conn:
            rows = conn.execute(select(RUNS).where(RUNS.c.schedule_id == schedule_id)
                                .order_by(RUNS.c.created_at.desc()).limit(limit))
            return [_row(FlowRun, r._mapping) for r in rows]

    def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew a named lease; True while `holder` holds it."""
        with self.write() as conn:
            found = conn.execute(select(LEASES).where(LEASES.c.name == name)).first()
            if found is None:
                conn.execute(insert(LEASES), {"name": name, "holder": holder, "expires_at": now + ttl})
                return True
            if found.holder != holder and found.expires_at > now:
                return False
            conn.execute(update(LEASES).where(LEASES.c.name == name)
                         .values(holder=holder, expires_at=now + ttl))
            return True

    def lease_holder(self, name: str, now: float) -> str | None:
        with self.read() as conn:
            return conn.execute(select(LEASES.c.holder).where(LEASES.c.name == name,
                                                              LEASES.c.expires_at > now)).scalar()

    def release_lease(self, name: str, holder: str) -> None:
        with self.write() as conn:
            conn.execute(delete(LEASES).where(LEASES.c.name == name, LEASES.c.holder == holder))

    # -- policy rate windows -----------------------------------------------------------------------

    def count_rate(self, key: str, since: float) -> int:
        with self.read() as conn:
            return conn.execute(select(func.count()).select_from(RATES)
                                .where(RATES.c.key == key, RATES.c.ts >= since)).scalar_one()

    def add_rate(self, key: str, ts: float) -> None:
        with self.write() as conn:
            conn.execute(insert(RATES), {"key": key, "ts": ts})

    # -- embedded tool backends --------------------------------------------------------------------

    def _insert_once(self, table: Any, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Insert keyed by idempotency_key; a repeat returns the first row and created=False."""
        with self.write() as conn:
            found = conn.execute(select(table).where(table.c.idempotency_key == values["idempotency_key"])).first()
            if found is not None:
                return dict(found._mapping), False
            row_id = conn.execute(insert(table).returning(table.c.id), values).scalar_one()
            return {**values, "id": row_id}, True

    def outbox_add(self, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return self._insert_once(OUTBOX, values)

    def outbox_list(self, limit: int = 200) -> list[OutboxEmail]:
        with self.read() as conn:
            rows = conn.execute(select(OUTBOX).order_by(OUTBOX.c.id.desc()).limit(limit))
            return [_row(OutboxEmail, r._mapping) for r in rows]

    def ticket_create(self, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return self._insert_once(TICKETS, values)

    def ticket_update(self, ticket_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
        with self.write() as conn:
            if not conn.execute(update(TICKETS).where(TICKETS.c.id == ticket_id).values(**values)).rowcount:
                return None
            return dict(conn.execute(select(TICKETS).where(TICKETS.c.id == ticket_id)).one()._mapping)

    def tickets_list(self, status: str | None = None, limit: int = 200) -> list[Ticket]:
        query = select(TICKETS)
        if status:
            query = query.where(TICKETS.c.status == status)
        with self.read() as conn:
            return [_row(Ticket, r._mapping) for r in conn.execute(query.order_by(TICKETS.c.id.desc()).limit(limit))]

    def deployments(self) -> list[Deployment]:
        with self.read() as conn:
            rows = conn.execute(select(DEPLOYMENTS).order_by(DEPLOYMENTS.c.name))
            return [_row(Deployment, r._mapping) for r in rows]

    def deployment(self, name: str) -> Deployment | None:
        with self.read() as conn:
            found = conn.execute(select(DEPLOYMENTS).where(DEPLOYMENTS.c.name == name)).first()
        return _row(Deployment, found._mapping) if found else None

    def upsert_deployment(self, values: dict[str, Any]) -> None:
        with self.write() as conn:
            changed = conn.execute(update(DEPLOYMENTS).where(DEPLOYMENTS.c.name == values["name"])
                                   .values(**values)).rowcount
            if not changed:
                conn.execute(insert(DEPLOYMENTS), values)

    def seed_deployments(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert deployments that do not exist yet; returns how many were added."""
        added = 0
        with self.write() as conn:
            existing = set(conn.execute(select(DEPLOYMENTS.c.name)).scalars())
            fresh = [r for r in rows if r["name"] not in existing]
            if fresh:
                conn.execute(insert(DEPLOYMENTS), fresh)
                added = len(fresh)
        return added

    def scale(self, values: dict[str, Any], metrics: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record a scale action once per idempotency key and apply it to the simulated cluster."""
        with self.write() as conn:
            found = conn.execute(select(SCALES).where(SCALES.c.idempotency_key == values["idempotency_key"])).first()
            if found is not None:
                return dict(found._mapping), False
            conn.execute(update(DEPLOYMENTS).where(DEPLOYMENTS.c.name == values["deployment"])
                         .values(replicas=values["to_replicas"], **metrics))
            row_id = conn.execute(insert(SCALES).returning(SCALES.c.id), values).scalar_one()
            return {**values, "id": row_id}, True

    def scale_event(self, idempotency_key: str) -> ScaleEvent | None:
        with self.read() as conn:
            found = conn.execute(select(SCALES).where(SCALES.c.idempotency_key == idempotency_key)).first()
        return _row(ScaleEvent, found._mapping) if found else None

    def scale_events(self, limit: int = 200) -> list[ScaleEvent]:
        with self.read() as conn:
            return [_row(ScaleEvent, r._mapping)
                    for r in conn.execute(select(SCALES).order_by(SCALES.c.id.desc()).limit(limit))]

    def add_metric_samples(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            with self.write() as conn:
                conn.execute(insert(METRICS), list(rows))

    def metric_samples(self, deployment: str, since: float | None = None) -> list[MetricSample]:
        query = select(METRICS).where(METRICS.c.deployment == deployment)
        if since is not None:
            query = query.where(METRICS.c.ts >= since)
        with self.read() as conn:
            return [_row(MetricSample, r._mapping) for r in conn.execute(query.order_by(METRICS.c.ts))]

    def count_metric_samples(self) -> int:
        with self.read() as conn:
            return conn.execute(select(func.count()).select_from(METRICS)).scalar_one()

    # -- chat --------------------------------------------------------------------------------------

    def add_chat_message(self, values: dict[str, Any], events: Sequence[Event] = ()) -> None:
        with self.write() as conn:
            conn.execute(insert(CHAT), values)
            self._append(conn, events)

    def chat_messages(self, conversation_id: str) -> list[ChatMessage]:
        with self.read() as conn:
            rows = conn.execute(select(CHAT).where(CHAT.c.conversation_id == conversation_id).order_by(CHAT.c.id))
            return [_row(ChatMessage, r._mapping) for r in rows]

    # -- schema ------------------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        try:
            with self.read() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            return None


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
