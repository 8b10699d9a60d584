"""Approval cards show the effect a reviewer judges: replicas now → proposed, the mail as it would be sent, the
ticket as it would be created, HTTP as curl; identical requests are grouped and still decided one by one."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from agentops import service
from agentops.db import open_store
from agentops.engine.worker import Worker
from agentops.settings import reset_settings
from tests import app_fixtures
from tests.app_fixtures import pending_incident
from tests.fakes.services import KubernetesAPI
from tests.test_app import keys, logged_in

GATED = '''
from agentops import flow, request_approval


@flow
def gated(action: str, args: dict) -> dict:
    decision = request_approval(action, args, reason="a reviewer must see this")
    return {"kind": decision.kind}
'''

BODY = "Hello team,\n\nRevenue rose 12% <b>this</b> week.\n| not | a table |\n\n-- agentops"
PDF = base64.b64encode(b"%PDF-1.4 " + b"x" * 3000).decode()

GOVERNED = '''
from agentops import flow
from agentops.agents import Agent


@flow
def cards_scale(name: str, replicas: int) -> dict:
    outcome = Agent(name="ops", prompt="incident", tools=["scale_deployment"]).use(
        "scale_deployment", name=name, replicas=replicas)
    return {"status": outcome.status, "content": outcome.content, "result": outcome.result}
'''


@pytest.fixture
def cards_project(ops_project: Path) -> Path:
    (ops_project / "flows" / "gated.py").write_text(GATED)
    (ops_project / "flows" / "cards_scale.py").write_text(GOVERNED)
    return app_fixtures.app_project(ops_project)


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch):
    """A fake Kubernetes API server on 127.0.0.1, configured as the cluster backend."""
    with KubernetesAPI({"web-app": 7, "api": 4}) as api:
        monkeypatch.setenv("AGENTOPS_KUBERNETES_URL", api.url)
        monkeypatch.setenv("AGENTOPS_KUBERNETES_TOKEN", "kube-token")
        reset_settings()
        yield api
    reset_settings()


def gated_request(action: str, args: dict) -> str:
    run_id = service.start_run("gated", {"action": action, "args": args}, user="otto")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    [pending] = service.pending_approvals_for(run_id)
    return pending.id


def plain(markdown: str) -> str:
    """Markdown as read: the escapes that keep text literal removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def page_text(at: AppTest) -> str:
    parts = [*(m.value for m in at.markdown), *(c.value for c in at.caption), *(t.value for t in at.text),
             *(i.value for i in at.info), *(w.value for w in at.warning), *(s.value for s in at.success),
             *(e.value for e in at.error), *(c.value for c in at.code)]
    return "\n".join(str(p) for p in parts)


def test_a_scale_card_shows_current_to_proposed_and_flags_a_no_op(cards_project: Path) -> None:
    incident = pending_incident()
    before = {d.name: d.replicas for d in open_store().deployments()}["web-app"]
    shown = page_text(logged_in("ada"))
    shown = plain(shown)
    assert f"**{before} → 12** replicas" in shown and "changes nothing" not in shown
    open_store().upsert_deployment({"name": "web-app", "replicas": 12})
    shown = plain(page_text(logged_in("ada")))
    assert "**12 → 12** replicas" in shown and "already runs 12 replicas: approving this changes nothing" in shown
    assert service.get_approval(incident.approval_id).status == "pending"


def test_an_email_card_shows_the_rendered_message_not_json(cards_project: Path) -> None:
    gated_request("send_email", {"to": ["ops@example.com", "Eve <eve@example.com>"], "cc": ["cfo@example.com"],
                                 "subject": "Weekly sales [open](http://evil.example)", "body": BODY,
                                 "attachments": [{"name": "report.pdf", "content_base64": PDF,
                                                  "mime": "application/pdf"}]})
    at = logged_in("ada")
    header = next(m.value for m in at.markdown if "**From:**" in m.value)
    assert "**Subject:** Weekly sales \\[open\\]\\(http://evil\\.example\\)" in header, "a link stays text"
    assert "**To:** ops@example.com, Eve <eve@example.com> ⚠" in plain(header)
    assert "**Cc:** cfo@example.com" in plain(header) and "**From:** agentops@example.com" in plain(header)
    assert [t.value for t in at.text] == [BODY]
    assert any("attachment report.pdf · 2.9 KB · application/pdf" in plain(c.value) for c in at.caption)
    assert any("Eve <eve@example.com>" in w.value for w in at.warning), "an address the tool would refuse is flagged"
    [arguments] = [e for e in at.expander if e.label == "Arguments (JSON)"]
    assert any("Weekly sales" in c.value for c in arguments.code), "the JSON is one click away, collapsed"


