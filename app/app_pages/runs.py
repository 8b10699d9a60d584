"""Runs: a filtered, paginated list, and one run as people read it: its conversation, each governed call as a
card, a timeline whose waits are waits, its logs and steps, and actions. The view is built in service.run_view."""

from __future__ import annotations

import datetime as dt
import time

import streamlit as st
from ui_kit import run_parts
from ui_kit.render import md_text, state_label, when
from ui_kit.session import SessionUser, current_user, database_key, still_logged_in

from agentops import service
from agentops.core.states import STOPPED_SHORT, State, is_terminal
from agentops.errors import AgentOpsError
from agentops.service import run_view as rv

PAGE_SIZE = 50
ALL = "all"

user = current_user()
assert user is not None
st.title("Runs")


@st.cache_data(ttl=2, show_spinner=False)
def runs_page(database: str, state: str | None, flow: str | None, trigger: str | None, since: float | None,
              page: int) -> tuple[int, list[dict]]:
    filters = {"state": state, "flow": flow, "trigger": trigger, "since": since}
    total = service.count_runs(**filters)
    runs = service.list_runs(**filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    notes = service.run_notes(runs)
    return total, [{"run": r.id, "flow": r.flow_name, "state": state_label(r.state),
                    "duration": service.formatting.run_duration(r),
                    "governed calls": f"⚠ {notes[r.id]}" if notes[r.id] else "", "trigger": r.trigger,
                    "by": r.created_by or "", "created": when(r.created_at)}
                   for r in runs]


def run_list() -> str | None:
    c1, c2, c3, c4 = st.columns(4)
    state = c1.selectbox("State", [ALL, *[s.value for s in State]], key="runs-state")
    flow = c2.selectbox("Flow", [ALL, *service.run_flow_names()], key="runs-flow")
    trigger = c3.selectbox("Trigger", [ALL, "manual", "chat", "schedule", "rerun"], key="runs-trigger")
    since_day = c4.date_input("Since", value=None, key="runs-since")
    since = time.mktime(since_day.timetuple()) if isinstance(since_day, dt.date) else None
    page = int(st.session_state.get("runs-page", 1))
    total, rows = runs_page(database_key(), None if state == ALL else state, None if flow == ALL else flow,
                            None if trigger == ALL else trigger, since, page)
    pages = max(1, -(-total // PAGE_SIZE))
    st.number_input(f"Page (of {pages}; {total} runs)", min_value=1, max_value=pages, step=1, key="runs-page")
    picked = st.dataframe(rows, hide_index=True, key="runs-table", on_select="rerun",
                          selection_mode="single-row", width="stretch")
    chosen = picked.selection.rows if picked else []
    if chosen:
        return rows[chosen[0]]["run"]
    typed = st.text_input("Open a run by id (or its first characters)", key="runs-open",
                          value=st.query_params.get("run", ""))
    return typed.strip() or None


def run_detail(run_id: str, user: SessionUser) -> None:
    try:
        view = service.run_view.run_view(run_id)
    except AgentOpsError as exc:
        st.error(str(exc))
        return
    run = view.run
    st.query_params["run"] = run.id
    live_state(run.id)
    st.caption(f"run `{run.id}` · trigger {run.trigger} · by {run.created_by or 'system'} · "
               f"created {when(run.created_at)}")
    if view.outcome.note:
        st.warning(f"Governed calls that did not go through: {view.outcome.note}", icon=":material/block:")
    if run.state_message and run.state != "AWAITING_APPROVAL":
        st.info(run.state_message)
    if user.can_operate:
        run_actions(run.id, run.state, user)
    left, right = st.columns(2)
    with left.expander("Parameters", expanded=True):
        st.code(rv.pretty(view.parameters), language="json")
    with right.container(border=True, key="run-result"):
        result_box(view)
    if view.timeline.bars:
        st.markdown("**Timeline**")
        st.altair_chart(run_parts.timeline_chart(view.timeline), width="stretch", key="run-timeline")
    for i, conv in enumerate(view.conversations):
        run_parts.conversation(conv, view.cards, key=f"c{i}")
    if view.loose_cards:
        st.markdown("**Governed calls the flow made itself**" if not view.conversations else "**Other calls**")
        for index in view.loose_cards:
            run_parts.tool_card(view.cards[index], f"loose-{index}")
    logs = view.run_logs + [line for step in view.steps for line in step.logs]
    if logs:
        with st.expander(f"Log lines ({len(logs)})", expanded=True):
            st.code("\n".join(f"{when(x.ts)} {x.level:<7} {'step ' + str(x.step_no) if x.step_no else 'flow':<8} "
                              f"{x.message}" for x in sorted(logs, key=lambda x: (x.ts, x.id or 0))), language="text")
    st.markdown("**Steps**")
    for step in view.steps:
        step_detail(step)
    with st.expander("State history (from the audit ledger)"):
        st.dataframe([{"seq": e.seq, "time": when(e.ts), "actor": e.actor, "action": e.action, "step": e.step_no,
                       "payload": e.payload[:200]} for e in view.history], hide_index=True, width="stretch")


def result_box(view: rv.RunView) -> None:
    """What the run returned, its error, or the approval it waits for (linked), never a bare "-"."""
    run = view.run
    if view.waiting:
        st.markdown("**Waiting for**")
        for link in view.waiting:
            st.markdown(f"`{link.action}` · {run_parts.approval_words(link)}")
    elif run.error:
        st.markdown("**Error**")
        st.error(run.error)
    elif run.state == "COMPLETED":
        st.markdown("**Result**")
        if isinstance(view.result, str):
            st.markdown(md_text(view.result))
        else:
            st.code(rv.pretty(view.result), language="json")
    else:
        st.markdown("**Result**")
        st.caption(view.outcome.words)


def step_detail(line: rv.StepLine) -> None:
    step = line.step
    label = f"{line.label} · {step.kind} · {state_label(step.state)}"
    with st.expander(label):
        st.caption(f"attempts {step.attempts} · {rv.duration_words((step.duration_ms or 0) / 1000)} · "
                   f"started {when(step.started_at)}")
        if step.error:
            st.error(step.error)
        if line.agent_step:
            st.caption("shown in the conversation and the call cards above")
            return
        st.markdown("**Inputs**")
        st.code(rv.pretty(line.inputs), language="json")
        if not step.error:
            st.markdown("**Output**")
            st.code(rv.pretty(line.output), language="json")


@st.fragment(run_every=2)
def live_state(run_id: str) -> None:
    """The run's state, refreshed while the page is open."""
    if not still_logged_in(user):
        return
    run = service.get_run(run_id)
    with st.container(key="run-state"):
        st.subheader(f"{run.flow_name} · {state_label(run.state)}")


def run_actions(run_id: str, state: str, user: SessionUser) -> None:
    resume, cancel, rerun, _ = st.columns([1, 1, 1, 5])
    try:
        if state in STOPPED_SHORT and resume.button("Resume", key="run-resume"):
            outcome = service.resume(run_id, user=user.name)
            st.toast(f"resumed: {outcome.state}")
        if not is_terminal(state) and cancel.button("Cancel", key="run-cancel"):
            service.cancel(run_id, user=user.name)
            st.toast("cancelled")
        if rerun.button("Re-run", key="run-rerun"):
            new_id = service.rerun(run_id, user=user.name)
            st.query_params["run"] = new_id
            st.toast(f"queued run {new_id[:12]}")
    except AgentOpsError as exc:
        st.error(str(exc))


selected = run_list()
if selected:
    st.divider()
    run_detail(selected, user)
