"""`agentops demo`: the full loop on a bare machine, with embedded backends and the playbook model."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentops import service
from agentops.core.states import SETTLED
from agentops.errors import AgentOpsError
from agentops.service import schedules

DEMO_USERS = [
    ("ada", "approver", "ada-approves"),
    ("otto", "operator", "otto-operates"),
    ("vera", "viewer", "vera-views"),
    ("root", "admin", "root-administers"),
]
INCIDENT_DEPLOYMENT = "web-app"
INCIDENT_MESSAGE = f"{INCIDENT_DEPLOYMENT} is at 95% CPU, handle it"


@dataclass
class DemoState:
    incident_run_id: str | None = None
    approval_ids: list[str] | None = None
    schedule_ids: list[int] | None = None


def create_demo_users(say: Callable[[str], None]) -> None:
    existing = {u.name for u in service.list_users()}
    for name, role, password in DEMO_USERS:
        if name not in existing:
            service.add_user(name, role, password)
    say("logins (user / password / role):")
    for name, role, password in DEMO_USERS:
        say(f"  {name:<5} {password:<17} {role}")


def seed_schedules(say: Callable[[str], None]) -> list[int]:
    """A realistic weekday 09:00 analysis and a demo cadence so a report lands within minutes."""
    existing = {(s.flow_name, s.cron, s.interval_seconds) for s in schedules.list_schedules()}
    ids = []
    wanted: list[dict[str, Any]] = [dict(flow_name="sales_analysis", cron="0 9 * * 1-5", timezone="Europe/Berlin"),
              dict(flow_name="sales_analysis", interval_seconds=120.0, timezone="UTC")]
    for spec in wanted:
        key = (spec["flow_name"], spec.get("cron"), spec.get("interval_seconds"))
        if key in existing:
            continue
        ids.append(schedules.add_schedule(**spec, parameters={"recipients": ["managers@example.com"]},
                                          user="root"))
    if ids:
        say("scheduled sales_analysis: weekdays 09:00 Europe/Berlin, and every 2 minutes for the demo")
    return ids


def restore_incident_deployment(say: Callable[[str], None]) -> None:
    """Put web-app back to its seeded size, so a second `agentops demo` shows the incident and approval again."""
    restored = service.restore_seeded_deployment(INCIDENT_DEPLOYMENT, actor="system:demo")
    if restored:
        say(f"restored the simulated {INCIDENT_DEPLOYMENT} from {restored[0]} to {restored[1]} replicas "
            "for the demo incident")


def trigger_incident(say: Callable[[str], None]) -> DemoState:
    reply = service.chat_send(INCIDENT_MESSAGE, user="otto")
    say(f'chat (otto): "{INCIDENT_MESSAGE}"')
    say(f"agent: {reply.answer}")
    state = DemoState()
    for started in reply.started_runs:
        deadline = time.time() + 30
        run = service.get_run(started["run_id"])
        while run.state not in SETTLED and time.time() < deadline:
            time.sleep(0.1)
            run = service.get_run(started["run_id"])
        state.incident_run_id = run.id
        state.approval_ids = [a.id for a in service.pending_approvals_for(run.id)]
        say(f"run {run.id[:12]} ({run.flow_name}) is {run.state}")
        for appr in service.pending_approvals_for(run.id):
            say(f"  waiting for approval {appr.id[:12]}: {appr.action} {appr.args}")
    if state.incident_run_id is None:
        raise AgentOpsError(f"the demo incident did not start a flow: {reply.answer}")
    return state