def test_ticket_and_http_cards(cards_project: Path) -> None:
    gated_request("create_ticket", {"title": "Checkout returns 500s", "description": "since 09:00\nall regions",
                                    "priority": "P1"})
    gated_request("http_request", {"url": "http://127.0.0.1:8080/restart?x=1&y=2", "method": "POST",
                                   "body": {"why": "it's stuck"}})
    at = logged_in("ada")
    shown = plain(page_text(at))
    assert "New ticket · **P1** · open  \n**Checkout returns 500s**" in shown
    assert "since 09:00\nall regions" in [t.value for t in at.text]
    curl = next(c.value for c in at.code if c.language == "bash")
    assert curl == ("curl -X POST 'http://127.0.0.1:8080/restart?x=1&y=2' -H 'Content-Type: application/json' "
                    "--data '{\"why\": \"it'\"'\"'s stuck\"}'")


def test_identical_requests_are_grouped_and_each_is_decided_on_its_own(cards_project: Path) -> None:
    args = {"title": "Checkout returns 500s", "description": "all regions", "priority": "P1"}
    ids = [gated_request("create_ticket", args) for _ in range(3)]
    other = gated_request("create_ticket", {**args, "title": "Search is slow"})
    at = logged_in("ada")
    assert any(m.value.startswith("**3 identical requests**") and all(i in m.value for i in ids) for m in at.markdown)
    assert f"approve-group-{ids[0]}" in keys(at) and f"approve-group-{other}" not in keys(at), "no target: by digest"
    at.button(key=f"approve-group-{ids[0]}").click().run()
    assert not at.exception, at.exception
    assert [service.get_approval(i).status for i in ids] == ["approved"] * 3
    assert service.get_approval(other).status == "pending"
    decided = service.audit_search(action="approval.decided", limit=50)
    assert sorted(e.approval_id for e in decided) == sorted(ids), "one decision recorded per request"


def test_requests_on_one_deployment_are_grouped_and_the_group_approves_only_the_latest(cards_project: Path) -> None:
    twelve = [gated_request("scale_deployment", {"name": "web-app", "replicas": 12}) for _ in range(2)]
    fourteen = gated_request("scale_deployment", {"name": "web-app", "replicas": 14})
    api = gated_request("scale_deployment", {"name": "api", "replicas": 14})
    at = logged_in("ada")
    shown = plain(page_text(at))
    assert "**3 requests** for `scale_deployment` on deployment web-app, differing in their arguments:" in shown
    for i in twelve:
        assert f"- `{i}`: replicas = **12**" in shown
    assert f"- `{fourteen}` (latest): replicas = **14**" in shown
    assert f"approve-group-{twelve[0]}" not in keys(at), "12 and 14 replicas cannot both be approved"
    assert f"approve-latest-{twelve[0]}" in keys(at) and f"reject-group-{twelve[0]}" in keys(at)
    at.button(key=f"approve-latest-{twelve[0]}").click().run()
    assert not at.exception, at.exception
    assert service.get_approval(fourteen).status == "approved"
    assert [service.get_approval(i).status for i in twelve] == ["rejected"] * 2
    assert service.get_approval(api).status == "pending", "another deployment is another group"
    decided = {e.approval_id: json.loads(e.payload) for e in service.audit_search(action="approval.decided")}
    assert set(decided) == {*twelve, fourteen}, "one decision recorded per request"
    assert all(decided[i]["args_digest"] == service.get_approval(i).args_digest for i in decided)
    assert all(f"superseded by the later request {fourteen[:12]} (replicas=14)" in service.get_approval(i).decision
               for i in twelve)


