"""What runs is what was approved: a decision is checked against the ledger before a run acts on it.

When a person decides, the `approval.decided` event records the digest of the request they reviewed
(`args_digest`) and of the arguments that are to run (`decided_digest`). Before a run acts on an
approval (on its first resume and on every replay) the arguments it holds are digested again and
compared with that event; so are the request's stored arguments and digest. An edit made in the
database after the decision (approval args, the stored decision, the approval step's recorded output,
a status flipped to approved without a decision) fails the step closed: nothing runs, and an
`approval.mismatch` event names the reason and both digests.

The check trusts the decision event itself only as far as its own hash: an edited event is caught
here, a forged or recomputed chain is for `agentops audit verify` against a signed checkpoint.
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
    """Why a run may not act on a decision, with the digest that was approved and the one it holds now."""

    reason: str
    approved_digest: str | None = None
    stored_digest: str | None = None

    def line(self, approval_id: str) -> str:
        digests = ""
        if self.approved_digest or self.stored_digest:
            digests = f" (approved {(self.approved_digest or '-')[:12]}, stored {(self.stored_digest or '-')[:12]})"
        return f"approval {approval_id}: {self.reason}{digests}; nothing was run"


def _digest_of_text(text: str | None) -> str | None:
    try:
        return serialization.digest(serialization.loads(text))
    except SerializationError:
        return None


def mismatch(store: Store, run_id: str, appr: Approval | None, decision: Decision) -> Mismatch | None:
    """None when the run may act on `decision`; otherwise why not. Refusals and expiries run nothing, so pass."""
    if not decision.approved:
        return None
    if appr is None or appr.id != decision.approval_id or appr.run_id != run_id:
        return Mismatch(f"the decision names approval {decision.approval_id}, which is not this step's request")
    rows = store.decision_events(run_id, appr.id)
    if len(rows) != 1:
        return Mismatch(f"the ledger holds {len(rows)} decisions for it, not one")
    seq, ts, actor, action, ev_run, step_no, approval_id, payload_text, policy_hash, prev_hash, stored_hash = rows[0]
    if event_hash(prev_hash, ts, actor, action, ev_run, step_no, approval_id, payload_text, policy_hash) != stored_hash:
        return Mismatch(f"its decision event in the ledger (seq {seq}) was edited")
    payload: dict[str, Any] = json.loads(payload_text)
    if payload.get("decision") != decision.kind:
        return Mismatch(f"the ledger records a '{payload.get('decision')}' decision, the run holds "
                        f"'{decision.kind}'")
    approved, stored = payload.get("decided_digest"), serialization.digest(decision.args)
    if stored != approved:
        return Mismatch("the arguments to run are not the ones approved", approved, stored)
    reviewed = payload.get("args_digest")
    held = _digest_of_text(appr.args)
    if held != reviewed or appr.args_digest != reviewed:
        return Mismatch("the request's stored arguments or digest changed after the decision", reviewed,
                        held if held != reviewed else appr.args_digest)
    return None


def checked(ctx: RunContext, step_no: int, step_name: str, appr: Approval | None, decision: Decision) -> Decision:
    """`decision` if the run may act on it; otherwise the step fails closed, recorded with both digests."""
    found = mismatch(ctx.store, ctx.run_id, appr, decision)
    if found is None:
        return decision
    error = found.line(decision.approval_id)
    now = time.time()
    ctx.store.record_step(
        {"run_id": ctx.run_id, "step_no": step_no, "state": State.FAILED.value, "ended_at": now, "error": error},
        [Event(actor="system:approvals", action="approval.mismatch", run_id=ctx.run_id, step_no=step_no,
               approval_id=decision.approval_id, ts=now,
               payload={"reason": found.reason, "approved_digest": found.approved_digest,
                        "stored_digest": found.stored_digest, "decision": decision.kind}),
         transitions.step_state(ctx.run_id, step_no, step_name, State.FAILED.value, ts=now, error=error)],
        exists=True, logs=ctx.take_logs())
    raise ApprovalMismatch(error)
