"""Chat: the dispatcher agent starts the right flow; progress streams in; approvals can be decided inline."""

from __future__ import annotations

import json
import time

import streamlit as st
from ui_kit.approval_card import approval_card
from ui_kit.render import md_text, state_label, when
from ui_kit.session import SessionUser, current_user, still_logged_in

from agentops import service
from agentops.core.states import SETTLED, TERMINAL, State
from agentops.errors import AgentOpsError
from agentops.service import views
from agentops.service.outcomes import Outcome

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


def conversation_list(user: SessionUser, current: str | None, owner: str) -> None:
    """The stored conversations, the latest first; one click (or the URL, after a reload) reopens one."""
    with st.sidebar:
        st.markdown("**Conversations**")
        if user.can_operate and st.button("New conversation", key="chat-new", icon=":material/add:"):
            st.query_params.pop("conversation", None)
            st.rerun()
        mine = user.can_operate and owner == user.name  # someone else's conversation opens the list of everyone's
        whose = st.radio("Show", ["mine", "everyone's"], index=0 if mine else 1, horizontal=True,
                         key="chat-whose", label_visibility="collapsed")
        listed = service.chat_conversations(owner=user.name if whose == "mine" else None, limit=50)
        if not listed:
            st.caption("No conversations yet.")
        for c in listed:
            title = c.first_message if len(c.first_message) <= 48 else c.first_message[:47] + "…"
            owner = "" if c.owner == user.name else f" · {c.owner or 'nobody'}"
            label = f"{md_text(title)}{md_text(owner)} · {when(c.last_at)}"
            if st.button(label, key=f"conversation-{c.conversation_id}", width="stretch",
                         type="primary" if c.conversation_id == current else "secondary"):
                st.query_params["conversation"] = c.conversation_id
                st.rerun()


conversation = st.query_params.get("conversation") or None
owner = user.name
if conversation:
    try:
        owner = service.conversation_owner(conversation) or ""
    except AgentOpsError as exc:
        st.error(str(exc))
        conversation = None
        owner = user.name
conversation_list(user, conversation, owner)

def dispatch_result(run_id: str) -> dict:
    """The dispatcher run's result (its answer and the runs it started); empty while it has not completed."""
    raw = service.get_run(run_id).result
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def reply_runs(run_id: str, answered: str) -> tuple[dict, list[str]]:
    """The runs a reply stands for: the dispatcher's own when its stored answer was written before it finished (it
    waited for an approval), and each run it started."""
    result = dispatch_result(run_id)
    runs = [] if result.get("answer") == answered else [run_id]
    runs += [started["run_id"] for started in result.get("started", []) if started.get("run_id")]
    return result, runs


def outcome_words(outcome: Outcome, dispatched: dict | None) -> str:
    """The outcome in words; a wait names the requests only, since their cards follow with every argument."""
    if outcome.waiting:
        asked = ", ".join(f"`{w.action}`" for w in outcome.waiting)
        words = f"waiting for an approver to decide {asked}" + (f" ({outcome.note})" if outcome.note else "")
    elif dispatched is not None and outcome.state == "COMPLETED":
        words = f"completed: {dispatched.get('answer', '')}"
    else:
        words = outcome.words
    return words


def reply_status(run_id: str, answered: str, user: SessionUser) -> None:
    """Each of a reply's runs' outcome in words and the approvals they wait for, decidable here by an approver."""
    if not still_logged_in(user):
        return
    result, runs = reply_runs(run_id, answered)
    with st.container(key=f"chat-status-{run_id}"):
        for shown in runs:
            outcome = service.run_outcome(shown)
            with st.container(key=f"chat-outcome-{shown}"):
                text = outcome_words(outcome, result if shown == run_id else None)
                st.markdown(f"**{md_text(outcome.flow)}** {text if outcome.waiting else md_text(text)}")
                st.caption(f"run `{shown}` · {state_label(outcome.state)}")
            show_pending(shown, user)
        if run_id not in runs:
            show_pending(run_id, user)


# The same, redrawn every 2 s while one of the runs has not finished (an approval decided elsewhere shows).
live_reply_status = st.fragment(run_every=2)(reply_status)


def show_reply_status(run_id: str, answered: str, user: SessionUser) -> None:
    _, runs = reply_runs(run_id, answered)
    moving = any(State(service.get_run(r).state) not in TERMINAL for r in [run_id, *runs])
    (live_reply_status if moving else reply_status)(run_id, answered, user)


flash = st.session_state.pop("approvals_flash", None)
if flash:
    st.success(flash)

with st.container(key="chat-history"):
    for message in service.chat_history(conversation) if conversation else []:
        with st.chat_message("user" if message.role == "user" else "assistant"):
            if message.role == "user" and message.user and message.user != user.name:
                st.caption(message.user)
            st.markdown(message.content)
            if message.run_id:
                st.caption(f"run `{message.run_id}`")
                show_reply_status(message.run_id, message.content, user)

if not user.can_operate:
    st.info(f"Your role ({user.role}) can read conversations but not start automations.")
elif owner != user.name:
    st.info(f"This is {owner or 'nobody'}'s conversation: you can read it, not write in it. "
            "Start a new one to ask for something.")
elif prompt := st.chat_input("Describe what needs doing", key="chat-input"):
    with st.chat_message("user"):
        st.markdown(prompt)
    with st.chat_message("assistant"):
        try:
            reply = service.chat_send(prompt, user=user.name, conversation_id=conversation)
        except AgentOpsError as exc:
            st.error(str(exc))
            st.stop()
        st.query_params["conversation"] = reply.conversation_id
        st.markdown(reply.answer)
        for started in reply.started_runs:
            follow(started["run_id"])
    st.rerun()  # the reply is in the history now, where its outcome and approvals stay current