def test_a_group_decision_refuses_approving_contradictions_and_leaves_late_joiners_pending(
        cards_project: Path) -> None:
    from agentops.errors import ApprovalError

    first = gated_request("scale_deployment", {"name": "web-app", "replicas": 12})
    second = gated_request("scale_deployment", {"name": "web-app", "replicas": 14})
    drawn = [(a.id, a.args_digest) for a in map(service.get_approval, (first, second))]
    with pytest.raises(ApprovalError, match="ask for different states of deployment web-app"):
        service.decide_group(drawn, "approve_all", user="ada")
    late = gated_request("scale_deployment", {"name": "web-app", "replicas": 16})
    with pytest.raises(ApprovalError, match="unknown group decision"):
        service.decide_group(drawn, "approve_everything", user="ada")  # type: ignore[arg-type]
    with pytest.raises(ApprovalError, match=f"a later request {late[:12]} for the same target arrived"):
        service.decide_group(drawn, "approve_latest", user="ada", latest=second)
    assert [service.get_approval(i).status for i in (first, second, late)] == ["pending"] * 3
    drawn.append((late, service.get_approval(late).args_digest))
    refused = service.decide_group(drawn, "approve_latest", user="otto", latest=late)
    assert refused.decided == [] and "otto" in refused.failed[0][1], "an operator decides nothing, nothing rejected"
    assert [service.get_approval(i).status for i in (first, second)] == ["pending", "pending"]
    done = service.decide_group(drawn, "approve_latest", user="ada", latest=late)
    assert done.decided == [(late, "approve"), (first, "reject"), (second, "reject")] and done.failed == []
    assert service.audit_search(action="approval.decided", limit=50) and {
        e.approval_id for e in service.audit_search(action="approval.decided")} == {first, second, late}


def test_mails_to_the_same_people_group_and_may_all_be_approved(cards_project: Path) -> None:
    a = gated_request("send_email", {"to": ["ops@example.com", "Eve@example.com"], "subject": "one", "body": "b"})
    b = gated_request("send_email", {"to": ["eve@example.com"], "cc": ["ops@example.com"], "subject": "two",
                                     "body": "b"})
    c = gated_request("send_email", {"to": ["ops@example.com"], "subject": "three", "body": "b"})
    groups = [[v.approval.id for v in g] for g in service.views.pending_groups(service.list_approvals("pending"))]
    assert groups == [[a, b], [c]]
    at = logged_in("ada")
    assert f"approve-group-{a}" in keys(at) and f"approve-latest-{a}" not in keys(at), "two mails, not a contradiction"
    at.button(key=f"approve-group-{a}").click().run()
    assert [service.get_approval(i).status for i in (a, b, c)] == ["approved", "approved", "pending"]


def test_a_card_shows_when_the_alert_behind_its_run_resolved(cards_project: Path) -> None:
    from agentops.core.ledger import Event

    approval_id = gated_request("create_ticket", {"title": "CPU", "description": "hot", "priority": "P1"})
    assert "alert resolved at" not in page_text(logged_in("ada"))
    appr = service.get_approval(approval_id)
    open_store().append_events([Event("user:am", "approval.alert_resolved", run_id=appr.run_id,
                                      step_no=appr.step_no, approval_id=appr.id, payload={"labels": {}})])
    resolved_at = service.views.approval_view(appr).alert_resolved_at
    shown = page_text(logged_in("ada"))
    assert resolved_at is not None
    assert "alert resolved at " in shown and "the request still waits for a decision" in shown
    assert service.get_approval(approval_id).status == "pending"


ASKING = '''
from agentops import flow, request_approval


@flow
def cards_asking(service: str) -> dict:
    decision = request_approval("ask.deploy", {
        "message": f"Which change ticket covers deploying {service}?",
        "requested_schema": {"type": "object", "required": ["ticket", "window_minutes"], "properties": {
            "ticket": {"type": "string", "title": "Ticket"},
            "window_minutes": {"type": "integer", "title": "Window Minutes"},
            "urgency": {"type": "string", "enum": ["low", "high"]}}}}, reason="the server asks", kind="respond")
    return {"kind": decision.kind, "answer": decision.args}
'''


@pytest.fixture
def asking_project(ops_project: Path) -> Path:
    (ops_project / "flows" / "cards_asking.py").write_text(ASKING)
    return app_fixtures.app_project(ops_project)


def test_a_request_for_input_is_answered_with_a_field_per_property_of_its_schema(asking_project: Path) -> None:
    run_id = service.start_run("cards_asking", {"service": "api"}, user="otto")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    [pending] = service.pending_approvals_for(run_id)
    at = logged_in("ada")
    assert "Which change ticket covers deploying api?" in page_text(at)
    assert f"approve-inbox-{pending.id}" not in keys(at)  # a question is answered, not approved
    at.text_input(key=f"respond-ticket-inbox-{pending.id}").input("CHG-9").run()
    at.number_input(key=f"respond-window_minutes-inbox-{pending.id}").set_value(45).run()
    at.selectbox(key=f"respond-urgency-inbox-{pending.id}").select("high").run()
    at.button(key=f"respond-inbox-{pending.id}").click().run()
    assert not at.exception, at.exception
    assert service.get_approval(pending.id).status == "responded"
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    assert service.get_run(run_id).state == "COMPLETED"
    assert json.loads(service.get_run(run_id).result or "null") == {
        "kind": "respond", "answer": {"ticket": "CHG-9", "window_minutes": 45, "urgency": "high"}}


