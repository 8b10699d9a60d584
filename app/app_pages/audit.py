"""Audit: search the tamper-evident ledger, verify its hash chain, export JSON lines for a SIEM."""

from __future__ import annotations

import datetime as dt
import time

import streamlit as st
from ui_kit.render import when

from agentops import service

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
st.caption(f"{len(events)} most recent matching events (of {service.audit_count()} in the ledger)")
st.dataframe([{"seq": e.seq, "time": when(e.ts), "actor": e.actor, "action": e.action,
               "run": (e.run_id or "")[:12], "step": "" if e.step_no is None else str(e.step_no),
               "approval": (e.approval_id or "")[:12],
               "payload": e.payload, "hash": e.hash[:16]} for e in events],
             hide_index=True, width="stretch", key="audit-events")
