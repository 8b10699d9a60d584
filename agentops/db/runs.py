"""The engine's statements: runs, claims, heartbeats, steps, logs and the task cache."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event
from agentops.db.records import LogRecord, RunRecord, StepRecord, column_names

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")
from agentops.db.ledger import LedgerSQL
from agentops.db.sql import SqlText, as_row, in_list, insert_sql, update_sql, with_defaults

CLAIMABLE = ("PENDING", "CRASHED")
_LOG_INSERT = ("INSERT INTO log_lines (run_id, step_no, ts, level, message) "
               "VALUES (:run_id, :step_no, :ts, :level, :message)")

RUN_COLUMNS = ", ".join(column_names(RunRecord))
STEP_COLUMNS = ", ".join(column_names(StepRecord))
LOG_COLUMNS = ", ".join(column_names(LogRecord))


class RunsSQL(LedgerSQL):
    def create_run(self, values: dict[str, Any], events: Sequence[Event]) -> None:
        self.create_runs([values], events)

    def create_runs(self, rows: Sequence[dict[str, Any]], events: Sequence[Event]) -> None:
        """Insert runs and their events in one transaction (an import, a backfill)."""
        complete = [with_defaults(RunRecord, row) for row in rows]
        with self._write_sql() as tx:
            if complete:
                tx.execute_many(insert_sql("flow_runs", complete[0]), complete)
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
        sql = update_sql("flow_runs", values, "id = :where_id")
        params = {**values, "where_id": run_id}
        if expect is not None:
            expect = list(expect)
            if not expect:
                return False
            expected, expected_params = in_list("expect_", expect)
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
            return [as_row(RunRecord, r._mapping) for r in conn.execute(query)]

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
            run = as_row(RunRecord, found._mapping)
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
        ids, params = in_list("run_", list(run_ids))
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
            return [as_row(RunRecord, r._mapping) for r in rows]

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
            tx.execute(update_sql("step_runs", changed, "run_id = :run_id AND step_no = :step_no"), values)
        else:
            row = with_defaults(StepRecord, values)
            tx.execute(insert_sql("step_runs", row), row)

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
            tx.execute(insert_sql("task_cache", ("key", "value", "created_at", "expires_at")),
                       {"key": key, "value": value, "created_at": now, "expires_at": expires_at})