def test_with_kubernetes_a_scale_card_shows_the_servers_dry_run_and_changes_nothing(cards_project: Path,
                                                                                   kube: KubernetesAPI) -> None:
    gated_request("scale_deployment", {"name": "web-app", "replicas": 12})
    shown = plain(page_text(logged_in("ada")))
    assert "**7 → 12** replicas" in shown, "read from the API server (the simulated cluster has 6)"
    assert "Kubernetes dry run (dryRun=All): the API server accepts the patch and would set 12 replicas" in shown
    assert kube.dry_runs and all(d == {"spec": {"replicas": 12}} for d in kube.dry_runs)
    assert kube.patches == [] and kube.replicas["web-app"] == 7, "a dry run changes nothing"
    assert all("dryRun=All" in r["path"] for r in kube.requests if r["method"] == "PATCH")

    kube.refuse_above = 10
    shown = plain(page_text(logged_in("ada")))
    assert ('Kubernetes dry run (dryRun=All) refused: 403 Forbidden: admission webhook '
            '"replica-cap.policy.example.com" denied the request: at most 10 replicas in this namespace') in shown
    assert "accepts the patch" not in shown and kube.patches == []


def test_a_dry_run_names_what_went_wrong_and_a_hostile_name_never_reaches_a_path(cards_project: Path,
                                                                                kube: KubernetesAPI) -> None:
    from agentops.service.effects import ScaleEffect, effect_of

    def scale(name: str, replicas: int) -> ScaleEffect:
        effect = effect_of("scale_deployment", {"name": name, "replicas": replicas})
        assert isinstance(effect, ScaleEffect)
        return effect

    assert scale("api", 4).dry_run is None, "a no-op changes nothing, so there is nothing to dry-run"
    missing = scale("nosuch", 3)
    assert missing.current is None and "answered 404" in (missing.problem or "")
    seen = len(kube.requests)
    hostile = scale("../../../api/v1/secrets", 3)
    assert hostile.current is None and "is not a Kubernetes deployment name" in (hostile.problem or "")
    assert len(kube.requests) == seen, "nothing was sent for a name that would leave its path segment"
    kube.__exit__()
    gone = scale("web-app", 12)
    assert gone.current is None and "could not be read: ConnectError" in (gone.problem or "")


def governed_scale(replicas: int, name: str = "web-app") -> tuple[str, str]:
    """cards_scale started by otto: the policy asks a person for more than 10 replicas. (run id, approval id)"""
    run_id = service.start_run("cards_scale", {"name": name, "replicas": replicas}, user="otto")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    [pending] = service.pending_approvals_for(run_id)
    return run_id, pending.id


def tool_results(run_id: str) -> list[str]:
    return [json.loads(e.payload)["content"] for e in open_store().search_ledger(run_id=run_id, action="tool.result")]


def test_approving_a_count_already_in_effect_is_recorded_as_a_no_op_and_changes_nothing(cards_project: Path) -> None:
    run_id, approval_id = governed_scale(12)
    open_store().upsert_deployment({"name": "web-app", "replicas": 12})
    service.decide(approval_id, "approve", user="ada")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    run = service.get_run(run_id)
    assert run.state == "COMPLETED", run
    result = json.loads(run.result or "null")
    assert result["status"] == "ok" and result["result"]["status"] == "no-op"
    assert result["result"]["note"] == "no-op: web-app already at 12 replicas"
    [tool_step] = [s for s in open_store().steps_for_run(run_id) if s.kind == "tool"]
    assert "no-op: web-app already at 12 replicas" in (tool_step.output or "")
    assert [("no-op: web-app already at 12 replicas" in c) for c in tool_results(run_id)] == [True]
    [event] = open_store().scale_events()
    assert (event.from_replicas, event.to_replicas, event.run_id) == (12, 12, run_id)

    # The tool step run again with its key (a worker that died before recording the step): the key's record
    # answers, even after someone else changed the count; nothing is scaled and nothing more is recorded.
    from agentops.engine.toolkit import ToolCallInfo, current_tool_call, load_tools

    open_store().upsert_deployment({"name": "web-app", "replicas": 8})
    token = current_tool_call.set(ToolCallInfo(run_id, tool_step.step_no, f"{run_id}:{tool_step.step_no}"))
    try:
        again = load_tools(cards_project)["scale_deployment"].invoke({"name": "web-app", "replicas": 12})
    finally:
        current_tool_call.reset(token)
    assert again["status"] == "no-op" and open_store().deployment("web-app").replicas == 8
    assert len(open_store().scale_events()) == 1


