"""Chat: the dispatcher agent starts the right flow; progress streams in; approvals can be decided inline."""

from __future__ import annotations

import time

import streamlit as st
from ui_kit.approval_card import approval_card
from ui_kit.render import state_label
from ui_kit.session import SessionUser, current_user

from agentops import service
from agentops.core.states import SETTLED
from agentops.errors import AgentOpsError
from agentops.service import views

FOLLOW_SECONDS = 30.0

user = current_user()
assert user is not None
st.title("Chat")
st.caption('Ask for an automation, e.g. "web-app is at 95% CPU, handle it". Started flows are governed runs.')


def follow(run_id: str) -> str:
    """Stream a run's steps as they are recorded, until it settles or waits for a person."""
    with st.status(f"run {run_id[:12]}", expanded=True) as status:
        seen: set[int] = set()
        deadline = time.time() + FOLLOW_SECONDS
        run = service.get_run(run_id)
        while True:
            detail = service.run_detail(run_id)
            run = detail.run
            for step in detail.steps:
                if step.step_no not in seen and step.state not in ("RUNNING", "PENDING"):
                    seen.add(step.step_no)
                    st.write(f"{step.step_no}. {step.name} → {state_label(step.state)}")
            if run.state in SETTLED or time.time() > deadline:
                break
            time.sleep(0.3)
        status.update(label=f"{run.flow_name}: {service.run_outcome(run_id).words}"[:200],
                      state="complete" if run.state in ("COMPLETED", "AWAITING_APPROVAL") else "running"
                      if run.state not in SETTLED else "error")
    return run.state


def show_pending(run_id: str, user: SessionUser) -> None:
    for approval in service.pending_approvals_for(run_id):
        approval_card(views.approval_view(approval), user, scope="chat")


conversation = st.session_state.setdefault("chat_conversation", None)
for message in service.chat_history(conversation) if conversation else []:
    with st.chat_message("user" if message.role == "user" else "assistant"):
        st.markdown(message.content)
        if message.run_id:
            st.caption(f"run `{message.run_id}`")
            show_pending(message.run_id, user)

if not user.can_operate:
    st.info(f"Your role ({user.role}) can read conversations but not start automations.")
elif prompt := st.chat_input("Describe what needs doing", key="chat-input"):
    with st.chat_message("user"):
        st.markdown(prompt)
    with st.chat_message("assistant"):
        try:
            reply = service.chat_send(prompt, user=user.name, conversation_id=conversation)
        except AgentOpsError as exc:
            st.error(str(exc))
            st.stop()
        st.session_state["chat_conversation"] = reply.conversation_id
        st.markdown(reply.answer)
        if reply.waiting:
            show_pending(reply.dispatch_run_id, user)
        for started in reply.started_runs:
            follow(started["run_id"])
            outcome = service.run_outcome(started["run_id"])
            st.markdown(f"**{outcome.flow}** {outcome.words}")
            show_pending(started["run_id"], user)
