"""agentops' own metrics, counted from the tables at scrape time (right whichever process did the work)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.db.ledger import LedgerSQL

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")


@dataclass
class Histogram:
    """Cumulative counts per upper bound (seconds), the total count and the sum, for one label set."""

    labels: tuple[str, ...]
    buckets: list[tuple[float, int]]
    count: int
    total: float


@dataclass
class MetricsSnapshot:
    runs: list[tuple[str, str, int]] = field(default_factory=list)
    """(flow, state, runs)"""
    steps: list[tuple[str, str, int]] = field(default_factory=list)
    """(kind, state, steps)"""
    step_durations: list[Histogram] = field(default_factory=list)
    """labels: (kind,)"""
    approvals_waiting: list[tuple[str, int]] = field(default_factory=list)
    """(action, pending approvals)"""
    decision_latency: list[Histogram] = field(default_factory=list)
    """labels: (status,): created → decided"""
    verdicts: list[tuple[str, str, int]] = field(default_factory=list)
    """(rule, verdict, policy steps)"""
    tool_calls: list[tuple[str, int, int]] = field(default_factory=list)
    """(tool, calls, errors)"""
    models: list[tuple[str, int, int, float]] = field(default_factory=list)
    """(model, calls, tokens, cost in USD)"""
    queue_depth: int = 0
    schedules_due: int = 0
    scheduler_lag: float = 0.0
    workers: list[tuple[str, int, float]] = field(default_factory=list)
    """(worker id, running runs, seconds since its last heartbeat, by the database's clock)"""


class MetricsSQL(LedgerSQL):
    def _json_text(self, column: Any, *path: str) -> Any:
        """The text at `path` in a JSON text column, on SQLite and PostgreSQL alike."""
        if self.is_sqlite:
            return sa.func.json_extract(column, "$." + ".".join(path))
        return sa.func.json_extract_path_text(sa.cast(column, sa.JSON), *path)

    def _histograms(self, conn: Any, table: Any, seconds: Any, label: Any, where: Any,
                    bounds: Sequence[float]) -> list[Histogram]:
        """One statement: per label, how many rows have `seconds` <= each bound, their count and sum."""
        columns = [sa.func.sum(sa.case((seconds <= b, 1), else_=0)) for b in bounds]
        rows = conn.execute(sa.select(label, sa.func.count(), sa.func.coalesce(sa.func.sum(seconds), 0.0), *columns)
                            .select_from(table).where(where).group_by(label)).all()
        return [Histogram((str(r[0]),), [(b, int(c or 0)) for b, c in zip(bounds, r[3:], strict=True)],
                          int(r[1]), float(r[2])) for r in rows]

    def metrics_snapshot(self, *, step_bounds: Sequence[float], decision_bounds: Sequence[float]) -> MetricsSnapshot:
        runs, steps, approvals = schema.RUNS, schema.STEPS, schema.APPROVALS
        snap = MetricsSnapshot()
        with self.read() as conn:
            snap.runs = [(r[0], r[1], int(r[2])) for r in conn.execute(
                sa.select(runs.c.flow_name, runs.c.state, sa.func.count()).group_by(runs.c.flow_name, runs.c.state))]
            snap.steps = [(r[0], r[1], int(r[2])) for r in conn.execute(
                sa.select(steps.c.kind, steps.c.state, sa.func.count()).group_by(steps.c.kind, steps.c.state))]
            snap.step_durations = self._histograms(conn, steps, steps.c.duration_ms / 1000.0, steps.c.kind,
                                                   steps.c.duration_ms.is_not(None), step_bounds)
            snap.approvals_waiting = [(r[0], int(r[1])) for r in conn.execute(
                sa.select(approvals.c.action, sa.func.count()).where(approvals.c.status == "pending")
                .group_by(approvals.c.action))]
            snap.decision_latency = self._histograms(conn, approvals, approvals.c.decided_at - approvals.c.created_at,
                                                     approvals.c.status, approvals.c.decided_at.is_not(None),
                                                     decision_bounds)
            rule = sa.func.coalesce(self._json_text(steps.c.meta, "verdict", "rule"), "")
            verdict = sa.func.coalesce(self._json_text(steps.c.meta, "verdict", "verdict"), "")
            snap.verdicts = [(r[0], r[1], int(r[2])) for r in conn.execute(
                sa.select(rule, verdict, sa.func.count()).where(steps.c.kind == "policy", steps.c.meta.is_not(None))
                .group_by(rule, verdict))]
            tool = sa.func.coalesce(self._json_text(steps.c.meta, "tool"), steps.c.name)
            failed = sa.or_(steps.c.state == "FAILED", self._json_text(steps.c.meta, "status") == "error")
            snap.tool_calls = [(r[0], int(r[1]), int(r[2] or 0)) for r in conn.execute(
                sa.select(tool, sa.func.count(), sa.func.sum(sa.case((failed, 1), else_=0)))
                .where(steps.c.kind == "tool", steps.c.state.in_(("COMPLETED", "FAILED"))).group_by(tool))]
            model = sa.func.coalesce(self._json_text(steps.c.meta, "model"), "")
            snap.models = [(r[0], int(r[1]), int(r[2] or 0), float(r[3] or 0.0)) for r in conn.execute(
                sa.select(model, sa.func.count(), sa.func.sum(steps.c.tokens), sa.func.sum(steps.c.cost))
                .where(steps.c.kind == "model", steps.c.state.in_(("COMPLETED", "FAILED"))).group_by(model))]
            snap.queue_depth = conn.execute(sa.select(sa.func.count()).select_from(runs)
                                            .where(runs.c.state == "PENDING")).scalar_one()
            now = self._db_now(conn)
            schedules = schema.SCHEDULES
            due = conn.execute(sa.select(sa.func.count(), sa.func.min(schedules.c.next_fire_at))
                               .where(schedules.c.paused.is_(False), schedules.c.next_fire_at <= now)).one()
            snap.schedules_due = int(due[0])
            snap.scheduler_lag = max(0.0, now - due[1]) if due[1] is not None else 0.0
            snap.workers = [(r[0], int(r[1]), max(0.0, now - float(r[2]))) for r in conn.execute(
                sa.select(runs.c.worker_id, sa.func.count(), sa.func.max(runs.c.heartbeat_at))
                .where(runs.c.state == "RUNNING", runs.c.worker_id.is_not(None), runs.c.heartbeat_at.is_not(None))
                .group_by(runs.c.worker_id))]
        return snap

    def _db_now(self, conn: Any) -> float:
        """The clock heartbeats are written by: this machine's on SQLite, the server's on PostgreSQL."""
        if self.is_sqlite:
            return time.time()
        return float(conn.execute(sa.text(f"SELECT {self.now_sql}")).scalar_one())