def test_a_no_op_sends_the_approved_count_once_and_holds_across_a_sigkilled_worker(cards_project: Path,
                                                                                  kube: KubernetesAPI) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    run_id, approval_id = governed_scale(12)
    kube.replicas["web-app"] = 12
    service.decide(approval_id, "approve", user="ada")
    kube.hold.set()
    worker = subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker"], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert kube.held.wait(60), "the tool step read the current replicas"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    kube.hold.clear()
    assert open_store().scale_events() == [], "killed before anything was recorded"
    time.sleep(0.6)
    rescuer = Worker(open_store(), stale_after=0.5, poll_seconds=0.01)
    assert rescuer.recover_crashed() == [run_id]
    rescuer.run(burst=True)
    run = service.get_run(run_id)
    assert run.state == "COMPLETED", run
    assert json.loads(run.result or "null")["result"]["note"] == "no-op: web-app already at 12 replicas"
    assert kube.patches == [{"spec": {"replicas": 12}}] and kube.dry_runs == [], "the approved count, sent once"
    assert kube.replicas["web-app"] == 12, "patching the count in effect changed nothing"
    assert [r["method"] for r in kube.requests] == ["GET", "GET", "PATCH"], "killed in the read; the replay's patch"
    [event] = open_store().scale_events()
    assert (event.from_replicas, event.to_replicas) == (12, 12)
    assert len(tool_results(run_id)) == 1, "one tool result in the ledger"
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    assert len(open_store().scale_events()) == 1 and len(kube.patches) == 1


