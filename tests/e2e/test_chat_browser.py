"""Chat in a real Chromium: an operator asks in plain words, the dispatcher proposes exactly that call, the waiting
approval is drawn inline, an approver decides it there, and the chat says what happened; the effect lands in the
embedded backends (cluster, outbox, tickets)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from agentops import service
from agentops.db import open_store
from tests.e2e.conftest import Served
from tests.e2e.module_project import served_project
from tests.e2e.test_browser import log_in

pytestmark = pytest.mark.e2e

API_NEEDS_A_PERSON = """
      - if: name == "api"
        verdict: require_approval
        reason: api serves customers; a person scales it
"""


def api_needs_a_person(project: Path) -> None:
    """The test project's policy: any scale of api waits for an approver (the default allows 3)."""
    policy = project / "policies" / "default.yaml"
    text = policy.read_text()
    anchor = "    when:\n      - if: replicas > 10\n"
    assert anchor in text
    policy.write_text(text.replace(anchor, "    when:" + API_NEEDS_A_PERSON + anchor.removeprefix("    when:\n")))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_project(tmp_path_factory, "chat-browser", api_needs_a_person) as found:
        yield found


def other_tab(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    return tab


def ask(page: Page, words: str) -> None:
    box = page.locator(".st-key-chat-input textarea")
    box.fill(words)
    box.press("Enter")


def conversation_of(page: Page) -> str:
    expect(page).to_have_url(re.compile(r"conversation=[0-9a-f]{32}"))
    match = re.search(r"conversation=([0-9a-f]{32})", page.url)
    assert match
    return match.group(1)


def approve_in_chat(browser: Browser, url: str, conversation: str, approval_id: str) -> Page:
    """ada, in her own browser, opens otto's conversation and approves the request inline."""
    tab = other_tab(browser)
    log_in(tab, f"{url}/chat?conversation={conversation}", "ada")
    expect(tab.locator(".st-key-chat-history")).to_be_visible()
    tab.locator(f".st-key-approve-chat-{approval_id} button").click()
    expect(tab.get_by_text(f"{approval_id[:12]}: approve by ada")).to_be_visible()
    return tab


def waiting_in(conversation: str) -> list[Any]:
    """The approvals the runs of this conversation wait for: the dispatcher's own and those of runs it started."""
    runs = [m.run_id for m in service.chat_history(conversation) if m.run_id]
    runs += [r.id for r in service.list_runs(limit=200) if r.parent_run_id in runs]
    return [a for run_id in runs for a in service.pending_approvals_for(run_id)]


def test_scale_api_to_3_is_proposed_exactly_decided_inline_and_lands_in_the_cluster(
        served: Served, page: Page, browser: Browser) -> None:
    before = {d.name: d.replicas for d in open_store().deployments()}
    assert before["api"] != 3
    log_in(page, f"{served.url}/chat", "otto")
    ask(page, "scale api to 3 replicas")
    conversation = conversation_of(page)
    [approval] = waiting_in(conversation)
    assert approval.action == "scale_deployment"
    assert json.loads(approval.args) == {"name": "api", "replicas": 3}, "exactly what was asked, nothing more"
    card = page.locator(f".st-key-approval-chat-{approval.id}")
    expect(card).to_contain_text(f"Scale api: {before['api']} → 3 replicas")
    expect(card).to_contain_text("can see this request but not decide it")
    assert {d.name: d.replicas for d in open_store().deployments()} == before, "nothing scaled before the decision"

    tab = approve_in_chat(browser, served.url, conversation, approval.id)
    said = f"completed: Done, per the playbook: - scale_deployment: name api, replicas 3, previous {before['api']}, " \
           "status scaled"
    expect(tab.locator(f".st-key-chat-outcome-{approval.run_id}")).to_contain_text(said, timeout=30_000)
    expect(tab.locator(f".st-key-approve-chat-{approval.id}")).to_have_count(0)
    # otto's tab, left open, redraws the reply by itself: the outcome in words, the card gone
    expect(page.locator(f".st-key-chat-outcome-{approval.run_id}")).to_contain_text(said, timeout=30_000)
    expect(card).to_have_count(0)

    tab.get_by_role("link", name="Outbox, tickets, cluster").click()
    tab.get_by_role("tab", name="Cluster").click()
    expect(tab.locator(".st-key-cluster-api")).to_contain_text("3 replicas")
    tab.context.close()
    after = {d.name: d.replicas for d in open_store().deployments()}
    assert after == {**before, "api": 3}, "api alone changed"


def test_email_the_sales_summary_reaches_the_address_asked_for_after_its_approval_in_the_chat(
        served: Served, page: Page, browser: Browser) -> None:
    log_in(page, f"{served.url}/chat", "otto")
    ask(page, "email the sales summary to ops@example.com")
    conversation = conversation_of(page)
    [started] = [r for r in service.list_runs(flow="sales_analysis", limit=50)
                 if r.parent_run_id in {m.run_id for m in service.chat_history(conversation)}]
    assert json.loads(started.parameters)["recipients"] == ["ops@example.com"], "the address asked for, not a default"
    outcome = page.locator(f".st-key-chat-outcome-{started.id}")
    expect(outcome).to_contain_text("waiting for an approver to decide send_email", timeout=60_000)
    [approval] = waiting_in(conversation)
    assert approval.action == "send_email" and json.loads(approval.args)["to"] == ["ops@example.com"]
    expect(page.locator(f".st-key-approval-chat-{approval.id}")).to_contain_text("To: ops@example.com")

    tab = approve_in_chat(browser, served.url, conversation, approval.id)
    expect(tab.locator(f".st-key-chat-outcome-{started.id}")).to_contain_text("completed", timeout=60_000)
    expect(outcome).to_contain_text("completed", timeout=30_000)
    mails = [m for m in open_store().outbox_list() if m.run_id == started.id]
    assert len(mails) == 1 and "ops@example.com" in mails[0].to and "managers@" not in mails[0].to, mails
    tab.get_by_role("link", name="Outbox, tickets, cluster").click()
    expect(tab.get_by_text(re.compile(r"Sales analysis.*ops@example\.com"))).to_be_visible()
    tab.context.close()


def test_open_a_ticket_opens_exactly_that_ticket_and_says_so(served: Served, page: Page) -> None:
    title = "checkout is returning 500s"
    log_in(page, f"{served.url}/chat", "otto")
    ask(page, f"open a ticket: {title}")
    conversation = conversation_of(page)
    history = page.locator(".st-key-chat-history")
    expect(history).to_contain_text(re.compile(r"create_ticket: ticket .*checkout is returning 500s.*created"))
    assert waiting_in(conversation) == [], "a P3 ticket needs no approval under the default policy"
    [ticket] = [t for t in open_store().tickets_list() if t.title == title]
    dispatch = {m.run_id for m in service.chat_history(conversation) if m.run_id}
    assert ticket.run_id in dispatch and ticket.status == "open"
