"""Audit: search the tamper-evident ledger, verify its hash chain, export JSON lines for a SIEM. Each event reads
as a line of words; selecting one shows its whole payload."""

from __future__ import annotations

import datetime as dt
import time

import streamlit as st
from ui_kit.render import pretty, when

from agentops import service
from agentops.service import audit_words

st.title("Audit ledger")

verify_col, export_col = st.columns(2)
if verify_col.button("Verify the chain", key="audit-verify", type="primary"):
    report = service.audit_verify()
    (st.success if report.ok else st.error)(report.line())
export_col.download_button("Export JSONL", data=lambda: "\n".join(service.audit_export()) + "\n",
                           file_name="agentops-ledger.jsonl", mime="application/jsonl", key="audit-export")

c1, c2, c3, c4 = st.columns(4)
actor = c1.text_input("Actor", key="audit-actor", placeholder="user:ada, agent:incident, system:engine")
action = c2.text_input("Action", key="audit-action", placeholder="approval.decided, run.state ...")
run_id = c3.text_input("Run id", key="audit-run")
day = c4.date_input("On or after", value=None, key="audit-since")
since = time.mktime(day.timetuple()) if isinstance(day, dt.date) else None
events = service.audit_search(actor=actor.strip() or None, action=action.strip() or None,
                              run_id=run_id.strip() or None, since=since, limit=500)
st.caption(f"{len(events)} most recent matching events (of {service.audit_count()} in the ledger); "
           "select one to see its whole payload")
payloads = [audit_words.payload_of(e.payload) for e in events]
picked = st.dataframe(
    [{"seq": e.seq, "time": when(e.ts), "actor": e.actor, "action": e.action,
      "what": audit_words.event_summary(e.action, payload), "run": e.run_id or "",
      "step": "" if e.step_no is None else str(e.step_no), "approval": e.approval_id or ""}
     for e, payload in zip(events, payloads, strict=True)],
    hide_index=True, width="stretch", key="audit-events", on_select="rerun", selection_mode="single-row",
    column_config={"what": st.column_config.TextColumn(width="large")})
chosen = picked.selection.rows if picked else []
if chosen:
    event, payload = events[chosen[0]], payloads[chosen[0]]
    with st.container(border=True, key="audit-detail"):
        st.markdown(f"**#{event.seq} · {event.action}** by {event.actor} · {when(event.ts)}")
        ids = [f"run `{event.run_id}`" if event.run_id else "", f"step {event.step_no}" if event.step_no else "",
               f"approval `{event.approval_id}`" if event.approval_id else ""]
        st.caption(" · ".join(i for i in ids if i) + f" · hash `{event.hash}` · previous `{event.prev_hash}`")
        st.code(pretty(payload), language="json", wrap_lines=True)
