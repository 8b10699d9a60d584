"""Runs: a filtered, paginated list, and one run's timeline, steps, model and tool calls, and actions."""

from __future__ import annotations

import datetime as dt
import time

import altair as alt
import streamlit as st
from ui_kit.render import pretty, state_label, when
from ui_kit.session import SessionUser, current_user, database_key, still_logged_in

from agentops import service
from agentops.core.states import STOPPED_SHORT, State, is_terminal
from agentops.errors import AgentOpsError
from agentops.service import views

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
    return total, [{"run": r.id, "flow": r.flow_name, "state": state_label(r.state), "trigger": r.trigger,
                    "by": r.created_by or "", "created": when(r.created_at),
                    "duration": f"{(r.ended_at - r.started_at):.2f} s" if r.ended_at and r.started_at else ""}
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
        detail = service.run_detail(run_id)
    except AgentOpsError as exc:
        st.error(str(exc))
        return
    run = detail.run
    st.query_params["run"] = run.id
    live_state(run.id)
    st.caption(f"run `{run.id}` · trigger {run.trigger} · by {run.created_by or 'system'} · "
               f"created {when(run.created_at)}")
    if run.state_message:
        st.info(run.state_message)
    for waiting in service.pending_approvals_for(run.id):
        st.markdown(f"[Open the approval it waits for: `{waiting.action}` · {waiting.id[:12]}]"
                    f"(/approvals?request={waiting.id})")
    if user.can_operate:
        run_actions(run.id, run.state, user)
    left, right = st.columns(2)
    left.markdown("**Parameters**")
    left.code(pretty(views.decoded(run.parameters)), language="json")
    right.markdown("**Result**" if run.state == "COMPLETED" else "**Error**" if run.error else "**Result**")
    right.code(pretty(views.decoded(run.result) if run.result else run.error or "-"), language="json")
    timeline = views.timeline_rows(detail.steps)
    if timeline:
        chart = alt.Chart(alt.Data(values=timeline)).mark_bar().encode(
            x=alt.X("start:T", title="time"), x2="end:T", y=alt.Y("step:N", sort=None, title=None),
            color=alt.Color("state:N"), tooltip=["step:N", "kind:N", "state:N", "duration_ms:Q"])
        st.altair_chart(chart.properties(height=max(80, 24 * len(timeline))), width="stretch",
                        key="run-timeline")
    for step in detail.steps:
        facts = views.step_facts(step)
        label = f"{step.step_no}. {step.name} · {step.kind} · {state_label(step.state)}"
        with st.expander(label):
            st.caption(f"attempts {step.attempts} · {step.duration_ms or 0:.1f} ms · tokens {step.tokens} · "
                       f"started {when(step.started_at)}")
            meta = facts["meta"]
            if step.kind == "model":
                st.markdown(f"**Model** {meta.get('model', '?')} · usage {meta.get('usage', {})}")
                for line in views.conversation_lines(meta.get("messages_in", []) if isinstance(meta, dict)
                                                       else []):
                    st.markdown(f"**{line['role']}**: {line['text']}")
            if isinstance(meta, dict) and meta.get("verdict"):
                st.markdown(f"**Verdict** `{pretty(meta['verdict'])}`")
            st.markdown("**Inputs**")
            st.code(pretty(facts["inputs"]), language="json")
            st.markdown("**Output**" if not step.error else "**Error**")
            st.code(step.error or pretty(facts["output"]))
            logs = [line for line in detail.logs if line.step_no == step.step_no]
            if logs:
                st.code("\n".join(f"{when(x.ts)} {x.level:<7} {x.message}" for x in logs))
    with st.expander("State history (from the audit ledger)"):
        st.dataframe([{"seq": e.seq, "time": when(e.ts), "actor": e.actor, "action": e.action, "step": e.step_no,
                       "payload": e.payload[:200]} for e in detail.history], hide_index=True, width="stretch")


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
