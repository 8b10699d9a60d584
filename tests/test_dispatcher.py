"""The chat dispatcher does what it was asked: the facts a message names pick the flow or tool call and its
arguments, and a message that names nothing it can act on gets a plain answer, never a default."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentops import service
from agentops.agents.models.intents import Answer, Call, Known, route
from agentops.agents.models.playbook import load_playbooks
from agentops.backends.cluster_sim import SEED_DEPLOYMENTS
from agentops.db import open_store
from agentops.engine.worker import Worker
from agentops.governance.approvals import expire_due
from tests.app_fixtures import add_repository_content

ROOT = Path(__file__).resolve().parents[1]
ROUTES = [r for book in load_playbooks(ROOT) for r in book.get("routes", [])]
KNOWN = Known(tuple(d[0] for d in SEED_DEPLOYMENTS), ("sales",))


def flow(flow_name: str, /, **parameters: Any) -> Call:
    return Call("start_flow", {"flow": flow_name, "parameters": parameters}, flow=flow_name)


ROUTED: list[tuple[str, Call]] = [
    ("open a ticket: checkout is returning 500s",
     Call("create_ticket", {"title": "checkout is returning 500s",
                            "description": "open a ticket: checkout is returning 500s"})),
    ("please open a P1 ticket about checkout being down",
     Call("create_ticket", {"title": "checkout being down", "priority": "P1",
                            "description": "please open a P1 ticket about checkout being down"})),
    ("File a ticket - worker queue is stuck",
     Call("create_ticket", {"title": "worker queue is stuck", "description": "File a ticket - worker queue is stuck"})),
    ("scale api to 3 replicas", Call("scale_deployment", {"name": "api", "replicas": 3})),
    ("scale api to 3", Call("scale_deployment", {"name": "api", "replicas": 3})),
    ("Scale API to 2", Call("scale_deployment", {"name": "api", "replicas": 2})),
    ("scale the web-app deployment to 12", Call("scale_deployment", {"name": "web-app", "replicas": 12})),
    ("scale worker from 3 to 5 replicas", Call("scale_deployment", {"name": "worker", "replicas": 5})),
    # 0 is out of the policy's range: it is proposed as asked and the policy refuses it, not the router
    ("scale deployment api to 0", Call("scale_deployment", {"name": "api", "replicas": 0})),
    ("email the sales summary to ops@example.com",
     flow("sales_analysis", recipients=["ops@example.com"], dataset="sales")),
    ("send the revenue report to ops@example.com and cfo@example.com",
     flow("sales_analysis", recipients=["ops@example.com", "cfo@example.com"], dataset="sales")),
    # a foreign domain is routed as named; the send_email policy is what refuses it
    ("email the sales report to bob@gmail.com", flow("sales_analysis", recipients=["bob@gmail.com"], dataset="sales")),
    ("run the sales analysis", flow("sales_analysis", dataset="sales")),
    ("forecast the load for api", flow("predictive_scaling", deployment="api")),
    ("predict the load on worker", flow("predictive_scaling", deployment="worker")),
    ("capacity planning for checkout", flow("predictive_scaling", deployment="checkout")),
    ("say hello to Bob", flow("hello", name="Bob")),
    ("greet Alice", flow("hello", name="Alice")),
    ("say hello to José", flow("hello", name="José")),
    ("hello", flow("hello")),
    ("ping", flow("hello")),
    ("what were the top 5 products by revenue last month?",
     Call("query_data", {"dataset": "sales", "question": "what were the top 5 products by revenue last month?"})),
    ("how many units did we sell per region?",
     Call("query_data", {"dataset": "sales", "question": "how many units did we sell per region?"})),
    ("which regions are below average on revenue?",
     Call("query_data", {"dataset": "sales", "question": "which regions are below average on revenue?"})),
    ("web-app is at 95% CPU, handle it",
     flow("incident_response", deployment="web-app", note="web-app is at 95% CPU, handle it")),
    ("latency on checkout is bad", flow("incident_response", deployment="checkout", note="latency on checkout is bad")),
    ("we have an outage, handle it", flow("incident_response", note="we have an outage, handle it")),
    # a template in the message is text, never filled in
    ("api is slow {deployment} {text}",
     flow("incident_response", deployment="api", note="api is slow {deployment} {text}")),
]

ANSWERED: list[tuple[str, str]] = [
    ("scale api and web-app to 3", "2 deployments"),
    ("web-app and api are at 95% CPU", "2 deployments"),
    ("scale nosuch to 3", "no deployment 'nosuch'"),
    ("nosuch-app is at 99% CPU", "no deployment 'nosuch-app'"),
    ("forecast the load for nosuch-app", "no deployment 'nosuch-app'"),
    ("forecast the load for nosuch", "no deployment 'nosuch'"),
    ("forecast the load for the next 6 hours", "Which deployment"),
    ("forecast the load", "Which deployment"),
    ("scale api", "how many replicas"),
    ("scale api to 50% more", "how many replicas"),
    ("scale api to 2.5", "how many replicas"),
    ("create a ticket", "What is the ticket about"),
    ("deploy the moon", "No route matches"),
    ("email ops@example.com", "No route matches"),
    ("", "No route matches"),
]


@pytest.mark.parametrize(("message", "expected"), ROUTED, ids=[m for m, _ in ROUTED])
def test_a_direct_request_routes_to_its_flow_or_tool_with_what_it_named(message: str, expected: Call) -> None:
    assert route(message, ROUTES, KNOWN) == expected


@pytest.mark.parametrize(("message", "says"), ANSWERED, ids=[m or "(empty)" for m, _ in ANSWERED])
def test_a_request_it_cannot_act_on_gets_an_answer_not_a_guess(message: str, says: str) -> None:
    picked = route(message, ROUTES, KNOWN)
    assert isinstance(picked, Answer), picked
    assert says.lower() in picked.text.lower()


def test_deployments_come_from_what_the_dispatcher_was_told_not_a_fixed_list() -> None:
    assert route("scale billing to 2", ROUTES, Known(("billing",), ())) == Call(
        "scale_deployment", {"name": "billing", "replicas": 2})
    assert isinstance(route("scale api to 2", ROUTES, Known(("billing",), ())), Answer)
    told = Known.from_prompt("Flows:\n- x\n\nDeployments in the cluster: billing, search\nDatasets: (none)\n")
    assert told == Known(("billing", "search"), ())


def test_several_datasets_and_none_named_is_not_a_data_question() -> None:
    known = Known(KNOWN.deployments, ("sales", "inventory"))
    assert isinstance(route("how many units did we sell?", ROUTES, known), Answer)
    assert route("how many units are in inventory?", ROUTES, known) == Call(
        "query_data", {"dataset": "inventory", "question": "how many units are in inventory?"})


# -- through the service: the dispatcher run, its governed calls and the runs it starts --------------------


@pytest.fixture
def chat_project(ops_project: Path) -> Path:
    add_repository_content(ops_project)
    return ops_project


def drain() -> None:
    Worker(open_store(), poll_seconds=0.01).run(burst=True)


def calls_of(reply: Any) -> list[dict[str, Any]]:
    return json.loads(service.get_run(reply.dispatch_run_id).result)["calls"]


def test_email_to_a_named_address_goes_to_that_address(chat_project: Path) -> None:
    reply = service.chat_send("email the sales summary to ops@example.com", user=None)
    [started] = reply.started_runs
    run = service.get_run(started["run_id"])
    assert run.flow_name == "sales_analysis"
    assert json.loads(run.parameters)["recipients"] == ["ops@example.com"]
    drain()
    [pending] = service.pending_approvals_for(run.id)
    assert pending.action == "send_email" and json.loads(pending.args)["to"] == ["ops@example.com"]


def test_a_foreign_address_is_refused_by_the_policy_not_routed_around_it(chat_project: Path) -> None:
    reply = service.chat_send("email the sales summary to leak@gmail.com", user=None)
    [started] = reply.started_runs
    drain()
    run = service.get_run(started["run_id"])
    assert run.state == "COMPLETED" and json.loads(run.result)["email"] == "refused"
    assert open_store().outbox_list() == []


def test_scale_request_is_one_governed_call_with_the_named_numbers(chat_project: Path) -> None:
    reply = service.chat_send("scale api to 3 replicas", user=None)
    assert reply.started_runs == []
    assert calls_of(reply) == [{"name": "scale_deployment", "args": {"name": "api", "replicas": 3}, "status": "ok"}]
    assert open_store().deployment("api").replicas == 3
    assert open_store().deployment("web-app").replicas == 6


def test_an_unknown_deployment_changes_nothing_and_says_so(chat_project: Path) -> None:
    before = {d.name: d.replicas for d in open_store().deployments()}
    reply = service.chat_send("scale nosuch to 3", user=None)
    assert "no deployment 'nosuch'" in reply.answer
    assert calls_of(reply) == [] and reply.started_runs == []
    assert {d.name: d.replicas for d in open_store().deployments()} == before


def test_a_deployment_added_to_the_cluster_is_known_to_the_chat(chat_project: Path) -> None:
    open_store().upsert_deployment({"name": "billing", "namespace": "default", "replicas": 2, "base_load": 1.0,
                                    "cpu_percent": 20.0, "error_rate": 0.0, "p95_latency_ms": 100.0,
                                    "updated_at": time.time()})
    reply = service.chat_send("scale billing to 4", user=None)
    assert calls_of(reply)[0]["status"] == "ok" and open_store().deployment("billing").replicas == 4


def test_a_ticket_request_opens_that_ticket(chat_project: Path) -> None:
    service.chat_send("open a ticket: checkout is returning 500s", user=None)
    [ticket] = [t for t in open_store().tickets_list() if t.title == "checkout is returning 500s"]
    assert ticket.priority == "P3"


def test_a_data_question_is_answered_in_the_reply(chat_project: Path) -> None:
    reply = service.chat_send("what were the top 5 products by revenue?", user=None)
    assert calls_of(reply)[0]["name"] == "query_data"
    assert "Laptop" in reply.answer


def test_hello_greets_the_name_given(chat_project: Path) -> None:
    reply = service.chat_send("say hello to Bob", user=None)
    [started] = reply.started_runs
    drain()
    assert json.loads(service.get_run(started["run_id"]).result) == "Hello, Bob!"



# -- the reply states the outcome, and a run says which governed calls did not go through ----------------------


def test_a_scale_that_needs_approval_says_which_approval_and_what_it_would_do(chat_project: Path) -> None:
    reply = service.chat_send("scale the web-app deployment to 12", user=None)
    assert reply.state == "AWAITING_APPROVAL"
    [waiting] = reply.waiting
    assert waiting["action"] == "scale_deployment" and waiting["args"] == {"name": "web-app", "replicas": 12}
    assert f"approval {waiting['id']}: scale_deployment(name=web-app, replicas=12)" in reply.answer
    assert "PENDING" not in reply.answer and open_store().deployment("web-app").replicas == 6


def test_a_finished_run_is_described_by_what_it_returned(chat_project: Path) -> None:
    reply = service.chat_send("say hello to Bob", user=None)
    assert "started hello as run" in reply.answer
    drain()
    assert service.run_outcome(reply.started_runs[0]["run_id"]).words == "completed: Hello, Bob!"


def test_a_refused_email_is_noted_on_the_run_and_in_the_list(chat_project: Path) -> None:
    reply = service.chat_send("email the sales summary to leak@gmail.com", user=None)
    drain()
    run_id = reply.started_runs[0]["run_id"]
    outcome = service.run_outcome(run_id)
    assert outcome.note == "1 refused call" and outcome.words.endswith("(1 refused call)")
    notes = service.run_notes(service.list_runs())
    assert notes[run_id] == "1 refused call" and notes[reply.dispatch_run_id] == ""


def test_a_rejected_and_an_expired_approval_are_noted(chat_project: Path) -> None:
    service.add_user("ada", "approver", "correct horse battery")
    first = service.chat_send("email the sales summary to ops@example.com", user=None).started_runs[0]["run_id"]
    second = service.chat_send("email the sales summary to cfo@example.com", user=None).started_runs[0]["run_id"]
    drain()
    [pending] = service.pending_approvals_for(first)
    service.decide(pending.id, "reject", user="ada", message="not this week")
    [late] = service.pending_approvals_for(second)
    assert late.expires_at is not None
    expire_due(open_store(), now=late.expires_at + 1)
    drain()
    assert service.run_outcome(first).note == "1 rejected call"
    assert service.run_outcome(second).note == "1 expired call"


def test_agentops_run_and_runs_list_say_a_call_was_refused(chat_project: Path) -> None:
    ran = subprocess.run([sys.executable, "-m", "agentops.cli", "run", "sales_analysis", "-p",
                          'recipients=["leak@gmail.com"]'], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    shown = " ".join(ran.stdout.split())
    assert "COMPLETED with 1 refused call" in shown and "questions answered (1 refused call)" in shown
    listed = subprocess.run([sys.executable, "-m", "agentops.cli", "runs", "list", "--json"], capture_output=True,
                            text=True, timeout=120)
    [row] = json.loads(listed.stdout)
    assert row["state"] == "COMPLETED" and row["note"] == "1 refused call"


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
