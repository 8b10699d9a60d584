"""One approval request, rendered with its decision controls (Approvals inbox and the Chat page share it)."""

from __future__ import annotations

import json

import streamlit as st

from agentops import service
from agentops.errors import AgentOpsError
from agentops.service import effects, views
from ui_kit.effect_view import show_effect, show_mcp_call
from ui_kit.render import args_diff, countdown, md_text, pretty, when
from ui_kit.session import SessionUser, still_logged_in


def approval_card(view: views.ApprovalView, user: SessionUser, *, scope: str = "inbox") -> None:
    """The request, why it exists, and Approve / Edit / Reject for approvers. Keys are `<verb>-<scope>-<id>`."""
    a = view.approval
    with st.container(border=True, key=f"approval-{scope}-{a.id}"):
        st.markdown(f"#### {md_text(view.title)}")
        st.caption(f"tool `{a.action}` · request `{a.id}`")
        mcp = view.mcp
        if mcp is not None and a.kind == "respond":
            asks = {k: v for k, v in view.args.items() if k != "call"}
            show_mcp_call(mcp, view.args.get("call") or {}, f"{scope}-{a.id}", asks=asks,
                          marks=effects.provenance_of(a))
        elif mcp is not None:
            show_mcp_call(mcp, view.args, f"{scope}-{a.id}", marks=effects.provenance_of(a))
        else:
            show_effect(view.effect, view.args, key=f"{scope}-{a.id}", marks=effects.provenance_of(a))
        left, middle, right = st.columns(3)
        left.markdown(f"**Requested by** {a.requester}")
        middle.markdown(f"**Policy rule** `{view.rule or '-'}`")
        right.markdown(f"**{countdown(view.expires_in)}**")
        if view.alert_resolved_at is not None:
            st.info(f"alert resolved at {when(view.alert_resolved_at)}: the condition behind this request has "
                    "cleared; the request still waits for a decision")
        if view.reason:
            st.markdown(f"**Reason:** {md_text(view.reason)}")
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
    """Pending requests on one target (same action; the same deployment, recipients or ticket), or identical
    ones: the newest as a card, each member's differing arguments listed, every member still decidable (and
    recorded) on its own. Group decisions: Approve all / Reject all, or, when the members ask for different
    states of the target, Approve the latest and reject the others."""
    if len(group) == 1:
        approval_card(group[0], user)
        return
    summary = effects.summarize_group([v.approval for v in group])
    first = group[0]
    ids = ", ".join(f"`{v.approval.id}`" for v in group)
    if summary.identical:
        st.markdown(f"**{len(group)} identical requests** for `{first.approval.action}`: {ids}")
    else:
        st.markdown(f"**{len(group)} requests** for `{first.approval.action}` on {md_text(summary.target or '')}, "
                    "differing in their arguments:")
        for view in group:
            differs = ", ".join(f"{md_text(k)} = **{md_text(_short(v))}**"
                                for k, v in summary.differing[view.approval.id].items())
            latest = " (latest)" if view.approval.id == summary.latest else ""
            st.markdown(f"- `{view.approval.id}`{latest}: {differs}")
    shown = next(v for v in group if v.approval.id == summary.latest) if not summary.identical else first
    approval_card(shown, user)
    if user.can_decide:
        _group_buttons(group, summary, user)
    others = [v for v in group if v is not shown]
    with st.expander(f"The other {len(others)} {'identical ' if summary.identical else ''}requests"):
        for view in others:
            approval_card(view, user, scope="member")


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:79] + "…"


def _group_buttons(group: list[views.ApprovalView], summary: effects.GroupSummary, user: SessionUser) -> None:
    """The group decisions, bound to the members as drawn: the callbacks' arguments are fixed when the buttons
    are drawn, so a request that joins the group before the click is not decided by it."""
    key = group[0].approval.id
    drawn = tuple((v.approval.id, v.approval.args_digest) for v in group)
    refused = st.session_state.pop(f"group-refused-{key}", None)
    if refused:
        st.error(refused)
    if "approve_latest" in summary.choices:
        chosen = ", ".join(f"{k} {_short(v)}" for k, v in summary.differing[summary.latest].items())
        st.caption("These requests set one target to different states, so they cannot all be approved.")
        left, right = st.columns(2)
        left.button(f"Approve the latest ({chosen}), reject the others", key=f"approve-latest-{key}",
                    on_click=_decide_group, args=(drawn, "approve_latest", user, summary.latest))
    else:
        left, right = st.columns(2)
        left.button(f"Approve all {len(group)}", key=f"approve-group-{key}",
                    on_click=_decide_group, args=(drawn, "approve_all", user, None))
    right.button(f"Reject all {len(group)}", key=f"reject-group-{key}",
                 on_click=_decide_group, args=(drawn, "reject_all", user, None))


def _decide_group(drawn: tuple[tuple[str, str], ...], choice: str, user: SessionUser, latest: str | None) -> None:
    """One decision per request as drawn, each bound to its digest and recorded on its own (a button callback)."""
    if not still_logged_in(user):
        return
    try:
        outcome = service.decide_group(list(drawn), choice, user=user.name,  # type: ignore[arg-type]
                                       latest=latest)
    except AgentOpsError as exc:
        st.session_state[f"group-refused-{drawn[0][0]}"] = str(exc)
        return
    decided = ", ".join(f"{kind} {i[:12]}" for i, kind in outcome.decided)
    st.session_state["approvals_flash"] = (
        f"{len(outcome.decided)} of {len(drawn)} requests decided by {user.name}: {decided or 'none'}"
        + ("; " + "; ".join(f"{i[:12]}: {why}" for i, why in outcome.failed) if outcome.failed else ""))
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
    st.markdown(f"**The server asks:** {md_text(str(view.args.get('message', '')))}")
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
