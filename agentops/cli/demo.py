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


SALES_PARAMETERS: dict[str, Any] = {"recipients": ["managers@example.com"]}


def seed_schedules(say: Callable[[str], None]) -> list[int]:
    """The sales analysis on weekdays at 09:00 Europe/Berlin, as a team would schedule it."""
    sid = schedules.add_schedule("sales_analysis", cron="0 9 * * 1-5", timezone="Europe/Berlin",
                                 parameters=SALES_PARAMETERS, user="root")
    say("scheduled sales_analysis: weekdays at 09:00 Europe/Berlin, emailing managers@example.com")
    return [sid]


def start_sales_run(say: Callable[[str], None]) -> str:
    """One sales analysis now, so that a report is in the outbox without waiting for 09:00."""
    run_id = service.start_run("sales_analysis", SALES_PARAMETERS, user="otto", trigger="demo")
    say(f"queued one sales_analysis run now ({run_id}); its report lands on the Outbox page")
    return run_id


def wait_settled(run_id: str, seconds: float = 60.0) -> str:
    """Wait for a queued run to complete, fail or wait for a person; its state."""
    deadline = time.time() + seconds
    run = service.get_run(run_id)
    while run.state not in SETTLED and time.time() < deadline:
        time.sleep(0.1)
        run = service.get_run(run_id)
    return run.state


def trigger_incident(say: Callable[[str], None]) -> DemoState:
    reply = service.chat_send(INCIDENT_MESSAGE, user="otto")
    say(f'chat (otto): "{INCIDENT_MESSAGE}"')
    say(f"agent: {reply.answer}")
    state = DemoState()
    for started in reply.started_runs:
        wait_settled(started["run_id"], 30)
        outcome = service.run_outcome(started["run_id"])
        state.incident_run_id = outcome.run_id
        state.approval_ids = [w.id for w in outcome.waiting]
        say(f"run {outcome.run_id} ({outcome.flow}): {outcome.words}")
    if state.incident_run_id is None:
        raise AgentOpsError(f"the demo incident did not start a flow: {reply.answer}")
    return state
