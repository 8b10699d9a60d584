"""Tools against their embedded backends and against real protocol peers on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentops.db import open_store
from agentops.engine.toolkit import ToolCallInfo, current_tool_call, load_tools
from agentops.settings import reset_settings
from tests.fakes.services import KubernetesAPI, SMTPSink, TicketAPI


@pytest.fixture
def tools(ops_project):
    return load_tools(ops_project)


def as_step(key: str):
    return current_tool_call.set(ToolCallInfo("run1", 1, key))


def test_embedded_email_lands_in_the_outbox_once_per_key(tools) -> None:
    token = as_step("run1:1")
    try:
        first = tools["send_email"].invoke({"to": ["oncall@example.com"], "subject": "hi", "body": "b"})
        again = tools["send_email"].invoke({"to": ["oncall@example.com"], "subject": "hi", "body": "b"})
    finally:
        current_tool_call.reset(token)
    assert first["status"] == "sent" and again["status"] == "already sent"
    assert [m.subject for m in open_store().outbox_list()] == ["hi"]


def test_chart_attachments_come_from_the_chart_store_and_bad_references_write_nothing(tools, ops_project) -> None:
    from agentops.data import save_chart

    stored = save_chart(b"\x89PNG a chart", ops_project)
    token = as_step("run1:2")
    try:
        for bad in ("0" * 64, "../../etc/passwd"):
            with pytest.raises(Exception, match="no stored chart with sha256"):
                tools["send_email"].invoke({"to": ["oncall@example.com"], "subject": "report", "body": "b",
                                            "attachments": [{"name": "c.png", "chart": bad}]})
        assert open_store().outbox_list() == []
        sent = tools["send_email"].invoke({"to": ["oncall@example.com"], "subject": "report", "body": "b",
                                           "attachments": [{"name": "c.png", "chart": stored["sha256"]}]})
    finally:
        current_tool_call.reset(token)
    assert sent["status"] == "sent"
    assert [m.subject for m in open_store().outbox_list()] == ["report"]


def test_smtp_delivers_once_per_key(tools, monkeypatch: pytest.MonkeyPatch) -> None:
    with SMTPSink() as smtp:
        monkeypatch.setenv("AGENTOPS_SMTP_URL", smtp.url)
        reset_settings()
        token = as_step("run1:7")
        try:
            result = tools["send_email"].invoke({"to": ["a@example.com"], "cc": ["b@example.com"],
                                                 "subject": "Latency alert", "body": "p95 2.5 s"})
            tools["send_email"].invoke({"to": ["a@example.com"], "subject": "Latency alert", "body": "p95 2.5 s"})
        finally:
            current_tool_call.reset(token)
    assert result["delivered_via"] == "smtp"
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["Subject"] == "Latency alert" and msg["To"] == "a@example.com" and msg["Cc"] == "b@example.com"
    assert msg["Message-ID"] == "<run1.7@agentops>"


def test_smtp_mail_carries_the_stored_chart_as_a_png_attachment(tools, ops_project,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from agentops.data import save_chart

    png = b"\x89PNG a chart"
    stored = save_chart(png, ops_project)
    with SMTPSink() as smtp:
        monkeypatch.setenv("AGENTOPS_SMTP_URL", smtp.url)
        reset_settings()
        token = as_step("run1:8")
        try:
            tools["send_email"].invoke({"to": ["a@example.com"], "subject": "Sales report", "body": "attached",
                                        "attachments": [{"name": "top.png", "chart": stored["sha256"]}]})
        finally:
            current_tool_call.reset(token)
    [attachment] = [part for part in smtp.messages[0].walk() if part.get_filename()]
    assert attachment.get_filename() == "top.png" and attachment.get_content_type() == "image/png"
    assert attachment.get_payload(decode=True) == png


def test_tickets_embedded_create_update_list(tools) -> None:
    token = as_step("run1:2")
    try:
        made = tools["create_ticket"].invoke({"title": "Errors on worker", "description": "7%", "priority": "P2"})
        twice = tools["create_ticket"].invoke({"title": "Errors on worker", "description": "7%", "priority": "P2"})
    finally:
        current_tool_call.reset(token)
    assert made["created"] and not twice["created"] and made["ticket"]["id"] == twice["ticket"]["id"]
    tools["update_ticket"].invoke({"ticket_id": made["ticket"]["id"], "status": "resolved", "comment": "fixed"})
    listed = tools["list_tickets"].invoke({"status": "resolved"})["tickets"]
    assert [t["title"] for t in listed] == ["Errors on worker"]


def test_ticket_api_gets_the_idempotency_key_and_the_token(tools, monkeypatch: pytest.MonkeyPatch) -> None:
    with TicketAPI() as api:
        monkeypatch.setenv("AGENTOPS_TICKET_API_URL", api.url)
        monkeypatch.setenv("AGENTOPS_TICKET_API_TOKEN", "ticket-token")
        reset_settings()
        token = as_step("run9:3")
        try:
            first = tools["create_ticket"].invoke({"title": "Disk full", "priority": "P3"})
            second = tools["create_ticket"].invoke({"title": "Disk full", "priority": "P3"})
        finally:
            current_tool_call.reset(token)
        tools["update_ticket"].invoke({"ticket_id": first["ticket"]["id"], "status": "in_progress"})
        listed = tools["list_tickets"].invoke({})
    assert first["created"] and not second["created"]
    assert len(api.tickets) == 1 and api.tickets[1]["status"] == "in_progress"
    assert [r["headers"].get("Idempotency-Key") for r in api.requests if r["method"] == "POST"] == ["run9:3"] * 2
    assert listed["tickets"][0]["title"] == "Disk full"


def test_scaling_the_simulated_cluster_once_per_key_lowers_cpu(tools) -> None:
    before = tools["get_metrics"].invoke({"name": "web-app"})["deployments"][0]
    assert before["replicas"] == 6 and before["cpu_percent"] > 80
    token = as_step("run1:5")
    try:
        done = tools["scale_deployment"].invoke({"name": "web-app", "replicas": 12})
        again = tools["scale_deployment"].invoke({"name": "web-app", "replicas": 12})
    finally:
        current_tool_call.reset(token)
    after = tools["get_metrics"].invoke({"name": "web-app"})["deployments"][0]
    assert done["status"] == "scaled" and again["status"] == "already applied"
    assert after["replicas"] == 12 and after["cpu_percent"] < before["cpu_percent"] / 1.8
    assert len(open_store().scale_events()) == 1
    with pytest.raises(ValueError, match="unknown deployment 'nope'"):
        tools["get_metrics"].invoke({"name": "nope"})


def test_kubernetes_scale_subresource_gets_one_patch(tools, monkeypatch: pytest.MonkeyPatch) -> None:
    with KubernetesAPI({"web-app": 6}) as kube:
        monkeypatch.setenv("AGENTOPS_KUBERNETES_URL", kube.url)
        monkeypatch.setenv("AGENTOPS_KUBERNETES_TOKEN", "kube-token")
        reset_settings()
        token = as_step("run2:4")
        try:
            result = tools["scale_deployment"].invoke({"name": "web-app", "replicas": 9})
            tools["scale_deployment"].invoke({"name": "web-app", "replicas": 9})
        finally:
            current_tool_call.reset(token)
        metrics = tools["get_metrics"].invoke({"name": "web-app"})
    assert result == {"name": "web-app", "replicas": 9, "previous": 6, "status": "scaled"}
    assert kube.patches == [{"spec": {"replicas": 9}}]
    assert metrics["deployments"][0]["replicas"] == 9 and metrics["source"] == "kubernetes"


def test_http_tool_refuses_hosts_outside_the_allowlist(tools, monkeypatch: pytest.MonkeyPatch) -> None:
    with TicketAPI() as local:
        monkeypatch.setenv("AGENTOPS_HTTP_ALLOWED_HOSTS", f"127.0.0.1:{local.port}")
        reset_settings()
        ok = tools["http_request"].invoke({"url": f"{local.url}/tickets", "method": "GET"})
        assert ok["status_code"] == 401
    with pytest.raises(PermissionError, match=r"host 'example\.org' is not in the allowlist"):
        tools["http_request"].invoke({"url": "http://example.org/", "method": "GET"})


def test_seeding_twice_changes_nothing(ops_project) -> None:
    from agentops.service.setup import init_project

    store = open_store()
    samples = store.count_metric_samples()
    lines = list(init_project())
    assert not any("seeded" in line for line in lines)
    assert store.count_metric_samples() == samples and len(store.deployments()) == 4


def test_tools_loaded_from_many_threads_at_once_are_complete(ops_project: Path) -> None:
    """The worker, the scheduler and the app load tools concurrently; none may see a half-imported module."""
    import threading

    from agentops.engine import toolkit

    toolkit._tools.clear()
    barrier, seen = threading.Barrier(8), []

    def load() -> None:
        barrier.wait()
        seen.append(set(toolkit.load_tools(ops_project)))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(seen) == 8 and len({frozenset(s) for s in seen}) == 1
    assert {"send_email", "query_data", "scale_deployment", "create_ticket", "http_request"} <= seen[0]
