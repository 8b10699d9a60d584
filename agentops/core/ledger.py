"""The tamper-evident audit ledger: events, their hash chain, verification and export.

Each event's hash is sha256 over the previous event's hash and the event's own fields, so editing,
inserting, deleting or reordering any row breaks the chain at that row. Rows are written by
`agentops.db` inside the same transaction as the state change they describe.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentops.core.redaction import redact
from agentops.core.serialization import canonical

GENESIS = "0" * 64


@dataclass(slots=True)
class Event:
    """One audit event before it is chained. `payload` is redacted when the event is built."""

    actor: str
    action: str
    run_id: str | None = None
    step_no: int | None = None
    approval_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    policy_hash: str | None = None
    ts: float = field(default_factory=time.time)

    def payload_text(self) -> str:
        return canonical(redact(self.payload)) if self.payload else "{}"


def event_hash(
    prev_hash: str,
    ts: float,
    actor: str,
    action: str,
    run_id: str | None,
    step_no: int | None,
    approval_id: str | None,
    payload: str,
    policy_hash: str | None,
) -> str:
    material = "\x1f".join(
        (prev_hash, repr(float(ts)), actor, action, run_id or "", "" if step_no is None else str(step_no),
         approval_id or "", policy_hash or "", payload)
    )
    return hashlib.sha256(material.encode()).hexdigest()


def chain(prev_hash: str, events: Iterable[Event]) -> list[dict[str, Any]]:
    """Rows ready to insert, each linked to the one before."""
    rows = []
    for ev in events:
        payload = ev.payload_text()
        digest = event_hash(prev_hash, ev.ts, ev.actor, ev.action, ev.run_id, ev.step_no, ev.approval_id,
                            payload, ev.policy_hash)
        rows.append({
            "ts": ev.ts, "actor": ev.actor, "action": ev.action, "run_id": ev.run_id, "step_no": ev.step_no,
            "approval_id": ev.approval_id, "payload": payload, "policy_hash": ev.policy_hash,
            "prev_hash": prev_hash, "hash": digest,
        })
        prev_hash = digest
    return rows


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    count: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def line(self) -> str:
        if self.ok:
            return f"OK: {self.count} events, chain intact"
        return f"BROKEN at event seq={self.first_bad_seq}: {self.problem} ({self.count} events checked before it)"


LedgerRow = tuple[int, float, str, str, str | None, int | None, str | None, str, str | None, str, str]
"""(seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev_hash, hash)"""


def verify_rows(rows: Iterator[LedgerRow]) -> VerifyReport:
    """Walk the chain in seq order; name the first row that was edited, inserted, deleted or reordered."""
    expected_prev = GENESIS
    count = 0
    last_seq = 0
    for seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev_hash, digest in rows:
        if prev_hash != expected_prev:
            kind = "a row before it was deleted, or this row was inserted or moved"
            if seq != last_seq + 1:
                kind = f"rows {last_seq + 1}..{seq - 1} are missing (deleted)"
            return VerifyReport(False, count, seq, f"prev_hash does not match the previous event: {kind}")
        recomputed = event_hash(prev_hash, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash)
        if recomputed != digest:
            return VerifyReport(False, count, seq, "contents do not match its hash: the row was edited")
        expected_prev = digest
        last_seq = seq
        count += 1
    return VerifyReport(True, count)
