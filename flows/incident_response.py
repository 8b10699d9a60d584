"""Incident response: read the cluster's metrics, apply the runbook through a governed agent, report."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentops import flow, get_run_logger, task
from agentops.agents import Agent
from agentops.backends.cluster_sim import KnownDeployment

responder = Agent(
    name="incident",
    prompt="incident",
    tools=["get_metrics", "scale_deployment", "create_ticket", "send_email"],
    max_turns=8,
)


@task
def write_report(deployment: str | None, answer: str, actions: list[dict]) -> dict:
    done = [a for a in actions if a["status"] == "ok" and a["name"] != "get_metrics"]
    lines = [f"- {a['name']}({', '.join(f'{k}={v}' for k, v in a['args'].items())}): {a['status']}" for a in actions]
    return {"deployment": deployment, "summary": answer, "actions_taken": len(done), "log": lines}


@flow
def incident_response(deployment: KnownDeployment | None = None,
                      note: Annotated[str, Field(max_length=2000)] = "") -> dict:
    """Handle an operational incident: read metrics, then scale, open a ticket or alert, per the runbook."""
    target = f"deployment {deployment}" if deployment else "all deployments"
    request = f"{note.strip()} Check {target} and apply the runbook.".strip()
    get_run_logger().info("incident on %s: %s", target, note or "no note")
    result = responder.run(request)
    actions = [{"name": o.name, "args": o.args, "status": o.status} for o in result.tool_calls]
    return write_report(deployment, result.answer, actions)
