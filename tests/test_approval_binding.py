"""What runs is what was approved: edits are screened on every path, a database edit after the decision fails the
step closed with nothing run, and a decision on an ended run has no effect."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from agentops import flow, request_approval, service, task
from agentops.core import serialization
from agentops.core.states import State
from agentops.db import open_store
from agentops.engine.project import project_root
from agentops.engine.runner import cancel_run
from agentops.engine.toolkit import load_tools
from agentops.engine.worker import Worker
from agentops.errors import ApprovalError, ApprovalMismatch, PolicyViolation
from agentops.governance.approvals import decide, expire_due
from tests.test_cli import agentops

ASKED = {"name": "web-app", "replicas": 12}
gate_failures = {"left": 0}


@task
def gate() -> None:
    """Fails while `gate_failures` says so: a run that stops after its approval step completed."""
    if gate_failures["left"]:
        gate_failures["left"] -= 1
        raise RuntimeError("the worker was lost after the approval")


@task
def apply_scale(name: str, replicas: int) -> dict:
    return load_tools(project_root())["scale_deployment"].invoke({"name": name, "replicas": replicas})


@flow
def bound_scale(expires_in: float | None = None) -> dict:
    decision = request_approval("scale_deployment", ASKED, reason="cpu 95%", expires_in=expires_in)
    if not decision.approved:
        return {"kind": decision.kind}
    gate()
    return apply_scale(**decision.args)


@flow
def bound_custom() -> dict:
    decision = request_approval("rotate_keys", {"fleet": "eu"}, reason="quarterly")
    return {"kind": decision.kind, "args": decision.args}


@pytest.fixture
def ops(ops_db_project: Path) -> Path:
    for name in ("alice", "bob", "carol", "dave", "erin", "frank"):
        service.add_user(name, "approver", "correct horse battery")
    gate_failures["left"] = 0
    return ops_db_project


def drain() -> None:
    Worker(open_store(), poll_seconds=0.01).run(burst=True)


def paused(flow_name: str = "bound_scale", **params: object) -> tuple[str, str]:
    run_id = service.start_run(flow_name, dict(params))
    drain()
    [appr] = open_store().list_approvals(run_id=run_id)
    assert open_store().get_run(run_id).state == "AWAITING_APPROVAL"
    return run_id, appr.id


def cluster() -> list[tuple[str, int]]:
    return [(d.name, d.replicas) for d in open_store().deployments()]


def tamper(sql: str, **params: object) -> None:
    """Someone with write access to the database, going around agentops."""
    with open_store().engine.begin() as conn:
        conn.execute(text(sql), params)


# -- edits are screened, whoever calls decide -------------------------------------------------------


@pytest.mark.parametrize(("edited", "message"), [
    ({"name": "web-app", "replicas": "many"}, "edited arguments rejected: argument 'replicas'"),
    ({"name": "web-app"}, "edited arguments rejected: argument 'replicas'"),
    ({"name": "web-app", "replicas": 50}, "replicas=50 exceeds max 20"),
    ({"name": "Web App!", "replicas": 8}, "does not match"),
])
def test_an_edit_through_the_library_that_breaks_the_schema_or_the_policy_is_refused(
        ops: Path, edited: dict, message: str) -> None:
    _, appr_id = paused()
    with pytest.raises(PolicyViolation, match=message):
        decide(open_store(), appr_id, "edit", user="alice", edited_args=edited)
    assert open_store().get_approval(appr_id).status == "pending" and open_store().votes_for(appr_id) == []


def test_an_accepted_edit_is_stored_and_run_as_the_schema_normalised_it(ops: Path) -> None:
    run_id, appr_id = paused()
    decision = decide(open_store(), appr_id, "edit", user="alice",
                      edited_args={"name": "web-app", "replicas": "8", "namespace": "kube-system"})
    assert decision is not None and decision.args == {"name": "web-app", "replicas": 8}
    payload = json.loads(open_store().search_ledger(action="approval.decided")[0].payload)
    assert payload["decided_digest"] == serialization.digest({"name": "web-app", "replicas": 8})
    drain()
    assert open_store().get_run(run_id).state == "COMPLETED" and dict(cluster())["web-app"] == 8


def test_an_action_the_policy_does_not_name_cannot_be_edited_only_decided(ops: Path) -> None:
    run_id, appr_id = paused("bound_custom")
    with pytest.raises(PolicyViolation, match="'rotate_keys' is not named in the policy"):
        decide(open_store(), appr_id, "edit", user="alice", edited_args={"fleet": "us"})
    decide(open_store(), appr_id, "approve", user="alice")
    drain()
    assert serialization.loads(open_store().get_run(run_id).result) == {"kind": "approve", "args": {"fleet": "eu"}}


# -- what runs is what was approved ----------------------------------------------------------------

BIGGER = {"name": "web-app", "replicas": 20}


def _decision_json(kind: str, args: dict, appr_id: str) -> str:
    return serialization.dumps({"kind": kind, "args": args, "approval_id": appr_id, "message": None,
                                "decided_by": ["alice"], "self_approved": False})


CHANGED = "the request's stored arguments or digest were changed"
TAMPERS = {
    "the stored decision's arguments": (
        "approve", "UPDATE approvals SET decision = :decision WHERE id = :id", "the arguments to run are not"),
    "arguments, digest and decision, consistently": (
        "approve", "UPDATE approvals SET args = :args, args_digest = :digest, decision = :decision WHERE id = :id",
        "the arguments to run are not"),
    "the request's arguments only": (
        "approve", "UPDATE approvals SET args = :args WHERE id = :id", CHANGED),
    "the request's digest only": (
        "approve", "UPDATE approvals SET args_digest = :digest WHERE id = :id", CHANGED),
    "a pending approval marked approved": (
        None, "UPDATE approvals SET status = 'approved', decision = :decision WHERE id = :id;"
              "UPDATE flow_runs SET state = 'PENDING' WHERE id = :run", "the ledger holds 0 'approval.decided' events"),
    "a rejection turned into an approval": (
        "reject", "UPDATE approvals SET status = 'approved', decision = :decision WHERE id = :id",
        "the ledger records a 'reject' decision"),
    "the ledger's decision event, to match": (
        "approve", "UPDATE approvals SET decision = :decision WHERE id = :id;"
                   "UPDATE ledger SET payload = REPLACE(payload, :approved, :digest) "
                   "WHERE approval_id = :id AND action = 'approval.decided'",
        "its 'approval.decided' event in the ledger"),
}


@pytest.mark.parametrize("what", list(TAMPERS))
def test_a_database_edit_after_the_decision_fails_the_step_closed_and_runs_nothing(ops: Path, what: str) -> None:
    kind, sql, reason = TAMPERS[what]
    run_id, appr_id = paused()
    if kind == "reject":
        decide(open_store(), appr_id, "reject", user="alice", message="no")
    elif kind == "approve":
        decide(open_store(), appr_id, "approve", user="alice")
    before = cluster()
    for statement in sql.split(";"):
        tamper(statement, id=appr_id, run=run_id, args=serialization.dumps(BIGGER),
               digest=serialization.digest(BIGGER), approved=serialization.digest(ASKED),
               decision=_decision_json("approve", BIGGER, appr_id))
    drain()

    run = open_store().get_run(run_id)
    assert run.state == "FAILED" and "ApprovalMismatch" in run.error and reason in run.error
    assert "nothing was run" in run.error
    assert cluster() == before and open_store().scale_events() == [], "the embedded cluster was not touched"
    [step] = [s for s in open_store().steps_for_run(run_id) if s.kind == "approval"]
    assert step.state == "FAILED" and reason in step.error
    assert [s.name for s in open_store().steps_for_run(run_id)] == ["approval:scale_deployment"]
    [event] = open_store().search_ledger(action="approval.mismatch")
    payload = json.loads(event.payload)
    assert event.approval_id == appr_id and reason in payload["reason"]
    if "arguments to run" in reason:
        assert payload["approved_digest"] == serialization.digest(ASKED)
        assert payload["stored_digest"] == serialization.digest(BIGGER)
    again = service.resume(run_id)  # resuming by hand meets the same check
    assert again.state == State.FAILED and "nothing was run" in again.error and cluster() == before


def test_a_request_edited_in_the_database_before_anyone_decides_cannot_be_decided(ops: Path) -> None:
    """The approver would review the edited arguments, but they are not what the agent asked for or the policy
    screened (200 replicas is past the policy's bound): the request's ledger event says so."""
    run_id, appr_id = paused()
    huge = {"name": "web-app", "replicas": 200}
    tamper("UPDATE approvals SET args = :args, args_digest = :digest WHERE id = :id",
           args=serialization.dumps(huge), digest=serialization.digest(huge), id=appr_id)
    with pytest.raises(ApprovalMismatch, match=rf"{CHANGED} .*cannot be decided"):
        decide(open_store(), appr_id, "approve", user="alice", args_digest=serialization.digest(huge))
    [event] = open_store().search_ledger(action="approval.mismatch")
    payload = json.loads(event.payload)
    assert payload["approved_digest"] == serialization.digest(ASKED)
    assert payload["stored_digest"] == serialization.digest(huge) and payload["attempted_by"] == "alice"
    assert open_store().get_approval(appr_id).status == "pending" and open_store().votes_for(appr_id) == []
    assert open_store().get_run(run_id).state == "AWAITING_APPROVAL"


def test_a_resumed_run_checks_a_completed_approval_step_again(ops: Path) -> None:
    """The approval step completed, then the run stopped; its recorded output is edited before the resume."""
    gate_failures["left"] = 1
    run_id, appr_id = paused()
    decide(open_store(), appr_id, "approve", user="alice")
    drain()
    assert open_store().get_run(run_id).state == "FAILED"
    [step] = [s for s in open_store().steps_for_run(run_id) if s.kind == "approval"]
    assert step.state == "COMPLETED"
    before = cluster()
    honest = step.output
    tamper("UPDATE step_runs SET output = :out WHERE run_id = :run AND step_no = :no",
           out=step.output.replace('"replicas":12', '"replicas":20'), run=run_id, no=step.step_no)
    outcome = service.resume(run_id)
    assert outcome.state == State.FAILED and "the arguments to run are not the ones approved" in outcome.error
    assert cluster() == before and open_store().scale_events() == []

    tamper("UPDATE step_runs SET output = :out, state = 'COMPLETED' WHERE run_id = :run AND step_no = :no",
           out=honest, run=run_id, no=step.step_no)  # the control: the honest record resumes and scales
    assert service.resume(run_id).state == State.COMPLETED
    assert dict(cluster())["web-app"] == 12


# -- decisions on runs that ended ------------------------------------------------------------------


def test_a_decision_on_a_cancelled_run_has_no_effect_and_says_so(ops: Path) -> None:
    run_id, appr_id = paused()
    service.cancel(run_id)
    closed = open_store().get_approval(appr_id)
    assert closed.status == "cancelled" and service.list_approvals() == []
    for kind in ("approve", "reject"):
        with pytest.raises(ApprovalError, match=f"run {run_id}, which is CANCELLED; a decision would have no "
                                                "effect and was not recorded"):
            decide(open_store(), appr_id, kind, user="alice", message="late")
    cli = agentops("approvals", "approve", appr_id, "--as", "alice")
    assert cli.returncode == 2 and cli.stderr.startswith("error: approval ") and "CANCELLED" in cli.stderr
    assert open_store().search_ledger(action="approval.decided") == []
    assert [e.action for e in open_store().search_ledger(action="approval.cancelled")] == ["approval.cancelled"]
    drain()
    assert open_store().get_run(run_id).state == "CANCELLED" and open_store().scale_events() == []


def test_an_approval_left_pending_on_an_ended_run_cannot_be_decided_or_revive_it(ops: Path) -> None:
    """The engine cancelled the run but the process died before its approvals were closed."""
    run_id, appr_id = paused(expires_in=0.3)
    cancel_run(run_id, actor="user:ops", store=open_store())
    assert open_store().get_approval(appr_id).status == "pending"
    with pytest.raises(ApprovalError, match="which is CANCELLED"):
        decide(open_store(), appr_id, "approve", user="alice")
    vote = {"approval_id": appr_id, "user": "alice", "kind": "approve", "args_digest": serialization.digest(ASKED),
            "args": None, "message": None, "ts": time.time()}
    assert open_store().record_vote(vote, [], final={"status": "approved"}, run_id=run_id) == "run_ended"
    time.sleep(0.4)
    assert [a.id for a in expire_due(open_store())] == [appr_id]
    after_cancel = [json.loads(e.payload)["state"] for e in open_store().search_ledger(run_id=run_id, action="run.")]
    assert after_cancel[0] == "CANCELLED", "expiry did not record a PENDING the run never took"
    drain()
    assert open_store().get_run(run_id).state == "CANCELLED" and open_store().scale_events() == []


def test_concurrent_approvers_decide_an_approval_once(ops: Path) -> None:
    run_id, appr_id = paused()
    names = ["alice", "bob", "carol", "dave", "erin", "frank"]
    start = threading.Barrier(len(names))
    outcomes: dict[str, str] = {}

    def approve(name: str) -> None:
        start.wait()
        try:
            decide(open_store(), appr_id, "approve", user=name)
            outcomes[name] = "decided"
        except ApprovalError as exc:
            outcomes[name] = str(exc)

    threads = [threading.Thread(target=approve, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()).count("decided") == 1, outcomes
    assert len(open_store().search_ledger(action="approval.decided")) == 1 and len(open_store().votes_for(appr_id)) == 1
    drain()
    assert open_store().get_run(run_id).state == "COMPLETED" and len(open_store().scale_events()) == 1
