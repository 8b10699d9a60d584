"""Maker-checker covers the people behind a run: its requester, whoever started it, and whoever started the
run that started it (a chat message, a schedule, a parent flow), on every face; unless the policy opts in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from agentops import flow, request_approval, service
from agentops.core import serialization
from agentops.db import open_store
from agentops.engine.project import load_project
from agentops.engine.runner import create_run
from agentops.engine.toolkit import current_run_id
from agentops.engine.worker import Worker
from agentops.errors import ApprovalError
from agentops.governance.approvals import decide
from agentops.governance.users import add_user
from agentops.scheduling import schedules
from agentops.scheduling.scheduler import Scheduler
from tests.app_fixtures import add_repository_content, copy_tools
from tests.test_cli import agentops

POLICY = """
tools:
  scale_deployment:
    verdict: require_approval
    self_approval: {self_approval}
"""


@flow
def mc_scale(replicas: int = 12) -> dict:
    decision = request_approval("scale_deployment", {"name": "web-app", "replicas": replicas}, reason="hot")
    return {"kind": decision.kind, "args": decision.args, "self_approved": decision.self_approved}


@flow
def mc_dispatch() -> str:
    """Queues mc_scale as its child, naming nobody as its creator (only the parent run knows the person)."""
    return create_run(mc_scale, {}, trigger="chat", parent_run_id=current_run_id(), store=open_store())


@pytest.fixture
def team(project: Path) -> Path:
    copy_tools(project)
    write_policy(project, self_approval=False)
    st = open_store()
    for name in ("carol", "alice"):
        add_user(st, name, "approver", "correct horse battery")
    return project


def write_policy(project: Path, *, self_approval: bool) -> None:
    (project / "policies").mkdir(exist_ok=True)
    (project / "policies" / "default.yaml").write_text(POLICY.format(self_approval=str(self_approval).lower()))


def drain() -> None:
    Worker(open_store(), poll_seconds=0.01).run(burst=True)


def only_pending(run_id: str) -> str:
    [appr] = open_store().list_approvals(run_id=run_id)
    assert appr.status == "pending" and open_store().get_run(run_id).state == "AWAITING_APPROVAL"
    return appr.id


def decisions_recorded() -> list[str]:
    return [e.action for e in open_store().search_ledger(action="approval.") if e.action != "approval.requested"]


@pytest.mark.parametrize("kind", ["approve", "edit", "reject", "respond"])
def test_the_person_who_started_the_run_cannot_decide_its_approval(team: Path, kind: str) -> None:
    run_id = service.start_run("mc_scale", {}, user="carol")
    drain()
    appr_id = only_pending(run_id)
    with pytest.raises(ApprovalError, match=r"user 'carol' started the run behind .*maker-checker"):
        decide(open_store(), appr_id, kind, user="carol", message="no",
               edited_args={"name": "web-app", "replicas": 4})
    assert open_store().get_approval(appr_id).status == "pending"
    assert decisions_recorded() == [] and open_store().votes_for(appr_id) == []
    decide(open_store(), appr_id, "approve", user="alice")
    drain()
    assert serialization.loads(open_store().get_run(run_id).result)["self_approved"] is False


def test_a_run_queued_by_another_run_is_guarded_by_whoever_started_the_first(team: Path) -> None:
    parent = service.start_run("mc_dispatch", {}, user="carol")
    drain()
    child = serialization.loads(open_store().get_run(parent).result)
    assert open_store().get_run(child).created_by is None and open_store().get_run(child).parent_run_id == parent
    appr_id = only_pending(child)
    with pytest.raises(ApprovalError, match="'carol' started the run behind"):
        decide(open_store(), appr_id, "approve", user="carol")
    assert decide(open_store(), appr_id, "approve", user="alice").decided_by == ["alice"]


@pytest.mark.parametrize("parent", ["nosuch-run", "SELF"])
def test_a_run_whose_lineage_cannot_be_established_cannot_be_decided(team: Path, parent: str) -> None:
    run_id = service.start_run("mc_scale", {}, user="carol")
    drain()
    appr_id = only_pending(run_id)
    with open_store().engine.begin() as conn:  # someone with write access hides who started it
        conn.execute(text("UPDATE flow_runs SET created_by = NULL, parent_run_id = :p WHERE id = :id"),
                     {"p": run_id if parent == "SELF" else parent, "id": run_id})
    with pytest.raises(ApprovalError, match="who started the run cannot be established"):
        decide(open_store(), appr_id, "approve", user="alice")
    assert open_store().get_approval(appr_id).status == "pending"


def test_a_scheduled_run_is_guarded_by_the_schedules_owner(team: Path) -> None:
    add_user(open_store(), "root", "admin", "correct horse battery")  # schedules are an operator's or an admin's
    sid = schedules.add_schedule("mc_scale", interval_seconds=60.0, user="root")
    [run_id] = Scheduler(open_store(), "s").tick(now=open_store().get_schedule(sid).next_fire_at + 0.1)
    assert open_store().get_run(run_id).created_by == "root"
    drain()
    with pytest.raises(ApprovalError, match="'root' started the run behind"):
        decide(open_store(), only_pending(run_id), "approve", user="root")


def test_self_approval_when_the_policy_opts_in_is_recorded_as_such(team: Path) -> None:
    write_policy(team, self_approval=True)
    run_id = service.start_run("mc_scale", {}, user="carol")
    drain()
    appr_id = only_pending(run_id)
    decision = decide(open_store(), appr_id, "approve", user="carol")
    assert decision is not None and decision.self_approved and decision.decided_by == ["carol"]
    [event] = open_store().search_ledger(action="approval.decided")
    payload = json.loads(event.payload)
    assert event.actor == "user:carol" and payload["self_approved"] is True
    assert json.loads(open_store().get_approval(appr_id).decision)["self_approved"] is True
    drain()
    assert serialization.loads(open_store().get_run(run_id).result) == {
        "kind": "approve", "args": {"name": "web-app", "replicas": 12}, "self_approved": True}


def test_an_approval_by_someone_else_is_not_self_approved_even_when_allowed(team: Path) -> None:
    write_policy(team, self_approval=True)
    run_id = service.start_run("mc_scale", {}, user="carol")
    drain()
    assert decide(open_store(), only_pending(run_id), "approve", user="alice").self_approved is False
    assert json.loads(open_store().search_ledger(action="approval.decided")[0].payload)["self_approved"] is False


def test_a_chat_user_cannot_approve_the_flow_their_message_started(ops_db_project: Path) -> None:
    add_repository_content(ops_db_project)
    for name in ("carol", "ada"):
        service.add_user(name, "approver", "correct horse battery")
    reply = service.chat_send("web-app is at 95% CPU, handle it", user="carol")
    [started] = reply.started_runs
    drain()
    run = service.get_run(started["run_id"])
    assert run.flow_name == "incident_response" and run.parent_run_id == reply.dispatch_run_id
    [pending] = service.pending_approvals_for(run.id)
    assert pending.action == "scale_deployment"
    with pytest.raises(ApprovalError, match="'carol' started the run behind"):
        service.decide(pending.id, "approve", user="carol")
    assert service.decide(pending.id, "approve", user="ada") is not None
    drain()
    assert service.get_run(run.id).state == "COMPLETED" and open_store().deployment("web-app").replicas == 12


CLI_FLOW = '''
from agentops import flow, request_approval


@flow
def risky(replicas: int) -> dict:
    decision = request_approval("scale_deployment", {"name": "web-app", "replicas": replicas}, reason="hot")
    return {"kind": decision.kind, "self_approved": decision.self_approved}
'''


def test_the_cli_refuses_the_runs_creator_unless_the_policy_allows_it(project: Path, monkeypatch) -> None:
    (project / "flows" / "risky.py").write_text(CLI_FLOW)
    copy_tools(project)
    write_policy(project, self_approval=False)
    for name in ("carol", "alice"):
        service.add_user(name, "approver", "correct horse battery")
    run_id = json.loads(agentops("run", "risky", "-p", "replicas=12", "--as", "carol", "--json").stdout)["run_id"]
    assert service.get_run(run_id).created_by == "carol"
    appr = only_pending(run_id)

    refused = agentops("approvals", "approve", appr, "--as", "carol")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith(f"error: user 'carol' started the run behind approval {appr} and cannot")
    assert len(refused.stderr.strip().splitlines()) == 1
    monkeypatch.setenv("AGENTOPS_USER", "carol")  # the same person through the environment
    assert agentops("approvals", "approve", appr).returncode == 2
    assert service.get_approval(appr).status == "pending"

    write_policy(project, self_approval=True)
    assert agentops("approvals", "approve", appr).returncode == 0
    load_project()
    drain()
    assert serialization.loads(service.get_run(run_id).result) == {"kind": "approve", "self_approved": True}
