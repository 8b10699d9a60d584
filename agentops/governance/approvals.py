"""Durable human approval: a step that pauses its run until a person decides.

A decision is bound to the digest of the exact arguments it was made on, used exactly once,
refused from the people behind the run (maker-checker: the requester and whoever started the run or a
run above it, unless the policy allows self-approval) and from anyone without the approver or admin
role; edits are screened again; an expired request fails closed (recorded as `expired`, never as a
rejection); and before a run acts on a decision, `binding` checks it against the ledger.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from agentops.core import serialization
from agentops.core.ledger import Event
from agentops.core.redaction import default_redactor, redact
from agentops.core.states import State, is_terminal
from agentops.db import Store
from agentops.engine import transitions
from agentops.engine.context import current_run
from agentops.engine.tasks import PausingStep, StepFacts, pausing_step
from agentops.errors import (
    AgentOpsError,
    ApprovalError,
    ApprovalMismatch,
    FlowPaused,
    NotFoundError,
)
from agentops.governance import binding, notifications
from agentops.governance.screening import validate_edited_args
from agentops.governance.users import CAN_DECIDE, require_user

if TYPE_CHECKING:
    from agentops.db.governance import Ancestor
    from agentops.db.schema import Approval

DecisionKind = Literal["approve", "edit", "reject", "respond", "expired"]
VOTE_KINDS = ("approve", "edit", "reject", "respond")


@dataclass(frozen=True)
class Decision:
    """What the person decided. `args` are the arguments to act on (edited ones after an edit)."""

    kind: DecisionKind
    args: dict[str, Any]
    approval_id: str
    message: str | None = None
    decided_by: list[str] = field(default_factory=list)
    self_approved: bool = False
    """A person behind the run decided it, which the tool's policy rule allows (`self_approval: true`)."""
    withdrawn: bool = False
    """A reject by a person behind the run, withdrawing a request a later one superseded (maker-checker guards
    approvals; taking back one's own request needs no second person)."""

    @property
    def approved(self) -> bool:
        return self.kind in ("approve", "edit")

    @property
    def edited(self) -> bool:
        return self.kind == "edit"


def _requester_name(requester: str) -> str:
    return requester.split(":", 1)[1] if requester.startswith("user:") else requester


def decision_of(appr: Approval) -> Decision:
    if appr.status == "expired":
        args = serialization.loads(appr.args, f"approval {appr.id} arguments")
        return Decision("expired", args, appr.id, "the approval request expired", [])
    data = serialization.loads(appr.decision, f"approval {appr.id} decision") or {}
    return Decision(data["kind"], data["args"], appr.id, data.get("message"), data.get("decided_by", []),
                    data.get("self_approved", False), data.get("withdrawn", False))


