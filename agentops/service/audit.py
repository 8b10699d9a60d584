"""The audit ledger for every face: verify, search, export."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from agentops.core import serialization
from agentops.core.ledger import VerifyReport, verify_rows
from agentops.db import open_store

if TYPE_CHECKING:
    from agentops.db.schema import LedgerEvent



def audit_verify() -> VerifyReport:
    return verify_rows(open_store().iter_ledger())


def audit_search(**filters: Any) -> list[LedgerEvent]:
    return open_store().search_ledger(**filters)


def ledger_record(ev: LedgerEvent) -> dict[str, Any]:
    return {"seq": ev.seq, "ts": ev.ts, "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ev.ts)) +
            f".{int((ev.ts % 1) * 1e6):06d}Z", "actor": ev.actor, "action": ev.action, "run_id": ev.run_id,
            "step_no": ev.step_no, "approval_id": ev.approval_id,
            "payload": serialization.loads(ev.payload, f"ledger event {ev.seq} payload"),
            "policy_hash": ev.policy_hash, "prev_hash": ev.prev_hash, "hash": ev.hash}


def audit_export(*, since: float | None = None, until: float | None = None) -> Iterator[str]:
    """JSON lines, one per event, oldest first, for a SIEM."""
    import json

    st = open_store()
    after = 0
    while True:
        batch = st.search_ledger(since=since, until=until, limit=5000, ascending=True, after_seq=after)
        if not batch:
            return
        for ev in batch:
            yield json.dumps(ledger_record(ev), separators=(",", ":"), sort_keys=True)
        after = batch[-1].seq or after



def audit_count() -> int:
    return open_store().ledger_count()
