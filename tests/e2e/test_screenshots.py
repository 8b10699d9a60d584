"""Every page of the app at 1400 px wide on a populated project, saved as full-page screenshots (the directory is
printed) for a person to look at; each page must draw its title and no Streamlit exception box.

Populated: an incident waiting for its scale approval, a completed sales analysis, a chat conversation whose
emailed summary waits for its approval, a weekday schedule in Europe/Berlin, and a data question answered."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from agentops import service
from tests.e2e.conftest import Served
from tests.e2e.module_project import served_project
from tests.e2e.test_browser import log_in

pytestmark = pytest.mark.e2e


@dataclass
class Populated:
    served: Served
    completed_run: str
    waiting_run: str
    conversation: str
    schedule_id: int
    shots: Path


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Populated]:
    with served_project(tmp_path_factory, "screenshots-project") as served:
        completed = service.run_now("sales_analysis", {}, user="otto")
        assert completed.state == "COMPLETED", completed
        reply = service.chat_send("email the sales summary to ops@example.com", user="otto")
        service.chat_send("say hello to Bob", user="otto", conversation_id=reply.conversation_id)
        schedule_id = service.schedules.add_schedule("sales_analysis", cron="0 9 * * 1-5", timezone="Europe/Berlin",
                                           user="otto")
        shots = tmp_path_factory.mktemp("page-screenshots")
        print(f"\npage screenshots: {shots}")
        yield Populated(served, completed.run_id, served.incident.run_id, reply.conversation_id, schedule_id, shots)


def drawn(page: Page, title: str) -> None:
    """The page's title is drawn, its script has finished, and no exception box is on it."""
    expect(page.locator("h1").first).to_contain_text(title)
    expect(page.locator("[data-testid='stApp'][data-test-script-state='notRunning']")).to_have_count(1)
    expect(page.locator("[data-testid='stException']")).to_have_count(0)


TALLEST = """() => Math.max(...["[data-testid='stMain']", "[data-testid='stSidebarContent']"]
    .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))"""


def open_every_expander(page: Page) -> None:
    """Open each collapsed expander of the main area (a run's steps), so the shot shows what a reader would."""
    closed = page.locator("[data-testid='stMain'] [data-testid='stExpander'] details:not([open]) > summary")
    for _ in range(200):  # opening one can draw another (a card's "the rest of the message" inside a step)
        if closed.count() == 0:
            break
        closed.first.click()
    expect(closed).to_have_count(0)


def shoot(page: Page, shots: Path, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, not the document, so the viewport is made as tall
    as that block for the shot (at most 12,000 px) and set back after."""
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    height = 0
    for _ in range(5):  # a taller viewport can lay the page out again (images, wrapped text): until it settles
        tallest = min(int(page.evaluate(TALLEST)) + 40, 12_000)
        if tallest <= height:
            break
        height = tallest
        page.set_viewport_size({"width": 1400, "height": max(height, 1000)})
        expect(page.locator("[data-testid='stApp'][data-test-script-state='notRunning']")).to_have_count(1)
        page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})
    assert (shots / f"{name}.png").stat().st_size > 10_000


def test_every_page_draws_at_1400px_without_an_exception(populated: Populated, page: Page) -> None:
    url, shots = populated.served.url, populated.shots
    assert page.viewport_size == {"width": 1400, "height": 1000}
    log_in(page, f"{url}/approvals", "ada")

    expect(page.locator(f".st-key-approval-inbox-{populated.served.incident.approval_id}")).to_be_visible()
    drawn(page, "Approvals")
    shoot(page, shots, "01-approvals")

    page.goto(f"{url}/runs?run={populated.completed_run}")
    expect(page.locator(".st-key-run-state")).to_contain_text("COMPLETED")
    drawn(page, "Runs")
    shoot(page, shots, "02-runs-completed-run")
    open_every_expander(page)
    shoot(page, shots, "02b-runs-completed-run-steps-open")

    page.goto(f"{url}/runs?run={populated.waiting_run}")
    expect(page.locator(".st-key-run-state")).to_contain_text("AWAITING_APPROVAL")
    drawn(page, "Runs")
    shoot(page, shots, "03-runs-waiting-run")
    open_every_expander(page)
    shoot(page, shots, "03b-runs-waiting-run-steps-open")

    page.goto(f"{url}/chat?conversation={populated.conversation}")
    history = page.locator(".st-key-chat-history")
    expect(history).to_contain_text("say hello to Bob")
    expect(history.locator("[class*='st-key-approval-chat-']")).to_contain_text("send_email", timeout=60_000)
    drawn(page, "Chat")
    shoot(page, shots, "04-chat")

    page.get_by_role("link", name="Audit").click()
    drawn(page, "Audit ledger")
    page.locator(".st-key-audit-verify button").click()
    expect(page.get_by_text("chain intact")).to_be_visible()
    shoot(page, shots, "05-audit")

    page.get_by_role("link", name="Schedules").click()
    expect(page.locator(f".st-key-schedule-{populated.schedule_id}")).to_contain_text("Europe/Berlin")
    drawn(page, "Schedules")
    shoot(page, shots, "06-schedules")

    page.get_by_role("link", name="Data").click()
    drawn(page, "Ask the data")
    page.locator(".st-key-data-question input").fill("top 3 products by unit_price")
    page.locator(".st-key-data-ask-submit button").click()
    expect(page.get_by_text(re.compile(r"Top 3 products by average unit price")).first).to_be_visible()
    drawn(page, "Ask the data")
    shoot(page, shots, "07-data-answered")

    page.get_by_role("link", name="Outbox, tickets, cluster").click()
    drawn(page, "Outbox, tickets and cluster")
    for number, tab in enumerate(("Outbox", "Tickets", "Cluster"), start=8):
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
        drawn(page, "Outbox, tickets and cluster")
        shoot(page, shots, f"{number:02d}-backends-{tab.lower()}")
    assert sorted(p.name for p in shots.iterdir()) == [
        "01-approvals.png", "02-runs-completed-run.png", "02b-runs-completed-run-steps-open.png",
        "03-runs-waiting-run.png", "03b-runs-waiting-run-steps-open.png", "04-chat.png", "05-audit.png",
        "06-schedules.png", "07-data-answered.png", "08-backends-outbox.png", "09-backends-tickets.png",
        "10-backends-cluster.png"]
