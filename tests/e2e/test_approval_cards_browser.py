"""Approval cards in a real Chromium: the scale card shows current → proposed, the email card the message; a no-op
approval changes nothing; values copied from data are marked; requests on one deployment are grouped."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from agentops import service
from agentops.db import open_store
from tests import app_fixtures
from tests.e2e.conftest import Served, serve
from tests.e2e.test_browser import log_in
from tests.test_approval_cards import BODY, GATED, PDF, gated_request, ticket_mail_request

pytestmark = pytest.mark.e2e


@pytest.fixture
def served_cards(ops_project: Path) -> Iterator[tuple[Served, str]]:
    (ops_project / "flows" / "gated.py").write_text(GATED)
    app_fixtures.app_project(ops_project)
    email_id = gated_request("send_email", {
        "to": ["ops@example.com"], "cc": ["cfo@example.com"], "subject": "Weekly sales", "body": BODY,
        "attachments": [{"name": "report.pdf", "content_base64": PDF, "mime": "application/pdf"}]})
    yield from ((served, email_id) for served in serve(ops_project))


def test_scale_and_email_cards_show_the_effect(served_cards: tuple[Served, str], page: Page,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    served, email_id = served_cards
    replicas = {d.name: d.replicas for d in open_store().deployments()}["web-app"]
    log_in(page, served.url, "ada")
    scale = page.locator(f".st-key-approval-inbox-{served.incident.approval_id}")
    expect(scale).to_contain_text(f"Scale web-app: {replicas} → 12 replicas")
    expect(scale).to_contain_text("CPU")

    mail = page.locator(f".st-key-email-inbox-{email_id}")
    expect(mail).to_contain_text("From: agentops@example.com")
    expect(mail).to_contain_text("To: ops@example.com")
    expect(mail).to_contain_text("Cc: cfo@example.com")
    expect(mail).to_contain_text("Subject: Weekly sales")
    expect(mail).to_contain_text("attachment report.pdf · 2.9 KB · application/pdf")
    body = mail.locator("[data-testid='stText']")
    assert body.inner_text().splitlines() == BODY.splitlines(), "the body keeps its line breaks, nothing escaped"
    shots = tmp_path_factory.mktemp("screenshots")
    page.screenshot(path=str(shots / "approvals.png"), full_page=True)
    scale.screenshot(path=str(shots / "scale-card.png"))
    print(f"screenshots: {shots}")


@pytest.fixture
def served_more(ops_project: Path) -> Iterator[tuple[Served, str, list[str]]]:
    (ops_project / "flows" / "gated.py").write_text(GATED)
    app_fixtures.app_project(ops_project)
    _, mail_id = ticket_mail_request()
    api = [gated_request("scale_deployment", {"name": "api", "replicas": n}) for n in (5, 7)]
    yield from ((served, mail_id, api) for served in serve(ops_project))


def test_a_no_op_approval_changes_nothing_and_marks_and_groups_show(served_more: tuple[Served, str, list[str]],
                                                                     page: Page,
                                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    served, mail_id, api = served_more
    approval_id, run_id = served.incident.approval_id, served.incident.run_id
    open_store().upsert_deployment({"name": "web-app", "replicas": 12})
    log_in(page, served.url, "ada")
    scale = page.locator(f".st-key-approval-inbox-{approval_id}")
    expect(scale).to_contain_text("Scale web-app: 12 → 12 replicas")
    expect(scale).to_contain_text("approving this changes nothing (it is recorded as a no-op)")

    mail = page.locator(f".st-key-approval-inbox-{mail_id}")
    expect(mail).to_contain_text("eve@example.com ⚑ from data")
    expect(mail).to_contain_text("to[1]: eve@example.com · from get_ticket output")

    expect(page.get_by_text("2 requests for scale_deployment on deployment api")).to_be_visible()
    expect(page.locator(f".st-key-approve-latest-{api[0]} button")).to_contain_text(
        "Approve the latest (replicas 7), reject the others")
    expect(page.locator(f".st-key-approve-group-{api[0]}")).to_have_count(0)
    shots = tmp_path_factory.mktemp("screenshots")
    page.screenshot(path=str(shots / "approvals-marks-groups.png"), full_page=True)

    scale.locator(f".st-key-approve-inbox-{approval_id} button").click()
    expect(page.get_by_text(f"{approval_id[:12]}: approve by ada")).to_be_visible()
    deadline = time.time() + 60
    while service.get_run(run_id).state != "COMPLETED":
        assert time.time() < deadline, service.get_run(run_id)
        time.sleep(0.2)
    notes = [json.loads(e.payload)["content"] for e in open_store().search_ledger(run_id=run_id, action="tool.result")
             if json.loads(e.payload)["tool"] == "scale_deployment"]
    assert len(notes) == 1 and "no-op: web-app already at 12 replicas" in notes[0]
    assert open_store().deployment("web-app").replicas == 12
    assert [(e.from_replicas, e.to_replicas) for e in open_store().scale_events()] == [(12, 12)]

    page.locator(f".st-key-approve-latest-{api[0]} button").click()
    expect(page.get_by_text("2 of 2 requests decided by ada")).to_be_visible()
    assert [service.get_approval(i).status for i in api] == ["rejected", "approved"]
    print(f"screenshots: {shots}")