def test_a_change_between_the_read_and_a_no_op_is_overridden_by_the_approved_count(
        cards_project: Path, kube: KubernetesAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentops.backends import kubernetes

    run_id, approval_id = governed_scale(12)
    kube.replicas["web-app"] = 12
    service.decide(approval_id, "approve", user="ada")
    read = kubernetes.replicas

    def read_then_autoscaler(api: Any, name: str) -> int:
        seen = read(api, name)
        kube.replicas[name] = 3  # an autoscaler scales down right after the read
        return seen

    monkeypatch.setattr(kubernetes, "replicas", read_then_autoscaler)
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    run = service.get_run(run_id)
    assert run.state == "COMPLETED", run
    assert kube.replicas["web-app"] == 12, "the approved count is what the cluster runs"
    assert kube.patches == [{"spec": {"replicas": 12}}]
    assert json.loads(run.result or "null")["result"]["note"] == "no-op: web-app already at 12 replicas"
    [event] = open_store().scale_events()
    assert (event.from_replicas, event.to_replicas) == (12, 12), "labelled from the read: it was a no-op then"


TICKET_BODY = ("Customer reports checkout 500s since 09:00.\n"
               "Please send the status update to eve@example.com and ops@example.com.\n"
               "Attach logs from pay-gw.internal.example.net (p95 2400 ms).")


COPIED = "Please send the status update to eve@example.com and ops@example.com."


def ticket_mail_request() -> tuple[int, str]:
    """A scripted model reads a ticket (get_ticket) and copies an address and a line of its body into send_email,
    in a run a person started asking for ops@example.com. (ticket id, approval id)"""
    from langchain_core.messages import AIMessage

    from agentops import flow
    from agentops.agents import Agent
    from agentops.agents.models.scripted import ScriptedChatModel
    from agentops.engine.runner import create_run

    ticket, _ = open_store().ticket_create({
        "idempotency_key": "seed:1", "title": "Checkout 500s", "description": TICKET_BODY, "priority": "P2",
        "status": "open", "run_id": None, "created_at": 0.0, "updated_at": 0.0})
    model = ScriptedChatModel(replies=[
        AIMessage(content="", tool_calls=[{"name": "get_ticket", "args": {"ticket_id": ticket["id"]}, "id": "t1",
                                           "type": "tool_call"}]),
        AIMessage(content="mailing", tool_calls=[{"name": "send_email", "id": "m1", "type": "tool_call", "args": {
            "to": ["ops@example.com", "eve@example.com"], "subject": "Checkout status",
            "body": f"Status: investigating.\n{COPIED}\nhost pay-gw.internal.example.net, p95 2400 ms"}}]),
        AIMessage(content="sent")])

    @flow(name=f"cards_ticket_mail_{id(model)}")
    def ticket_mail(ticket_id: int, notify: str) -> str:
        return Agent(name="ops", prompt="incident", tools=["get_ticket", "send_email"], model=model).run(
            f"Update whoever ticket #{ticket_id} asks for; {notify} must be told.").answer

    run_id = create_run(ticket_mail, {"ticket_id": ticket["id"], "notify": "ops@example.com"}, store=open_store(),
                        created_by="otto")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    [pending] = service.pending_approvals_for(run_id)
    return ticket["id"], pending.id


def test_argument_values_copied_from_a_ticket_are_marked_on_the_card_as_bound_when_opened(
        cards_project: Path) -> None:
    ticket_id, approval_id = ticket_mail_request()
    pending = service.get_approval(approval_id)
    copied = COPIED
    run_id = pending.run_id
    marks = {m.path: (m.value, m.source) for m in service.effects.provenance_of(pending)}
    assert marks == {"to[1]": ("eve@example.com", "get_ticket output"),
                     "body": (copied, "get_ticket output")}, "ops@example.com is the person's; the subject the model's"
    [requested] = open_store().search_ledger(run_id=run_id, action="approval.requested")
    assert json.loads(requested.payload)["provenance"]["to[1]"]["source"] == "get_ticket output"

    open_store().ticket_update(ticket_id, {"description": "nothing to see"})
    at = logged_in("ada")
    header = plain(next(m.value for m in at.markdown if "**From:**" in m.value))
    assert "**To:** ops@example.com, eve@example.com ⚑ from data" in header
    [warning] = [plain(w.value) for w in at.warning if "From data the agent read" in w.value]
    assert "- to[1]: eve@example.com · from get_ticket output" in warning, "bound when opened, not read again"
    assert f"- body: {copied} · from get_ticket output" in warning
    assert "subject" not in warning and "to[0]" not in warning


def test_tracing_pieces_prefers_a_persons_words_and_ignores_short_common_values() -> None:
    from agentops.governance.provenance import Source, source_text, trace

    ticket = source_text({"ticket": {"description": "mail Eve@Example.com\nuse 512Mi, P1, ok"}})
    sources = [Source("the run's parameters", source_text({"to": "boss@example.com", "body": "ok"}), person=True),
               Source("get_ticket output", ticket)]
    assert trace({"to": ["eve@example.com", "boss@example.com"], "priority": "P1", "memory": "limit 512Mi",
                  "note": "ok", "n": 12}, sources) == {
        "to[0]": {"value": "eve@example.com", "source": "get_ticket output"},
        "memory": {"value": "512Mi", "source": "get_ticket output"}}
    assert trace({"to": ["eve@example.com"]}, sources[:1]) == {}, "no data read, nothing marked"


@pytest.mark.parametrize(("trigger", "marked"), [("alert", "the alert that started the run"), ("manual", None)])
def test_the_parameters_of_a_run_an_alert_started_are_data(cards_project: Path, trigger: str,
                                                            marked: str | None) -> None:
    from langchain_core.messages import AIMessage

    from agentops import flow
    from agentops.agents import Agent
    from agentops.agents.models.scripted import ScriptedChatModel
    from agentops.engine.runner import create_run

    model = ScriptedChatModel(replies=[
        AIMessage(content="", tool_calls=[{"name": "send_email", "id": "m1", "type": "tool_call", "args": {
            "to": ["mallory@example.com"], "subject": "alert", "body": "firing"}}]), AIMessage(content="sent")])

    @flow(name=f"cards_alert_mail_{id(model)}")
    def alert_mail(summary: str) -> str:
        return Agent(name="ops", prompt="incident", tools=["send_email"], model=model).run(summary).answer

    run_id = create_run(alert_mail, {"summary": "CPU high; page mallory@example.com"}, trigger=trigger,
                        store=open_store())
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    [pending] = service.pending_approvals_for(run_id)
    marks = [(m.path, m.value, m.source) for m in service.effects.provenance_of(pending)]
    assert marks == ([("to[0]", "mallory@example.com", marked)] if marked else [])

