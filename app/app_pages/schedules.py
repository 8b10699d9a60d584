"""Schedules: when each fires next and its last runs; operators add, pause, resume and delete them."""

from __future__ import annotations

import json

import streamlit as st
from ui_kit.render import md_text, state_label, when
from ui_kit.session import current_user

from agentops import service
from agentops.errors import AgentOpsError
from agentops.service import schedules

user = current_user()
assert user is not None
st.title("Schedules")


def act(operation, schedule_id: int) -> None:  # type: ignore[no-untyped-def]
    try:
        operation(schedule_id, user=user.name)
    except AgentOpsError as exc:
        st.error(str(exc))
        return
    st.rerun()


for schedule in schedules.list_schedules():
    view = schedules.describe(schedule)
    with st.container(border=True, key=f"schedule-{schedule.id}"):
        top, buttons = st.columns([4, 2])
        state = "⏸ paused" if view["paused"] else "▶ active"
        top.markdown(f"**{md_text(view['flow'])}** · {md_text(view['when'])} · {state}")
        fired = (f"last fire {when(view['last_fire_at'], view['timezone'])}" if view["last_fire_at"] is not None
                 else "not fired yet")
        top.caption(f"next fire {when(view['next_fire_at'], view['timezone'])} · {fired} · "
                    f"catch-up {view['catchup']} · "
                    f"parameters: {md_text(schedules.parameters_text(view['flow'], view['parameters']))}")
        recent = schedules.recent_runs(schedule.id or 0, limit=5)
        if recent:
            top.caption("last runs: " + ", ".join(f"`{r.id}` {state_label(r.state)}" for r in recent))
        if user.can_schedule:
            toggle = schedules.resume_schedule if view["paused"] else schedules.pause_schedule
            if buttons.button("Resume" if view["paused"] else "Pause", key=f"schedule-toggle-{schedule.id}"):
                act(toggle, schedule.id or 0)
            if buttons.button("Delete", key=f"schedule-delete-{schedule.id}"):
                act(schedules.delete_schedule, schedule.id or 0)

if user.can_schedule:
    with st.form("schedule-add"):
        st.markdown("**Add a schedule**")
        flow = st.selectbox("Flow", [f.name for f in service.list_flows()], key="schedule-flow")
        kind = st.radio("Cadence", ["cron", "interval"], horizontal=True, key="schedule-kind")
        cron = st.text_input("Cron expression", value="0 9 * * 1-5", key="schedule-cron")
        interval = st.number_input("Interval (seconds)", min_value=1.0, value=3600.0, key="schedule-interval")
        timezone = st.text_input("Timezone", value="UTC", key="schedule-tz")
        params = st.text_area("Parameters (JSON)", value="{}", key="schedule-params")
        if st.form_submit_button("Add", key="schedule-add-submit"):
            try:
                schedules.add_schedule(flow, cron=cron if kind == "cron" else None,
                                       interval_seconds=interval if kind == "interval" else None,
                                       timezone=timezone, parameters=json.loads(params or "{}"), user=user.name)
                st.rerun()
            except (AgentOpsError, json.JSONDecodeError) as exc:
                st.error(str(exc))
