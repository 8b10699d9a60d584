"""Approvals inbox: pending requests (refreshing on their own), and every decided or expired one."""

from __future__ import annotations

import streamlit as st
from ui_kit.approval_card import approval_card, approval_group
from ui_kit.render import when
from ui_kit.session import current_user, still_logged_in

from agentops import service
from agentops.errors import AgentOpsError
from agentops.service import views

user = current_user()
assert user is not None
st.title("Approvals")
flash = st.session_state.pop("approvals_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

requested = st.query_params.get("request")
if requested:
    # A link (a notification's, say) opens the request's card; deciding is still a click on the card.
    with st.container(key="linked-request"):
        try:
            linked = service.get_approval(requested)
        except AgentOpsError as exc:
            st.error(str(exc))
        else:
            st.subheader("The request you followed")
            approval_card(views.approval_view(linked), user, scope="link")
        if st.button("Show the whole inbox", key="linked-close"):
            del st.query_params["request"]
            st.rerun()
    st.divider()


@st.fragment(run_every=3)
def pending_requests() -> None:
    if not still_logged_in(user):
        return
    pending = service.list_approvals("pending")
    st.markdown(f"**{len(pending)} waiting**" if pending else "Nothing is waiting for a decision.")
    for group in views.pending_groups(pending):
        approval_group(group, user)


pending_requests()

st.divider()
st.subheader("Decided and expired")
status = st.selectbox("Status", ["all decided", "approved", "edited", "rejected", "responded", "expired"],
                      key="history-status")
history = [a for a in service.list_approvals("all", limit=500) if a.status != "pending"]
if status != "all decided":
    history = [a for a in history if a.status == status]
rows = []
for a in history:
    decision = views.decoded(a.decision) or {}
    rows.append({"id": a.id, "request": service.formatting.approval_title(a.action, views.decoded(a.args) or {}),
                 "status": a.status, "decided by": a.decided_by or "-", "decided at": when(a.decided_at),
                 "message": decision.get("message") or "",
                 "arguments": decision.get("args", a.args), "run": a.run_id or ""})
if rows:
    st.dataframe(rows, hide_index=True, key="approvals-history", width="stretch")
else:
    st.caption("No decided or expired requests yet." if status == "all decided" else f"None {status} yet.")