def request_approval(
    action: str,
    args: dict[str, Any],
    *,
    reason: str,
    expires_in: float | None = None,
    requester: str | None = None,
    verdict: dict[str, Any] | None = None,
    policy_hash: str | None = None,
    context: dict[str, Any] | None = None,
    quorum: int = 1,
    kind: Literal["approve", "respond"] = "approve",
    provenance: Callable[[], dict[str, Any]] | None = None,
) -> Decision:
    """Ask a person to approve `action(args)`; the run pauses (freeing its worker) until they decide.

    Call it inside a flow. It is a step: on resume it returns the recorded decision. `kind="respond"` asks for
    input instead (an MCP server's elicitation): `args["requested_schema"]` is the JSON Schema of the answer, and
    the decision is a `respond` whose `args` are the answer (or a `reject`, or `expired`). `provenance` is called
    once, when the request is opened: the argument values it names as read from data (governance/provenance.py)
    are stored in the request's context and its `approval.requested` event.
    """
    if current_run.get() is None:
        raise AgentOpsError("request_approval() must be called inside a running flow")
    args = redact(args)  # what is stored, digested, shown and later executed are the same redacted arguments

    def ask(step: PausingStep) -> Decision:
        ctx = step.ctx
        if step.record is None:
            _open_request(step, action, args, reason=reason, expires_in=expires_in,
                          requester=requester or f"flow:{ctx.flow_name}", verdict=verdict, policy_hash=policy_hash,
                          context=context, quorum=quorum, kind=kind, provenance=provenance)
        appr = ctx.store.approval_for_step(ctx.run_id, step.step_no)
        if appr is None:
            raise NotFoundError(f"run {ctx.run_id}: step {step.step_no} awaits an approval that does not exist")
        if appr.status == "pending" and appr.expires_at is not None and appr.expires_at <= time.time():
            expire_due(ctx.store)
            appr = ctx.store.approval_for_step(ctx.run_id, step.step_no) or appr
        if appr.status == "pending":
            step.pause_again(f"awaiting approval {appr.id}", approval_id=appr.id)
        return decision_of(appr)

    def describe(decision: Decision) -> StepFacts:
        facts = {"decision": decision.kind, "approval_id": decision.approval_id}
        return StepFacts(meta=facts, payload=facts)

    name = f"approval:{action}"
    decision = pausing_step(name, ask, kind="approval", inputs=args, describe=describe)
    ctx = current_run.get()
    appr = ctx.store.get_approval(decision.approval_id) if ctx is not None else None
    if ctx is None or appr is None or appr.step_no is None:
        raise NotFoundError(f"approval {decision.approval_id} of this run does not exist")
    return binding.checked(ctx, appr.step_no, name, appr, decision)


def _open_request(step: PausingStep, action: str, args: dict[str, Any], *, reason: str, expires_in: float | None,
                  requester: str, verdict: dict[str, Any] | None, policy_hash: str | None,
                  context: dict[str, Any] | None, quorum: int, kind: str = "approve",
                  provenance: Callable[[], dict[str, Any]] | None = None) -> NoReturn:
    """Store the request with its step and the run's pause (one transaction, fenced), then pause the run."""
    ctx, step_no = step.ctx, step.step_no
    marks = redact(provenance()) if provenance else None
    if marks:
        context = {**(context or {}), "provenance": marks}
    now = time.time()
    approval_id = uuid.uuid4().hex
    digest = serialization.digest(args)
    approval = {
        "id": approval_id, "run_id": ctx.run_id, "step_no": step_no, "action": action,
        "args": serialization.dumps(args), "args_digest": digest, "reason": default_redactor().text(reason),
        "requester": requester, "verdict": serialization.stored(verdict) if verdict else None,
        "policy_hash": policy_hash,
        "context": serialization.safe_dumps(redact(context), limit=200_000) if context else None,
        "quorum": max(1, quorum), "kind": kind,
        "status": "pending", "created_at": now, "expires_at": now + expires_in if expires_in else None,
    }
    name = f"approval:{action}"
    events = [
        Event(actor=requester, action="approval.requested", run_id=ctx.run_id, step_no=step_no,
              approval_id=approval_id, policy_hash=policy_hash, ts=now,
              payload={"action": action, "args": args, "args_digest": digest, "reason": reason,
                       "verdict": verdict, "expires_at": approval["expires_at"], "quorum": approval["quorum"],
                       "kind": kind, **({"provenance": marks} if marks else {})}),
        transitions.step_state(ctx.run_id, step_no, name, State.AWAITING_APPROVAL.value, ts=now,
                               approval_id=approval_id),
        transitions.run_state(ctx.run_id, State.AWAITING_APPROVAL.value, ts=now, approval_id=approval_id),
    ]
    notices = _notifications(action, approval_id=approval_id, run_id=ctx.run_id, now=now,
                             expires_at=approval["expires_at"])
    if notices:
        events.append(Event(actor=requester, action="approval.notifications_queued", run_id=ctx.run_id,
                            step_no=step_no, approval_id=approval_id, policy_hash=policy_hash, ts=now,
                            payload={"notifications": [{"id": n["id"], "kind": n["kind"], "channel": n["channel"],
                                                        "due_at": n["due_at"]} for n in notices]}))
    row = step.row(State.AWAITING_APPROVAL, meta=serialization.dumps({"approval_id": approval_id}))
    ctx.store.open_approval(approval, row, epoch=ctx.epoch, events=events, notifications=notices)
    raise FlowPaused(f"awaiting approval {approval_id}")




