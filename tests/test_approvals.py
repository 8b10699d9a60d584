"""Approvals are bound to exact arguments, used once, maker-checked, role-checked and fail closed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentops import flow, request_approval, task
from agentops.core import serialization
from agentops.core.states import State
from agentops.engine.runner import create_run, execute_run
from agentops.engine.worker import Worker
from agentops.errors import ApprovalError, PermissionDenied
from agentops.governance.approvals import decide, expire_due
from agentops.governance.users import add_user
from tests.app_fixtures import copy_tools

effects: list[dict] = []


@task
def apply_scale(name: str, replicas: int) -> dict:
    effects.append({"name": name, "replicas": replicas})
    return {"name": name, "replicas": replicas}


@flow
def guarded_scale(name: str, replicas: int, expires_in: float | None = None, quorum: int = 1) -> dict:
    decision = request_approval("scale_deployment", {"name": name, "replicas": replicas},
                                reason=f"{name} is hot", expires_in=expires_in, requester="user:maker",
                                quorum=quorum)
    if not decision.approved:
        return {"decision": decision.kind, "message": decision.message}
    return {"decision": decision.kind, "applied": apply_scale(**decision.args)}


POLICY = """
tools:
  scale_deployment:
    verdict: require_approval
    constraints:
      replicas: {min: 1, max: 20}
"""


@pytest.fixture
def people(store, project: Path):
    """Approvers, a viewer and a policy naming the flow's action (an edit is screened against it)."""
    copy_tools(project)
    (project / "policies").mkdir(exist_ok=True)
    (project / "policies" / "approvals.yaml").write_text(POLICY)
    for name, role in [("maker", "approver"), ("alice", "approver"), ("bob", "approver"), ("vic", "viewer")]:
        add_user(store, name, role, "correct horse battery")
    return store


def pause(store, **params) -> tuple[str, str]:
    run_id = create_run(guarded_scale, {"name": "web-app", "replicas": 12, **params}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    run = store.get_run(run_id)
    assert run.state == "AWAITING_APPROVAL" and run.worker_id is None
    [appr] = store.list_approvals(run_id=run_id)
    return run_id, appr.id


def finish(store, run_id: str) -> dict:
    Worker(store, poll_seconds=0.01).run(burst=True)
    run = store.get_run(run_id)
    assert run.state == "COMPLETED", run.error
    return serialization.loads(run.result)


def test_approval_pauses_the_run_and_approve_completes_it_with_the_approver_recorded(people) -> None:
    effects.clear()
    run_id, appr_id = pause(people)
    appr = people.get_approval(appr_id)
    assert appr.args_digest == serialization.digest({"name": "web-app", "replicas": 12})
    assert appr.reason == "web-app is hot" and appr.requester == "user:maker"
    decision = decide(people, appr_id, "approve", user="alice", args_digest=appr.args_digest)
    assert decision.approved and decision.decided_by == ["alice"]
    assert finish(people, run_id) == {"decision": "approve", "applied": {"name": "web-app", "replicas": 12}}
    assert effects == [{"name": "web-app", "replicas": 12}]
    decided = people.search_ledger(action="approval.decided")[0]
    assert decided.actor == "user:alice" and decided.approval_id == appr_id


def test_requester_cannot_approve_their_own_request(people) -> None:
    _, appr_id = pause(people)
    with pytest.raises(ApprovalError, match="maker-checker"):
        decide(people, appr_id, "approve", user="maker")
    assert people.get_approval(appr_id).status == "pending"


def test_a_decision_is_used_once(people) -> None:
    _, appr_id = pause(people)
    decide(people, appr_id, "approve", user="alice")
    with pytest.raises(ApprovalError, match="already approved by alice"):
        decide(people, appr_id, "reject", user="bob", message="too late")


def test_a_stale_digest_is_refused(people) -> None:
    _, appr_id = pause(people)
    stale = serialization.digest({"name": "web-app", "replicas": 4})
    with pytest.raises(ApprovalError, match="stale decision"):
        decide(people, appr_id, "approve", user="alice", args_digest=stale)


def test_only_approvers_may_decide(people) -> None:
    _, appr_id = pause(people)
    with pytest.raises(PermissionDenied, match="role 'viewer'"):
        decide(people, appr_id, "approve", user="vic")
    with pytest.raises(PermissionDenied, match="unknown user 'mallory'"):
        decide(people, appr_id, "approve", user="mallory")


def test_expiry_fails_closed_and_is_recorded_as_expired(people) -> None:
    effects.clear()
    run_id, appr_id = pause(people, expires_in=0.2)
    time.sleep(0.3)
    with pytest.raises(ApprovalError, match="expired"):
        decide(people, appr_id, "approve", user="alice")
    assert people.get_approval(appr_id).status == "expired"
    assert finish(people, run_id) == {"decision": "expired", "message": "the approval request expired"}
    assert effects == []
    assert people.search_ledger(action="approval.expired")[0].approval_id == appr_id
    assert people.search_ledger(action="approval.decided") == []


def test_edit_runs_the_edited_arguments(people) -> None:
    effects.clear()
    run_id, appr_id = pause(people)
    decide(people, appr_id, "edit", user="alice", edited_args={"name": "web-app", "replicas": 8})
    assert finish(people, run_id)["applied"] == {"name": "web-app", "replicas": 8}
    assert effects == [{"name": "web-app", "replicas": 8}]


def test_reject_returns_the_message_to_the_flow(people) -> None:
    effects.clear()
    run_id, appr_id = pause(people)
    decide(people, appr_id, "reject", user="bob", message="scale to 8 at most")
    assert finish(people, run_id) == {"decision": "reject", "message": "scale to 8 at most"}
    assert effects == []


def test_quorum_needs_distinct_approvers(people) -> None:
    run_id, appr_id = pause(people, quorum=2)
    assert decide(people, appr_id, "approve", user="alice") is None
    with pytest.raises(ApprovalError, match="already voted"):
        decide(people, appr_id, "approve", user="alice")
    assert people.get_run(run_id).state == "AWAITING_APPROVAL"
    final = decide(people, appr_id, "approve", user="bob")
    assert final is not None and final.decided_by == ["alice", "bob"]
    assert finish(people, run_id)["decision"] == "approve"


def test_crash_while_awaiting_approval_then_decision_runs_the_step_exactly_once(people, project: Path) -> None:
    """The paused run holds no process: a brand-new store and worker (a restart) finish it."""
    from agentops.db import close_stores, open_store

    effects.clear()
    run_id, appr_id = pause(people)
    close_stores()
    restarted = open_store()
    decide(restarted, appr_id, "approve", user="alice")
    assert finish(restarted, run_id)["applied"]["replicas"] == 12
    outcome = execute_run(run_id, worker_id="late-duplicate", epoch=1, store=restarted)
    assert outcome.state == State.COMPLETED
    assert effects == [{"name": "web-app", "replicas": 12}], "the approved effect happened exactly once"


def test_expire_due_leaves_unexpired_requests_alone(people) -> None:
    _, appr_id = pause(people, expires_in=3600)
    assert expire_due(people) == []
    assert people.get_approval(appr_id).status == "pending"
