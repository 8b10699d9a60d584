"""The approval loop in a real Chromium against `agentops serve`: selectors are st-key classes, waits are expect()."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from agentops import service
from tests.app_fixtures import USERS
from tests.e2e.conftest import Served

pytestmark = pytest.mark.e2e


def log_in(page: Page, url: str, name: str) -> None:
    """Open `url` (any page of the app): with no session the browser lands on the login form, then back there."""
    page.goto(url)
    page.locator("#login-user").fill(name)
    page.locator("#login-password").fill(USERS[name][1])
    page.locator("#login-submit").click()
    expect(page.locator(".st-key-logout")).to_be_visible()


def card(page: Page, approval_id: str):  # type: ignore[no-untyped-def]
    found = page.locator(f".st-key-approval-inbox-{approval_id}")
    expect(found).to_contain_text("scale_deployment")
    return found


def test_approver_approves_a_scale_and_sees_the_run_complete_and_the_cluster_change(
        served: Served, page: Page) -> None:
    approval_id, run_id = served.incident.approval_id, served.incident.run_id
    log_in(page, served.url, "ada")
    card(page, approval_id).locator(f".st-key-approve-inbox-{approval_id} button").click()
    expect(page.get_by_text(f"{approval_id[:12]}: approve by ada")).to_be_visible()
    expect(page.locator(f".st-key-approval-inbox-{approval_id}")).to_have_count(0)

    page.get_by_role("link", name="Runs").click()
    page.locator(".st-key-runs-open input").fill(run_id)
    page.locator(".st-key-runs-open input").press("Enter")
    expect(page.locator(".st-key-run-state")).to_contain_text("COMPLETED", timeout=30_000)

    page.get_by_role("link", name="Outbox, tickets, cluster").click()
    page.get_by_role("tab", name="Cluster").click()
    expect(page.locator(".st-key-cluster-web-app")).to_contain_text("12 replicas")
    assert service.get_approval(approval_id).decided_by == "ada"


def test_a_viewer_finds_no_decision_buttons(served: Served, page: Page) -> None:
    log_in(page, served.url, "vera")
    found = card(page, served.incident.approval_id)
    expect(found).to_contain_text("can see this request but not decide it")
    for verb in ("approve", "edit", "reject"):
        expect(page.locator(f"[class*='st-key-{verb}-']")).to_have_count(0)


def test_approver_edits_the_arguments(served: Served, page: Page) -> None:
    approval_id = served.incident.approval_id
    log_in(page, served.url, "ada")
    found = card(page, approval_id)
    found.get_by_role("tab", name="Edit").click()
    editor = page.locator(f".st-key-edit-args-inbox-{approval_id} textarea")
    editor.fill(json.dumps({"name": "web-app", "replicas": 9}))
    editor.press("Control+Enter")
    expect(found).to_contain_text('+  "replicas": 9')
    page.locator(f".st-key-edit-inbox-{approval_id} button").click()
    expect(page.get_by_text(f"{approval_id[:12]}: edit by ada")).to_be_visible()
    decided = service.get_approval(approval_id)
    assert decided.status == "edited" and json.loads(decided.decision)["args"]["replicas"] == 9


def test_approver_rejects_with_a_message(served: Served, page: Page) -> None:
    approval_id = served.incident.approval_id
    log_in(page, served.url, "ada")
    found = card(page, approval_id)
    found.get_by_role("tab", name="Reject").click()
    message = page.locator(f".st-key-reject-message-inbox-{approval_id} input")
    message.fill("traffic is already dropping; keep 6")
    message.press("Enter")
    page.locator(f".st-key-reject-inbox-{approval_id} button").click()
    expect(page.get_by_text(f"{approval_id[:12]}: reject by ada")).to_be_visible()
    decided = service.get_approval(approval_id)
    assert decided.status == "rejected"
    assert json.loads(decided.decision)["message"] == "traffic is already dropping; keep 6"
