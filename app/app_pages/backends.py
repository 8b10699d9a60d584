"""The embedded tool backends: mail in the outbox, tickets, and the simulated cluster."""

from __future__ import annotations

import streamlit as st
from ui_kit.render import when

from agentops.service import views

st.title("Outbox, tickets and cluster")
st.caption("What approved actions did, in the embedded backends the demo runs on.")
outbox, tickets, cluster = st.tabs(["Outbox", "Tickets", "Cluster"])

with outbox:
    mails = views.outbox()
    st.markdown(f"**{len(mails)} message{'' if len(mails) == 1 else 's'}**" if mails else "No mail sent yet.")
    for mail in mails:
        with st.expander(f"{when(mail.created_at)} · {mail.subject} → {mail.to}"):
            detail = mail.server_reply or mail.failure
            st.caption(f"from {mail.sender} · run `{mail.run_id or '-'}` · key `{mail.idempotency_key}` · "
                       f"{mail.status}{f': {detail}' if detail else ''}")
            st.text(mail.body)
            for item in views.attachments(mail):
                image = views.chart_image(item.get("chart", ""))
                if image:
                    st.image(image, caption=item.get("name"))

with tickets:
    opened = views.tickets()
    if not opened:
        st.caption("No tickets yet.")
    else:
        st.dataframe([{"id": t.id, "title": t.title, "priority": t.priority, "status": t.status,
                       "assignee": t.assignee or "", "run": t.run_id or "", "created": when(t.created_at)}
                      for t in opened], hide_index=True, width="stretch", key="tickets-table")

with cluster:
    state = views.cluster()
    for column, deployment in zip(st.columns(max(1, len(state["deployments"]))), state["deployments"], strict=False):
        with column.container(key=f"cluster-{deployment.name}"):
            st.metric(deployment.name, f"{deployment.replicas} replicas", f"{deployment.cpu_percent:.0f}% CPU",
                      delta_color="off", delta_arrow="off")  # CPU now, not a change: no arrow
    st.dataframe([{"deployment": d.name, "replicas": d.replicas, "cpu %": round(d.cpu_percent, 1),
                   "error rate %": round(d.error_rate * 100 if d.error_rate < 1 else d.error_rate, 2),
                   "p95 ms": round(d.p95_latency_ms), "updated": when(d.updated_at)}
                  for d in state["deployments"]], hide_index=True, width="stretch", key="cluster-table")
    st.markdown("**Scale actions**" if state["scale_events"] else "**Scale actions**: none yet.")
    if state["scale_events"]:
        st.dataframe([{"time": when(e.ts), "deployment": e.deployment, "from": e.from_replicas,
                       "to": e.to_replicas, "run": e.run_id or ""} for e in state["scale_events"]],
                     hide_index=True, width="stretch", key="scale-events")
