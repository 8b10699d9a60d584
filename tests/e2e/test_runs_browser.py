"""The Runs page in a real Chromium at 1400 px: a waiting run reads as a conversation with call cards, its
approval linked, and a timeline whose every step is labelled."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from agentops import service
from tests.e2e.conftest import Served
from tests.e2e.test_browser import log_in

pytestmark = pytest.mark.e2e


def test_a_waiting_run_reads_as_a_conversation_with_its_approval_linked(
        served: Served, page: Page, tmp_path_factory: pytest.TempPathFactory) -> None:
    run_id, approval_id = served.incident.run_id, served.incident.approval_id
    log_in(page, f"{served.url}/runs?run={run_id}", "vera")
    expect(page.locator("[data-testid='stChatMessage']")).to_have_count(3)
    cards = page.locator("[class*='st-key-tool-card-']")
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_contain_text("allow · tools.get_metrics")
    expect(cards.nth(1)).to_contain_text("require_approval · tools.scale_deployment.when[0]")
    expect(cards.nth(1)).to_contain_text("waiting for a decision")
    result = page.locator(".st-key-run-result")
    expect(result).to_contain_text("Waiting for")
    link = result.locator(f"a[href='/approvals?request={approval_id}']")
    expect(link).to_be_visible()
    expect(page.get_by_text("playbook · 0 input · 0 output · 0 total tokens").first).to_be_visible()
    chart = page.locator("[data-testid='stVegaLiteChart']")
    expect(chart.locator("canvas, svg").first).to_be_visible()
    shots = tmp_path_factory.mktemp("runs-screenshots")
    chart.screenshot(path=str(shots / "run-timeline.png"))
    page.set_viewport_size({"width": 1400, "height": 4000})  # the app scrolls inside its own container
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / "run-waiting.png"))
    print(f"screenshots: {shots}")
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(served.url + (link.get_attribute("href") or ""))  # markdown links open a new tab; follow it here
    expect(page.locator(f".st-key-approval-inbox-{approval_id}")).to_be_visible()
    assert service.get_run(run_id).state == "AWAITING_APPROVAL", "opening the link decides nothing"
