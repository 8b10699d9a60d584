"""What runs is what was approved: requests and decisions are checked against the ledger before anyone acts.

The ledger's `approval.requested` event holds the digest of the arguments the agent or flow asked for; the
`approval.decided` event holds the digest of the request the person reviewed (`args_digest`) and of the
arguments that are to run (`decided_digest`). A decision is refused when the stored request no longer
matches the first, and before a run acts on an approval (on its first resume and on every replay) the
arguments it holds are digested again and compared with the second. So an edit made in the database
(approval args or digest, the stored decision, the approval step's recorded output, a status flipped to
approved with no decision) fails closed: nothing runs, and an `approval.mismatch` event names the reason
and both digests.

Each event is trusted only as far as its own hash: an edited event is caught here; a forged or
recomputed chain is for `agentops audit verify` against a signed checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentops.core import serialization
from agentops.core.ledger import Event, event_hash
from agentops.core.states import State
from agentops.engine import transitions
from agentops.errors import ApprovalMismatch, SerializationError

if TYPE_CHECKING:
    from agentops.db import Store
    from agentops.db.schema import Approval
    from agentops.engine.context import RunContext
    from agentops.governance.approvals import Decision


@dataclass(frozen=True)
class Mismatch:
    """Why nobody may act on an approval, with the digest the ledger binds and the one stored now."""

    reason: str
    approved_digest: str | None = None
    stored_digest: str | None = None

    def line(self, approval_id: str, outcome: str = "nothing was run") -> str:
        digests = ""
        if self.approved_digest or self.stored_digest:
            digests = f" (ledger {(self.approved_digest or '-')[:12]}, stored {(self.stored_digest or '-')[:12]})"
        return f"approval {approval_id}: {self.reason}{digests}; {outcome}"


def _digest_of_text(text: str | None) -> str | None:
    try:
        return serialization.digest(serialization.loads(text))
    except SerializationError:
        return None


def _event(store: Store, appr: Approval, action: str) -> tuple[dict[str, Any], Mismatch | None]:
    """The payload of the one `action` event of `appr`, or why the ledger cannot vouch for it."""
    rows = store.approval_events(appr.run_id or "", appr.id, action)
    if len(rows) != 1:
        return {}, Mismatch(f"the ledger holds {len(rows)} '{action}' events for it, not one")
    seq, ts, actor, act, run_id, step_no, approval_id, payload_text, policy_hash, prev_hash, stored_hash = rows[0]
    if event_hash(prev_hash, ts, actor, act, run_id, step_no, approval_id, payload_text, policy_hash) != stored_hash:
        return {}, Mismatch(f"its '{action}' event in the ledger (seq {seq}) was edited")
    return json.loads(payload_text), None


def _request_changed(appr: Approval, bound: str | None) -> Mismatch | None:
    held = _digest_of_text(appr.args)
    if held != bound or appr.args_digest != bound:
        return Mismatch("the request's stored arguments or digest were changed", bound,
                        held if held != bound else appr.args_digest)
    return None


def request_mismatch(store: Store, appr: Approval) -> Mismatch | None:
    """None when the stored request is the one that was asked for; checked before anyone decides it."""
    payload, problem = _event(store, appr, "approval.requested")
    return problem or _request_changed(appr, payload.get("args_digest"))


def mismatch(store: Store, run_id: str, appr: Approval | None, decision: Decision) -> Mismatch | None:
    """None when the run may act on `decision`; otherwise why not. Refusals and expiries run nothing, so pass."""
    if not decision.approved and decision.kind != "respond":
        return None
    if appr is None or appr.id != decision.approval_id or appr.run_id != run_id:
        return Mismatch(f"the decision names approval {decision.approval_id}, which is not this step's request")
    payload, problem = _event(store, appr, "approval.decided")
    if problem:
        return problem
    if payload.get("decision") != decision.kind:
        return Mismatch(f"the ledger records a '{payload.get('decision')}' decision, the run holds "
                        f"'{decision.kind}'")
    approved, stored = payload.get("decided_digest"), serialization.digest(decision.args)
    if stored != approved:
        return Mismatch("the arguments to run are not the ones approved", approved, stored)
    return _request_changed(appr, payload.get("args_digest"))


def checked(ctx: RunContext, step_no: int, step_name: str, appr: Approval | None, decision: Decision) -> Decision:
    """`decision` if the run may act on it; otherwise the step fails closed, recorded with both digests."""
    found = mismatch(ctx.store, ctx.run_id, appr, decision)
    if found is None:
        return decision
    error = found.line(decision.approval_id)
    now = time.time()
    ctx.store.record_step(
        {"run_id": ctx.run_id, "step_no": step_no, "state": State.FAILED.value, "ended_at": now, "error": error},
        [mismatch_event(ctx.run_id, step_no, decision.approval_id, found, decision=decision.kind, ts=now),
         transitions.step_state(ctx.run_id, step_no, step_name, State.FAILED.value, ts=now, error=error)],
        exists=True, epoch=ctx.epoch, logs=ctx.take_logs())
    raise ApprovalMismatch(error)


def mismatch_event(run_id: str | None, step_no: int | None, approval_id: str, found: Mismatch, *,
                   ts: float | None = None, **payload: Any) -> Event:
    return Event(actor="system:approvals", action="approval.mismatch", run_id=run_id, step_no=step_no,
                 approval_id=approval_id, ts=ts if ts is not None else time.time(),
                 payload={"reason": found.reason, "approved_digest": found.approved_digest,
                          "stored_digest": found.stored_digest, **payload})