def decide(
    store: Store,
    approval_id: str,
    kind: str,
    *,
    user: str | None,
    args_digest: str | None = None,
    edited_args: dict[str, Any] | None = None,
    message: str | None = None,
    response: dict[str, Any] | None = None,
    withdrawal: bool = False,
) -> Decision | None:
    """Record one approver's decision. Returns the final Decision, or None while a quorum is incomplete.

    Every face (service, CLI, app, chat, a script) comes through here, so every check is made here:
    the approver's role; the digest they reviewed; maker-checker against the requester and everyone
    who started the run or a run above it, unless the tool's policy rule says `self_approval: true`
    (then the decision is recorded as self-approved); edited arguments screened again against the
    tool's schema and the policy; and an approval whose run has ended cannot be decided. `args_digest` None
    means the request's current digest; any other value must equal it. `withdrawal` (a reject only) lets a
    person behind the run reject it, recorded as withdrawn: a group's "approve the latest" withdraws the
    superseded requests of the reviewer's own runs, which maker-checker would otherwise leave pending.
    """
    if kind not in VOTE_KINDS:
        raise ApprovalError(f"unknown decision '{kind}' (choose one of: {', '.join(VOTE_KINDS)})")
    if withdrawal and kind != "reject":
        raise ApprovalError(f"only a reject withdraws a request, not {kind!r}: "
                            "maker-checker still holds for approvals")
    approver = require_user(store, user, CAN_DECIDE, "deciding approvals")
    appr = store.get_approval(approval_id)
    if appr is None:
        raise NotFoundError(f"no approval with id '{approval_id}'")
    now = time.time()
    digest = appr.args_digest if args_digest is None else args_digest
    makers = _decidable_by(store, appr, approver.name, digest, now, withdrawal=withdrawal)
    args = serialization.loads(appr.args, f"approval {appr.id} arguments")
    if appr.kind == "respond":
        args = _checked_response(appr, kind, args, response)
    elif response is not None:
        raise ApprovalError(f"approval {approval_id} asks for a decision, not for input; a response does not apply")
    if kind == "edit":
        if not isinstance(edited_args, dict):
            raise ApprovalError("an edit needs the replacement arguments as a JSON object (--args JSON)")
        if appr.quorum > 1:
            raise ApprovalError(f"approval {approval_id} needs {appr.quorum} approvers; edits need a quorum of 1 "
                                "(reject with a message instead)")
        args = validate_edited_args(appr.action, edited_args, requested=serialization.loads(appr.args))
    if kind in ("reject", "respond") and not message and appr.kind != "respond":
        raise ApprovalError(f"a {kind} needs a message (--reason / --message)")

    votes = store.votes_for(approval_id)
    approvers = [v.user for v in votes if v.kind in ("approve", "edit")] + [approver.name]
    final = kind != "approve" or len(set(approvers)) >= appr.quorum
    decided_by = sorted(set(approvers)) if kind in ("approve", "edit") else [approver.name]
    withdrawn = withdrawal and approver.name in makers
    self_approved = bool(makers.intersection(decided_by)) and not withdrawn
    decision = Decision(kind, args, approval_id, message, decided_by, self_approved,  # type: ignore[arg-type]
                        withdrawn)
    actor = f"user:{approver.name}"
    vote = {"approval_id": approval_id, "user": approver.name, "kind": kind, "args_digest": digest,
            "args": serialization.stored(args) if kind == "edit" or appr.kind == "respond" else None,
            "message": default_redactor().text(message) if message else message, "ts": now}
    payload = {"decision": kind, "args_digest": digest, "message": message,
               "edited_args": args if kind == "edit" else None,
               "response": args if appr.kind == "respond" and kind == "respond" else None,
               "votes": len(set(approvers)), "quorum": appr.quorum,
               "self_approved": approver.name in makers and not withdrawn,
               **({"withdrawn_by": approver.name} if withdrawn else {})}
    if final:
        payload |= {"decided_digest": serialization.digest(args), "decided_by": decided_by,
                    "self_approved": self_approved}
    events = [Event(actor=actor, action=f"approval.{'decided' if final else 'vote'}", run_id=appr.run_id,
                    step_no=appr.step_no, approval_id=approval_id, policy_hash=appr.policy_hash, ts=now,
                    payload=payload)]
    closing = None
    run_events: list[Event] = []
    if final:
        closing = {"status": {"approve": "approved", "edit": "edited", "reject": "rejected",
                              "respond": "responded"}[kind],
                   "decided_at": now, "decided_by": ",".join(decided_by),
                   "decision": serialization.stored(decision.__dict__)}
        if appr.run_id:
            run_events.append(transitions.run_state(appr.run_id, State.PENDING.value, actor=actor, ts=now,
                                                    approval_id=approval_id))
    outcome = store.record_vote(vote, events, final=closing, run_id=appr.run_id, run_events=run_events)
    if outcome == "run_ended":
        ended = store.run_lineage(appr.run_id) if appr.run_id else []
        raise _no_effect(appr, ended[0].state if ended else "deleted")
    if outcome == "already_voted":
        raise ApprovalError(f"{approver.name} already voted on approval {approval_id}")
    if outcome != "recorded":
        raise ApprovalError(f"approval {approval_id} was decided concurrently; look at it again")
    return decision if final else None


