"""The embedded tool backends' statements: outbox (and each mail's delivery), tickets, the simulated cluster and
its metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
    from agentops.db.schema import (
        Deployment,
        MetricSample,
        OutboxEmail,
        ScaleEvent,
        Ticket,
    )
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")
from agentops.db.ledger import LedgerSQL
from agentops.db.sql import as_row

QUEUED, SENDING, DELIVERED, FAILED, UNCERTAIN = "queued", "sending", "delivered", "failed", "uncertain"
OUTBOX_STATES = (QUEUED, SENDING, DELIVERED, FAILED, UNCERTAIN)
"""An outbox row's delivery states (see schema.OutboxEmail)."""


class BackendsSQL(LedgerSQL):
    def _insert_once(self, table: Any, values: dict[str, Any],
                     events: Sequence[Event] = ()) -> tuple[dict[str, Any], bool]:
        """Insert keyed by idempotency_key (appending `events` with it); a repeat returns the first row and
        created=False."""
        with self.write() as conn:
            found = conn.execute(sa.select(table).where(table.c.idempotency_key == values["idempotency_key"])).first()
            if found is not None:
                return dict(found._mapping), False
            row_id = conn.execute(sa.insert(table).returning(table.c.id), values).scalar_one()
            self._append(conn, events)
            return {**values, "id": row_id}, True

    def outbox_add(self, values: dict[str, Any], events: Sequence[Event] = ()) -> tuple[dict[str, Any], bool]:
        return self._insert_once(schema.OUTBOX, values, events)

    def outbox_get(self, outbox_id: int) -> dict[str, Any] | None:
        with self.read() as conn:
            found = conn.execute(sa.select(schema.OUTBOX).where(schema.OUTBOX.c.id == outbox_id)).first()
        return dict(found._mapping) if found else None

    def outbox_start_attempt(self, outbox_id: int, seen_attempts: int, now: float, events: Sequence[Event]) -> bool:
        """Take the next delivery attempt of a mail that is not delivered, unless another execution took one since
        this one read `seen_attempts`; the attempt's events are appended with it."""
        outbox = schema.OUTBOX
        with self.write() as conn:
            taken = conn.execute(sa.update(outbox).where(
                outbox.c.id == outbox_id, outbox.c.attempts == seen_attempts, outbox.c.status != DELIVERED,
            ).values(status=SENDING, attempts=seen_attempts + 1, updated_at=now)).rowcount == 1
            if taken:
                self._append(conn, events)
            return taken

    def outbox_finish_attempt(self, outbox_id: int, attempt: int, values: dict[str, Any],
                              events: Sequence[Event]) -> dict[str, Any]:
        """Record an attempt's outcome and its events; returns the row. `delivered`, from any attempt, is never
        overwritten; another outcome is recorded only if no later attempt began."""
        outbox = schema.OUTBOX
        where = [outbox.c.id == outbox_id, outbox.c.status != DELIVERED]
        if values["status"] != DELIVERED:
            where.append(outbox.c.attempts == attempt)
        with self.write() as conn:
            conn.execute(sa.update(outbox).where(*where).values(**values))
            self._append(conn, events)
            return dict(conn.execute(sa.select(outbox).where(outbox.c.id == outbox_id)).one()._mapping)

    def outbox_list(self, limit: int = 200) -> list[OutboxEmail]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.OUTBOX).order_by(schema.OUTBOX.c.id.desc()).limit(limit))
            return [as_row(schema.OutboxEmail, r._mapping) for r in rows]

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
            return [as_row(schema.Ticket, r._mapping) for r in rows]

    def ticket(self, ticket_id: int) -> Ticket | None:
        with self.read() as conn:
            row = conn.execute(sa.select(schema.TICKETS).where(schema.TICKETS.c.id == ticket_id)).first()
        return as_row(schema.Ticket, row._mapping) if row else None

    def deployments(self) -> list[Deployment]:
        with self.read() as conn:
            rows = conn.execute(sa.select(schema.DEPLOYMENTS).order_by(schema.DEPLOYMENTS.c.name))
            return [as_row(schema.Deployment, r._mapping) for r in rows]

    def deployment(self, name: str) -> Deployment | None:
        with self.read() as conn:
            found = conn.execute(sa.select(schema.DEPLOYMENTS).where(schema.DEPLOYMENTS.c.name == name)).first()
        return as_row(schema.Deployment, found._mapping) if found else None

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
        """Record a scale action once per idempotency key and set the simulated cluster's replicas to its count."""
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
        return as_row(schema.ScaleEvent, found._mapping) if found else None

    def scale_events(self, limit: int = 200) -> list[ScaleEvent]:
        with self.read() as conn:
            return [as_row(schema.ScaleEvent, r._mapping)
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
            return [as_row(schema.MetricSample, r._mapping) for r in conn.execute(query.order_by(schema.METRICS.c.ts))]

    def count_metric_samples(self) -> int:
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(schema.METRICS)).scalar_one()
