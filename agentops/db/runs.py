"""The engine's statements: runs, claims, heartbeats, steps, logs and the task cache.

Fencing: a claim increments the run's epoch, and the execution holding that epoch passes it to every write it
makes (steps, logs, heartbeats, its final state). Each such statement carries the check in its own WHERE (on
PostgreSQL with a share lock on the run row, so it cannot interleave with a claim), and a write whose epoch is
stale changes nothing and raises LeaseLost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event
from agentops.core.states import CLAIMABLE, State
from agentops.db.records import LogRecord, RunRecord, StepRecord, column_names
from agentops.errors import LeaseLost, RunBusy

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")
from agentops.db.ledger import HEAD_CHECK, LedgerSQL, append_ctes, ledger_error
from agentops.db.sql import (
    PsycopgText,
    SqlText,
    as_row,
    in_list,
    insert_sql,
    insert_where_sql,
    update_sql,
    with_defaults,
)

_LOG_COLUMNS = ("run_id", "step_no", "ts", "level", "message", "line_key")
_KEPT_ONCE = " ON CONFLICT DO NOTHING"
"""A line whose (run, line_key) is stored already (logged again by a replay) is not inserted twice."""
_LOG_INSERT = insert_sql("log_lines", _LOG_COLUMNS) + _KEPT_ONCE
_CLAIMABLE = "(" + ", ".join(f"'{state}'" for state in sorted(CLAIMABLE)) + ")"
"""The claimable states as literals, so the planner can use the partial index ix_flow_runs_claimable (a
parameter could be anything, so a prepared statement's generic plan could not)."""

RUN_COLUMNS = ", ".join(column_names(RunRecord))
STEP_COLUMNS = ", ".join(column_names(StepRecord))
LOG_COLUMNS = ", ".join(column_names(LogRecord))


MAX_UNSTARTED_NOTED = 10_000
"""At most this many claims of never-started runs remembered for steps_of_claim (an execution asks at once)."""


@dataclass(frozen=True)
class QueueFilter:
    """The queues a worker takes runs from; `default` is the one a run without a queue of its own belongs to."""

    names: tuple[str, ...]
    default: str


def _queue_clause(queues: QueueFilter | None) -> tuple[str, dict[str, Any]]:
    """` AND <the run's queue is one of them>` and its parameters; nothing without a filter."""
    if queues is None:
        return "", {}
    names, params = in_list("queue_", list(queues.names))
    return f" AND COALESCE(queue, :default_queue) IN {names}", {**params, "default_queue": queues.default}


class RunsSQL(LedgerSQL):
    def create_run(self, values: dict[str, Any], events: Sequence[Event]) -> None:
        self.create_runs([values], events)

    def create_runs(self, rows: Sequence[dict[str, Any]], events: Sequence[Event]) -> None:
        """Insert runs and their events in one transaction (an import, a backfill)."""
        complete = [with_defaults(RunRecord, row) for row in rows]
        events = self._bind_runs(events, complete)
        sql = insert_sql("flow_runs", complete[0]) if complete else ""
        if complete and not self.is_sqlite:  # a run created claimed heartbeats by the database's clock
            sql = sql.replace(":heartbeat_at", "CASE WHEN CAST(:heartbeat_at AS DOUBLE PRECISION) IS NULL "
                                               f"THEN NULL ELSE {self.now_sql} END")
            if len(complete) == 1:
                self._guarded_write(sql, complete[0], events)
                return
        with self._write_sql() as tx:
            if complete:
                tx.execute_many(sql, complete)
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
        fence: int | None = None,
        revoke: bool = False,
        logs: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """Move a run to `state`, with its events and buffered log lines. False (and nothing written) if the run is
        not there, not in one of `expect` (if given) or, with `fence`, no longer at that epoch. `revoke` takes the
        run from whoever executes it (its epoch moves on, so their next write is refused)."""
        values = {"state": state, "updated_at": time.time(), **(fields or {})}
        sql = update_sql("flow_runs", values, "id = :where_id", also=["epoch = epoch + 1"] if revoke else [])
        params = {**values, "where_id": run_id}
        if fence is not None:
            sql += " AND epoch = :fence"
            params["fence"] = fence
        if expect is not None:
            expect = list(expect)
            if not expect:
                return False
            expected, expected_params = in_list("expect_", expect)
            sql += f" AND state IN {expected}"
            params |= expected_params
        events = self._bind_runs(events, [{"id": run_id, **values}])
        if not self.is_sqlite:
            return self._guarded_write(sql, params, events, logs) == 1
        with self._write_sql() as tx:
            if tx.execute(sql, params) != 1:
                return False
            tx.execute_many(_LOG_INSERT, _log_rows(logs))
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

    def claim_run(self, worker_id: str, events_for: Callable[[RunRecord], Sequence[Event]], *,
                  queues: QueueFilter | None = None) -> RunRecord | None:
        """Take the oldest queued (or crashed) run for this worker, skipping rows another worker is claiming.

        `events_for(run)` builds the claim's audit events from the run as it was. Returns the run as claimed.
        """
        claimed = self.claim_runs(worker_id, events_for, limit=1, queues=queues)
        return claimed[0] if claimed else None

    def claim_runs(self, worker_id: str, events_for: Callable[[RunRecord], Sequence[Event]], *,
                   limit: int, queues: QueueFilter | None = None) -> list[RunRecord]:
        """Take up to `limit` of the oldest queued (or crashed) runs in one transaction, oldest first, skipping rows
        another worker is claiming; each under its next epoch, with its claim's events. With `queues`, only runs
        routed to one of them."""
        now = time.time()
        routed, routed_params = _queue_clause(queues)
        pick = (f"SELECT {RUN_COLUMNS} FROM flow_runs WHERE state IN {_CLAIMABLE} "
                f"AND (wake_at IS NULL OR wake_at <= :now){routed} ORDER BY created_at LIMIT :limit")
        params = {**routed_params, "now": now, "limit": max(1, limit)}
        with self._write_sql() as tx:
            if self.is_sqlite:  # the write lock is held: nobody else is claiming
                return [self._take(tx, RunRecord(**found), worker_id, now, events_for)
                        for found in tx.rows(pick, params)]
            # PostgreSQL: pick and take in one statement; RETURNING gives the rows as they were before the claim.
            found = tx.rows(f"WITH picked AS ({pick} FOR UPDATE SKIP LOCKED) "
                            f"UPDATE flow_runs AS f SET {self._claim_set('f')} FROM picked WHERE f.id = picked.id "
                            f"RETURNING picked.*", {**params, "worker_id": worker_id})
            runs = sorted((RunRecord(**row) for row in found), key=lambda r: (r.created_at, r.id))
            if runs:
                self._chain(tx, [event for run in runs for event in events_for(run)])
            return [self._claimed(run, worker_id, now) for run in runs]

    def claim_run_by_id(self, run_id: str, worker_id: str, states: Iterable[str],
                        events_for: Callable[[RunRecord], Sequence[Event]], *,
                        lock_timeout: float | None = None) -> RunRecord | None:
        """Take this run for this worker if it is in one of `states`, waiting for a concurrent claimer's row lock
        on PostgreSQL (never skipping it: a skipped delivery would be lost); None if it is not there or not in
        those states. Returns the run as claimed. With `lock_timeout`, a wait longer than that raises RunBusy."""
        if self.is_sqlite:
            with self._write_sql() as tx:
                found = tx.first(f"SELECT {RUN_COLUMNS} FROM flow_runs WHERE id = :id", {"id": run_id})
                if found is None or found["state"] not in set(states):
                    return None
                return self._take(tx, RunRecord(**found), worker_id, time.time(), events_for)
        wanted, params = in_list("state_", sorted(set(states)))
        now = time.time()
        setup = f"SET LOCAL lock_timeout = '{max(1, int(lock_timeout * 1000))}ms'" if lock_timeout is not None else ""
        try:
            with self._write_sql(setup=setup) as tx:
                # Lock (waiting), check and take in one statement; RETURNING gives the row as it was.
                found = tx.first(f"WITH old AS (SELECT {RUN_COLUMNS} FROM flow_runs WHERE id = :id FOR UPDATE) "
                                 f"UPDATE flow_runs AS f SET {self._claim_set('f')} FROM old "
                                 f"WHERE f.id = old.id AND old.state IN {wanted} RETURNING old.*",
                                 {**params, "id": run_id, "worker_id": worker_id, "now": now})
                if found is None:
                    return None
                run = RunRecord(**found)
                self._chain(tx, events_for(run))
                return self._claimed(run, worker_id, now)
        except Exception as exc:
            if getattr(getattr(exc, "orig", exc), "sqlstate", None) == "55P03":  # lock_not_available
                raise RunBusy(f"run {run_id} stayed locked for {lock_timeout}s") from None
            raise

    def heartbeat_fresh(self, run_id: str, stale_after: float) -> bool:
        """Whether the run is RUNNING with a heartbeat at most `stale_after` seconds old, by the database's clock."""
        with self._read_sql() as tx:
            return tx.first(f"SELECT 1 AS fresh FROM flow_runs WHERE id = :id AND state = 'RUNNING' "
                            f"AND heartbeat_at >= {self.now_sql} - :stale_after",
                            {"id": run_id, "stale_after": stale_after, "now": time.time()}) is not None

    def runnable_run_ids(self, limit: int = 10_000) -> list[str]:
        """Queued and crashed runs, oldest first: the ones a worker should claim and has not yet."""
        with self._read_sql() as tx:
            rows = tx.rows(f"SELECT id FROM flow_runs WHERE state IN {_CLAIMABLE} ORDER BY created_at LIMIT :limit",
                           {"limit": limit})
        return [row["id"] for row in rows]

    def _take(self, tx: SqlText, run: RunRecord, worker_id: str, now: float,
              events_for: Callable[[RunRecord], Sequence[Event]]) -> RunRecord:
        """The claim itself, on a row the caller has locked: RUNNING here under the next epoch."""
        tx.execute(f"UPDATE flow_runs SET {self._claim_set()} WHERE id = :id",
                   {"worker_id": worker_id, "now": now, "id": run.id})
        self._chain(tx, events_for(run))
        return self._claimed(run, worker_id, now)

    def _claim_set(self, alias: str | None = None) -> str:
        """What a claim sets: RUNNING for `:worker_id` under the next epoch, heartbeat by the database's clock."""
        own = f"{alias}." if alias else ""
        return (f"state = 'RUNNING', epoch = {own}epoch + 1, worker_id = :worker_id, heartbeat_at = {self.now_sql}, "
                f"updated_at = :now, started_at = COALESCE({own}started_at, :now), ended_at = NULL, error = NULL")

    def _claimed(self, run: RunRecord, worker_id: str, now: float) -> RunRecord:
        if run.started_at is None:  # never started, so no step of it is recorded (see steps_of_claim)
            with self._lock:
                self._unstarted.add((run.id, run.epoch + 1))
                while len(self._unstarted) > MAX_UNSTARTED_NOTED:
                    self._unstarted.pop()
        return replace(run, state=State.RUNNING.value, worker_id=worker_id, epoch=run.epoch + 1,
                       started_at=run.started_at or now, ended_at=None, error=None)

    def steps_of_claim(self, run: RunRecord) -> list[StepRecord]:
        """The recorded steps of a run as claimed here: none, without a read, when this store's claim found the run
        never started (a run's start is set by the claim or creation that first executes it, and every step is
        written by an execution)."""
        with self._lock:
            unstarted = (run.id, run.epoch) in self._unstarted
            self._unstarted.discard((run.id, run.epoch))
        return [] if unstarted else self.steps_for_run(run.id)

    def has_claimable(self, now: float, queues: QueueFilter | None = None) -> bool:
        routed, routed_params = _queue_clause(queues)
        with self._read_sql() as tx:
            return tx.first(f"SELECT id FROM flow_runs WHERE state IN {_CLAIMABLE} "
                            f"AND (wake_at IS NULL OR wake_at <= :now){routed} LIMIT 1",
                            {**routed_params, "now": now}) is not None

    def run_queues(self, run_ids: Sequence[str]) -> dict[str, str | None]:
        """Each run's queue (None: the default queue); runs that are not there are left out."""
        if not run_ids:
            return {}
        ids, params = in_list("run_", list(run_ids))
        with self._read_sql() as tx:
            return {row["id"]: row["queue"] for row in tx.rows(f"SELECT id, queue FROM flow_runs WHERE id IN {ids}",
                                                               params)}

    def holds_lease(self, run_id: str, epoch: int) -> bool:
        """Whether the run is still at `epoch` (the caller's execution still holds it)."""
        with self._read_sql() as tx:
            return tx.first("SELECT 1 AS held FROM flow_runs WHERE id = :id AND epoch = :epoch",
                            {"id": run_id, "epoch": epoch}) is not None

    def heartbeat(self, leases: Mapping[str, int]) -> set[str]:
        """Refresh the heartbeat (by the database's clock) of runs still RUNNING under the epoch the caller holds
        (run id -> epoch); returns the ids whose lease is gone."""
        if not leases:
            return set()
        held = []
        params: dict[str, Any] = {"now": time.time()}
        for i, (run_id, epoch) in enumerate(leases.items()):
            held.append(f"(id = :run_{i} AND epoch = :epoch_{i})")
            params |= {f"run_{i}": run_id, f"epoch_{i}": epoch}
        with self._write_sql() as tx:
            alive = {row["id"] for row in tx.rows(
                f"UPDATE flow_runs SET heartbeat_at = {self.now_sql} WHERE state = 'RUNNING' "
                f"AND ({' OR '.join(held)}) RETURNING id", params)}
        return set(leases) - alive

    def _stale(self) -> str:
        return f"state = 'RUNNING' AND (heartbeat_at IS NULL OR heartbeat_at < {self.now_sql} - :stale_after)"

    def stale_runs(self, stale_after: float) -> list[RunRecord]:
        """Running runs whose last heartbeat is more than `stale_after` seconds old by the database's clock."""
        with self._read_sql() as tx:
            rows = tx.rows(f"SELECT {RUN_COLUMNS} FROM flow_runs WHERE {self._stale()}",
                           {"stale_after": stale_after, "now": time.time()})
        return [RunRecord(**row) for row in rows]

    def mark_crashed(self, run: RunRecord, stale_after: float, events: Sequence[Event]) -> bool:
        """Mark a run CRASHED if it is still stale under the epoch seen; its epoch moves on, so the stalled
        execution can write nothing more even before another worker claims the run."""
        with self._write_sql() as tx:
            changed = tx.execute(
                f"UPDATE flow_runs SET state = 'CRASHED', epoch = epoch + 1, worker_id = NULL, updated_at = :now, "
                f"state_message = 'worker stopped heartbeating' WHERE id = :id AND epoch = :epoch AND {self._stale()}",
                {"id": run.id, "epoch": run.epoch, "stale_after": stale_after, "now": time.time()})
            if changed:
                tx.execute("UPDATE step_runs SET state = 'CRASHED' WHERE run_id = :id AND state = 'RUNNING'",
                           {"id": run.id})
                self._chain(tx, events)
        return bool(changed)

    def delete_run(self, run_id: str) -> None:
        """Remove a run that never started (a failed enqueue); its ledger events stay, and one more says so."""
        with self.write() as conn:
            conn.execute(sa.delete(schema.RUNS).where(schema.RUNS.c.id == run_id))
            self._append(conn, [Event("system:store", "run.deleted", run_id=run_id,
                                      payload={"reason": "the run never started"})])

    def steps_for_run(self, run_id: str) -> list[StepRecord]:
        with self._read_sql() as tx:
            rows = tx.rows(f"SELECT {STEP_COLUMNS} FROM step_runs WHERE run_id = :run_id ORDER BY step_no",
                           {"run_id": run_id})
        return [StepRecord(**row) for row in rows]

    def governed_step_meta(self, run_ids: Sequence[str]) -> list[tuple[str, str, str]]:
        """(run_id, kind, meta) of the completed policy and approval steps of these runs, in step order."""
        if not run_ids:
            return []
        ids, params = in_list("run_", list(run_ids))
        with self._read_sql() as tx:
            rows = tx.rows(f"SELECT run_id, kind, meta FROM step_runs WHERE run_id IN {ids} "
                           "AND kind IN ('policy', 'approval') AND state = 'COMPLETED' AND meta IS NOT NULL "
                           "ORDER BY run_id, step_no", params)
        return [(row["run_id"], row["kind"], row["meta"]) for row in rows]

    @property
    def _fence(self) -> str:
        """SQL text that holds while run `:fence_run` is still at epoch `:fence_epoch`: the writer's lease. (The
        run id has a parameter of its own: PostgreSQL types a parameter once, and an INSERT's value is varchar.)"""
        return (f"EXISTS (SELECT 1 FROM flow_runs WHERE id = :fence_run AND epoch = :fence_epoch"
                f"{self.share_lock})")

    def record_step(self, values: dict[str, Any], events: Sequence[Event], *, exists: bool, epoch: int,
                    logs: Sequence[dict[str, Any]] = ()) -> None:
        """Insert or update the step row, with its audit events and buffered log lines, atomically, while the run
        is at `epoch`; otherwise nothing is written and LeaseLost is raised."""
        events = self._bind_step(events, values, exists=exists)
        if not self.is_sqlite:
            sql, params = self._step_statement(values, exists=exists, epoch=epoch)
            if self._guarded_write(sql, params, events, logs) != 1:
                raise LeaseLost(values["run_id"], epoch, f"recording step {values['step_no']}")
            return
        with self._write_sql() as tx:
            self._put_step(tx, values, exists=exists, epoch=epoch)
            tx.execute_many(_LOG_INSERT, _log_rows(logs))
            self._chain(tx, events)

    def _put_step(self, tx: SqlText, values: dict[str, Any], *, exists: bool, epoch: int | None) -> None:
        """Write the step row; with `epoch`, only while the run is at it (else LeaseLost). Without, the caller's
        transaction has checked the lease already."""
        sql, params = self._step_statement(values, exists=exists, epoch=epoch)
        if tx.execute(sql, params) != 1 and epoch is not None:
            raise LeaseLost(values["run_id"], epoch, f"recording step {values['step_no']}")

    def _step_statement(self, values: dict[str, Any], *, exists: bool, epoch: int | None
                        ) -> tuple[str, dict[str, Any]]:
        if exists:
            changed = [c for c in values if c not in ("run_id", "step_no")]
            where = "run_id = :run_id AND step_no = :step_no"
            row = values
            sql = update_sql("step_runs", changed, where if epoch is None else f"{where} AND {self._fence}")
        else:
            row = with_defaults(StepRecord, values)
            sql = insert_sql("step_runs", row) if epoch is None else insert_where_sql("step_runs", row, self._fence)
        return sql, (row if epoch is None else {**row, "fence_run": values["run_id"], "fence_epoch": epoch})

    def _guarded_write(self, body: str, params: dict[str, Any], events: Sequence[Event],
                       logs: Sequence[dict[str, Any]] = ()) -> int:
        """PostgreSQL: one INSERT or UPDATE (`body`), its log lines and its events, as one statement in
        autocommit, so one round trip and one transaction: the lines and events are written only if the body
        changed a row. Returns how many rows the body changed."""
        ctes = [f"body AS ({body} RETURNING 1)"]
        if logs:
            ctes.append(f"lines AS (INSERT INTO log_lines ({', '.join(_LOG_COLUMNS)}) SELECT * FROM unnest("
                        "CAST(:log_run_id AS TEXT[]), CAST(:log_step_no AS INTEGER[]), "
                        "CAST(:log_ts AS DOUBLE PRECISION[]), CAST(:log_level AS TEXT[]), "
                        "CAST(:log_message AS TEXT[]), CAST(:log_line_key AS TEXT[])) "
                        f"WHERE EXISTS (SELECT 1 FROM body){_KEPT_ONCE})")
            params = {**params, **{f"log_{c}": [line[c] for line in _log_rows(logs)] for c in _LOG_COLUMNS}}
        assert self._pg is not None
        with self._tracking_runnable():
            check = "1"
            if events:
                chained, chain_params = append_ctes(events, notify=self._note_states(events), guard="body")
                ctes += chained
                params = {**params, **chain_params}
                check = f"CASE WHEN EXISTS (SELECT 1 FROM body) THEN {HEAD_CHECK} END"
            sql = f"WITH {', '.join(ctes)} SELECT (SELECT count(*) FROM body) AS changed, {check} AS appended"
            try:
                with self._pg.connection() as conn:
                    found = PsycopgText(conn).first(sql, params)
            except Exception as exc:
                error = ledger_error(exc)
                if error is not None:
                    raise error from None
                raise
            changed = int(found["changed"]) if found else 0
            if not changed:
                self._forget_states()
        return changed

    def pause_at_step(self, step: dict[str, Any], events: Sequence[Event], *, epoch: int, message: str) -> None:
        """Store the row of a step that waits (AWAITING_APPROVAL) and pause its run there, freeing its worker,
        atomically, while the run is at `epoch`; otherwise nothing is written and LeaseLost is raised."""
        with self._write_sql() as tx:
            self._pause_at_step(tx, step, epoch=epoch, message=message)
            self._chain(tx, self._bind_step(events, step, exists=False))

    def _pause_at_step(self, tx: SqlText, step: dict[str, Any], *, epoch: int, message: str) -> None:
        paused = tx.execute("UPDATE flow_runs SET state = 'AWAITING_APPROVAL', worker_id = NULL, heartbeat_at = NULL, "
                            "updated_at = :now, state_message = :message WHERE id = :id AND epoch = :epoch",
                            {"now": time.time(), "message": message, "id": step["run_id"], "epoch": epoch})
        if paused != 1:
            raise LeaseLost(step["run_id"], epoch, f"pausing at step {step['step_no']}")
        self._put_step(tx, step, exists=False, epoch=None)

    def add_logs(self, logs: Sequence[dict[str, Any]], *, epoch: int | None = None) -> None:
        """Store log lines; with `epoch`, only those of runs still at that epoch (the others are dropped)."""
        if not logs:
            return
        with self._write_sql() as tx:
            if epoch is None:
                tx.execute_many(_LOG_INSERT, _log_rows(logs))
            else:
                rows = [{**line, "fence_run": line["run_id"], "fence_epoch": epoch} for line in _log_rows(logs)]
                tx.execute_many(insert_where_sql("log_lines", _LOG_COLUMNS, self._fence) + _KEPT_ONCE, rows)

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


def _log_rows(logs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"line_key": None, **line} for line in logs]