def _checked_response(appr: Approval, kind: str, request: dict[str, Any], response: dict[str, Any] | None
                      ) -> dict[str, Any]:
    """A request for input is answered (`respond`, with fields that fit its schema) or declined (`reject`)."""
    if kind == "reject":
        return request
    if kind != "respond":
        raise ApprovalError(f"approval {appr.id} asks for input: answer it (respond, with the fields of its schema) "
                            "or decline it (reject)")
    if not isinstance(response, dict):
        raise ApprovalError(f"approval {appr.id} asks for input: give the answer as a JSON object (--response JSON)")
    import jsonschema

    schema = request.get("requested_schema") or {"type": "object"}
    try:
        jsonschema.Draft202012Validator(schema).validate(response)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "the response"
        raise ApprovalError(f"approval {appr.id}: {where}: {exc.message}") from None
    except jsonschema.SchemaError as exc:
        raise ApprovalError(f"approval {appr.id}: its schema is not usable ({exc.message})") from None
    return response


def _decidable_by(store: Store, appr: Approval, name: str, digest: str, now: float, *,
                  withdrawal: bool = False) -> set[str]:
    """Refuse a decision by `name` on `digest` that cannot be made now; returns the people behind the run."""
    lineage = store.run_lineage(appr.run_id) if appr.run_id else []
    if appr.status == "cancelled" or (lineage and is_terminal(lineage[0].state)):
        raise _no_effect(appr, lineage[0].state if lineage else "CANCELLED")
    if appr.status != "pending":
        by = f" by {appr.decided_by}" if appr.decided_by else ""
        raise ApprovalError(f"approval {appr.id} is already {appr.status}{by}; a decision is used only once")
    if appr.expires_at is not None and appr.expires_at <= now:
        expire_due(store)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(appr.expires_at))
        raise ApprovalError(f"approval {appr.id} expired at {when} UTC; "
                            "it was recorded as expired and cannot be decided")
    if digest != appr.args_digest:
        raise ApprovalError(f"stale decision for approval {appr.id}: it was made on arguments {digest[:12]}, "
                            f"the request now holds {appr.args_digest[:12]}; review it again")
    changed = binding.request_mismatch(store, appr) if appr.run_id else None
    if changed is not None:
        store.append_events([binding.mismatch_event(appr.run_id, appr.step_no, appr.id, changed, attempted_by=name)])
        raise ApprovalMismatch(changed.line(appr.id, "it cannot be decided"))
    makers = people_behind(appr, lineage)
    if name in makers and not withdrawal and not self_approval_allowed(appr.action):
        raise ApprovalError(f"user '{name}' {_role_in(appr, name)} approval {appr.id} and cannot decide it "
                            f"(maker-checker: another approver must; the policy rule for '{appr.action}' does not "
                            "allow self-approval)")
    return makers


