"""One approval request, rendered with its decision controls (Approvals inbox and the Chat page share it)."""

from __future__ import annotations

import json

import streamlit as st

from agentops import service
from agentops.errors import AgentOpsError
from agentops.service import effects, views
from ui_kit.effect_view import show_effect
from ui_kit.render import args_diff, countdown, pretty, when
from ui_kit.session import SessionUser, still_logged_in


def approval_card(view: views.ApprovalView, user: SessionUser, *, scope: str = "inbox") -> None:
    """The request, why it exists, and Approve / Edit / Reject for approvers. Keys are `<verb>-<scope>-<id>`."""
    a = view.approval
    with st.container(border=True, key=f"approval-{scope}-{a.id}"):
        st.markdown(f"#### `{a.action}`")
        show_effect(view.effect, view.args, key=f"{scope}-{a.id}", marks=effects.provenance_of(a))
        left, middle, right = st.columns(3)
        left.markdown(f"**Requested by** {a.requester}")
        middle.markdown(f"**Policy rule** `{view.rule or '-'}`")
        right.markdown(f"**{countdown(view.expires_in)}**")
        if view.alert_resolved_at is not None:
            st.info(f"alert resolved at {when(view.alert_resolved_at)}: the condition behind this request has "
                    "cleared; the request still waits for a decision")
        if a.reason:
            st.markdown(f"**Reason:** {a.reason}")
        if view.verdict_reason:
            st.caption(f"policy: {view.verdict_reason}")
        if view.conversation:
            with st.expander("Conversation that led here"):
                for line in view.conversation:
                    st.markdown(f"**{line['role']}**: {line['text']}")
        if a.run_id:
            st.caption(f"run `{a.run_id}` · step {a.step_no} · requested {when(a.created_at)}")
        if a.status != "pending":
            by = f" by {a.decided_by}" if a.decided_by else ""
            st.info(f"This request is {a.status}{by} ({when(a.decided_at)}); there is nothing left to decide.",
                    icon=":material/task_alt:")
            return
        if not user.can_decide:
            st.caption(f"Your role ({user.role}) can see this request but not decide it.")
            return
        _decision_controls(view, user, scope)


def approval_group(group: list[views.ApprovalView], user: SessionUser) -> None:
    """Identical pending requests (same action, same arguments): the first as a card, the rest listed, each
    still decidable (and recorded) on its own; an approver can decide them all at once."""
    first, others = group[0], group[1:]
    if others:
        st.markdown(f"**{len(group)} identical requests** for `{first.approval.action}`: "
                    + ", ".join(f"`{v.approval.id}`" for v in group))
    approval_card(first, user)
    if not others:
        return
    if user.can_decide:
        left, right = st.columns(2)
        if left.button(f"Approve all {len(group)}", key=f"approve-group-{first.approval.id}"):
            _decide_all(group, "approve", user)
        if right.button(f"Reject all {len(group)}", key=f"reject-group-{first.approval.id}"):
            _decide_all(group, "reject", user)
    with st.expander(f"The other {len(others)} identical requests"):
        for view in others:
            approval_card(view, user, scope="group")


def _decide_all(group: list[views.ApprovalView], kind: str, user: SessionUser) -> None:
    """One decision per request, each bound to its own digest and recorded on its own."""
    if not still_logged_in(user):
        return
    done, failed = 0, []
    for view in group:
        a = view.approval
        try:
            service.decide(a.id, kind, user=user.name, args_digest=a.args_digest,  # type: ignore[arg-type]
                           message="rejected with its identical requests" if kind == "reject" else None)
            done += 1
        except AgentOpsError as exc:
            failed.append(f"{a.id}: {exc}")
    st.session_state["approvals_flash"] = f"{kind} recorded on {done} of {len(group)} requests by {user.name}" + (
        "; " + "; ".join(failed) if failed else "")
    st.rerun()


def _decision_controls(view: views.ApprovalView, user: SessionUser, scope: str) -> None:
    a = view.approval
    key = f"{scope}-{a.id}"
    if a.kind == "respond":
        _respond_controls(view, user, key)
        return
    approve, edit, reject = st.tabs(["Approve", "Edit", "Reject"])
    with approve:
        if st.button("Approve", key=f"approve-{key}", type="primary"):
            _decide(a.id, "approve", user, args_digest=a.args_digest)
    with edit:
        text = st.text_area("Arguments (JSON)", value=pretty(view.args), key=f"edit-args-{key}", height=160)
        edited = _parse_args(text)
        if edited is not None and edited != view.args:
            st.code(args_diff(view.args, edited), language="diff")
        if st.button("Approve with these arguments", key=f"edit-{key}", disabled=edited is None):
            _decide(a.id, "edit", user, args_digest=a.args_digest, edited_args=edited)
    with reject:
        message = st.text_input("Message to the agent", key=f"reject-message-{key}",
                                placeholder="why not, and what to do instead")
        if st.button("Reject", key=f"reject-{key}"):
            _decide(a.id, "reject", user, args_digest=a.args_digest, message=message or "rejected")


def _respond_controls(view: views.ApprovalView, user: SessionUser, key: str) -> None:
    """A server's request for input: one field per property of its schema, then Answer or Decline."""
    a = view.approval
    schema = view.args.get("requested_schema") or {}
    st.markdown(f"**The server asks:** {view.args.get('message', '')}")
    answer: dict[str, object] = {}
    required = set(schema.get("required") or [])
    for name, prop in (schema.get("properties") or {}).items():
        label = f"{prop.get('title') or name}{' *' if name in required else ''}"
        field_key = f"respond-{name}-{key}"
        kind = prop.get("type")
        if prop.get("enum"):
            answer[name] = st.selectbox(label, prop["enum"], key=field_key)
        elif kind == "boolean":
            answer[name] = st.checkbox(label, key=field_key)
        elif kind == "integer":
            answer[name] = int(st.number_input(label, step=1, key=field_key))
        elif kind == "number":
            answer[name] = float(st.number_input(label, key=field_key))
        else:
            text = st.text_input(label, key=field_key, help=prop.get("description"))
            if text or name in required:
                answer[name] = text
    answer_tab, decline_tab = st.tabs(["Answer", "Decline"])
    with answer_tab:
        if st.button("Send the answer", key=f"respond-{key}", type="primary"):
            _decide(a.id, "respond", user, args_digest=a.args_digest, response=answer)
    with decline_tab:
        message = st.text_input("Why not", key=f"decline-message-{key}")
        if st.button("Decline", key=f"decline-{key}"):
            _decide(a.id, "reject", user, args_digest=a.args_digest, message=message or "declined")


def _parse_args(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        st.error(f"not valid JSON: {exc.msg} (line {exc.lineno})")
        return None
    if not isinstance(value, dict):
        st.error("the arguments must be a JSON object")
        return None
    return value


def _decide(approval_id: str, kind: str, user: SessionUser, **details: object) -> None:
    """The decider is the logged-in user, never a form field; the service checks the role again."""
    if not still_logged_in(user):
        return
    try:
        result = service.decide(approval_id, kind, user=user.name, **details)  # type: ignore[arg-type]
    except AgentOpsError as exc:
        st.error(str(exc))
        return
    st.session_state["approvals_flash"] = (f"{kind} recorded; more approvers are needed" if result is None
                                           else f"{approval_id[:12]}: {result.kind} by {user.name}")
    st.rerun()
