"""Approval cards in a real Chromium: the scale card shows current → proposed, the email card the message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from agentops.db import open_store
from tests import app_fixtures
from tests.e2e.conftest import Served, serve
from tests.e2e.test_browser import log_in
from tests.test_approval_cards import BODY, GATED, PDF, gated_request

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