def people_behind(appr: Approval, lineage: list[Ancestor]) -> set[str]:
    """The people who may not decide `appr` themselves: its requester, when a person, and whoever started its run
    or any run above it (a chat message that queued the flow, a schedule's owner, a parent flow's starter)."""
    people = {_requester_name(appr.requester)} if appr.requester.startswith("user:") else set()
    if appr.run_id is None:
        return people
    if not lineage:
        raise ApprovalError(f"approval {appr.id} belongs to run {appr.run_id}, which does not exist; "
                            "who started it cannot be established, so it cannot be decided")
    top = lineage[-1]
    if top.parent_run_id is not None:
        raise ApprovalError(f"approval {appr.id}: run {top.id} was started by run {top.parent_run_id}, which does "
                            "not exist (or the chain of parent runs is too long); who started the run cannot be "
                            "established, so it cannot be decided")
    return people | {a.created_by for a in lineage if a.created_by}


def _notifications(action: str, **request: Any) -> list[dict[str, Any]]:
    """The notifications the tool's policy rule owes this request (agentops.governance.notifications)."""
    from agentops.engine.project import project_root
    from agentops.governance.screening import project_policy

    return notifications.planned(project_policy(project_root()), action, **request)


def self_approval_allowed(action: str) -> bool:
    """Whether the project's policy lets the person behind a run decide its `action` calls."""
    from agentops.engine.project import project_root
    from agentops.governance.screening import project_policy

    rule = project_policy(project_root()).rules.get(action)
    return rule is not None and rule.self_approval


def _role_in(appr: Approval, name: str) -> str:
    return "requested" if appr.requester == f"user:{name}" else "started the run behind"


def _no_effect(appr: Approval, state: str) -> ApprovalError:
    return ApprovalError(f"approval {appr.id} belongs to run {appr.run_id}, which is {state}; a decision would have "
                         "no effect and was not recorded")


def expire_due(store: Store, now: float | None = None) -> list[Approval]:
    """Close every pending approval past its expiry, failing closed; their runs resume and see `expired`."""
    now = time.time() if now is None else now

    def events_for(appr: Approval, run_moved: bool) -> list[Event]:
        events = [Event(actor="system:expiry", action="approval.expired", run_id=appr.run_id, step_no=appr.step_no,
                        approval_id=appr.id, policy_hash=appr.policy_hash, ts=now,
                        payload={"action": appr.action, "expires_at": appr.expires_at})]
        if run_moved and appr.run_id:
            events.append(transitions.run_state(appr.run_id, State.PENDING.value, actor="system:expiry", ts=now,
                                                approval_id=appr.id))
        return events

    return store.expire_approvals(now, events_for)


def cancel_pending(store: Store, run_id: str, *, actor: str) -> list[Approval]:
    """Close the pending approvals of a cancelled run, so that nobody is asked to decide them."""
    now = time.time()

    def events_for(appr: Approval, run_moved: bool) -> list[Event]:
        return [Event(actor=actor, action="approval.cancelled", run_id=run_id, step_no=appr.step_no,
                      approval_id=appr.id, policy_hash=appr.policy_hash, ts=now,
                      payload={"action": appr.action, "reason": "run cancelled"})]

    return store.cancel_approvals(run_id, now, actor, events_for)
