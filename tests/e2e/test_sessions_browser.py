"""Sessions in a real Chromium against `agentops serve`: reloads and deep links keep the login, logout and expiry end
it server-side (the old cookie replayed with httpx is refused), a tampered cookie is refused, a viewer reads a
conversation with no input box. Screenshots at 1400 px go to a temporary directory (printed)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from agentops import service
from agentops.settings import reset_settings
from tests.app_fixtures import USERS
from tests.e2e.conftest import Served
from tests.e2e.test_browser import log_in

pytestmark = pytest.mark.e2e
COOKIE = service.sessions.SESSION_COOKIE


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("session-screenshots")
    print(f"screenshots: {folder}")
    return folder


def session_cookie(context: BrowserContext) -> str:
    [value] = [c["value"] for c in context.cookies() if c["name"] == COOKIE]
    return value


def plant(context: BrowserContext, url: str, value: str) -> None:
    context.add_cookies([{"name": COOKIE, "value": value, "url": url, "httpOnly": True, "sameSite": "Lax"}])


def page_status(url: str, cookie: str | None) -> int:
    """What the server answers a page load with this cookie: 200 (the app) or 303 (to the login)."""
    cookies = {COOKIE: cookie} if cookie else {}
    return httpx.get(f"{url}/approvals", cookies=cookies, follow_redirects=False, timeout=30).status_code


def expect_login_form(page: Page) -> None:
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator(".st-key-logout")).to_have_count(0)


def test_a_deep_link_to_an_approval_opens_it_after_the_login_and_a_reload_keeps_the_session(
        served: Served, page: Page, shots: Path) -> None:
    approval_id, run_id = served.incident.approval_id, served.incident.run_id
    link = service.links.approval_url(approval_id).replace("http://127.0.0.1:8501", served.url)
    page.goto(link)
    expect_login_form(page)
    assert urlsplit(page.url).path == "/session/login"
    page.screenshot(path=str(shots / "login.png"), full_page=True)
    page.locator("#login-user").fill("ada")
    page.locator("#login-password").fill(USERS["ada"][1])
    page.locator("#login-submit").click()

    linked = page.locator(f".st-key-approval-link-{approval_id}")
    expect(linked).to_contain_text("scale_deployment")
    expect(page.locator(f".st-key-approve-link-{approval_id}")).to_be_visible()
    assert page.url == link, "the login came back to the page asked for, query and all"
    expect(page.get_by_text("Page not found")).to_have_count(0)
    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and COOKIE not in page.url
    assert page.evaluate("document.cookie").find(COOKIE) == -1, "page scripts cannot read the session"
    page.screenshot(path=str(shots / "approval-deep-link.png"), full_page=True)
    assert service.get_approval(approval_id).status == "pending", "a link never decides by itself"

    page.reload()
    expect(page.locator(".st-key-logout")).to_be_visible()
    expect(page.locator(f".st-key-approval-link-{approval_id}")).to_contain_text("scale_deployment")
    expect(page.get_by_text("Page not found")).to_have_count(0)
    page.goto(served.url)
    expect(page.locator(".st-key-logout")).to_be_visible()
    expect(page).to_have_url(f"{served.url}/approvals")

    page.goto(service.links.run_url(run_id).replace("http://127.0.0.1:8501", served.url))
    expect(page.locator(".st-key-run-state")).to_contain_text("incident_response")
    expect(page.locator(".st-key-logout")).to_be_visible()
    expect(page.get_by_text("Page not found")).to_have_count(0)
    page.screenshot(path=str(shots / "run-deep-link.png"), full_page=True)
    started = service.audit_search(actor="user:ada", action="session.started")
    assert [json.loads(e.payload)["via"] for e in started] == ["local"]


def test_logout_ends_the_session_server_side_and_the_replayed_cookie_is_refused(served: Served, page: Page,
                                                                                shots: Path) -> None:
    log_in(page, f"{served.url}/runs", "ada")
    old = session_cookie(page.context)
    assert page_status(served.url, old) == 200, "the cookie replayed while the session lives is let in"
    page.locator(".st-key-logout button").click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    expect(page.locator(".st-key-login-link")).to_be_visible()
    expect(page.get_by_role("link", name="Runs")).to_have_count(0)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    page.screenshot(path=str(shots / "logged-out.png"), full_page=True)
    assert page_status(served.url, old) == 303
    page.locator(".st-key-login-link a").click()
    expect_login_form(page)
    page.goto(f"{served.url}/runs")
    expect_login_form(page)
    [logout] = service.audit_search(actor="user:ada", action="user.logout")
    assert json.loads(logout.payload)["via"] == "local"
    assert old.split(".")[0] not in json.dumps([e.payload for e in service.audit_search(limit=1000)])

    # The route beside the app logs out too (a form post from the same origin), and clears the cookie.
    fresh = service.sessions.log_in("ada", USERS["ada"][1])
    assert fresh is not None and page_status(served.url, fresh.cookie) == 200
    refused = httpx.post(f"{served.url}/session/logout", cookies={COOKIE: fresh.cookie},
                         headers={"Origin": "http://evil.example"}, timeout=30)
    assert refused.status_code == 403 and page_status(served.url, fresh.cookie) == 200
    done = httpx.post(f"{served.url}/session/logout", cookies={COOKIE: fresh.cookie}, timeout=30)
    assert done.status_code == 303 and f'{COOKIE}=""' in done.headers["set-cookie"]
    assert page_status(served.url, fresh.cookie) == 303


def test_an_open_inbox_logged_out_from_another_browser_falls_back_to_the_login(served: Served, page: Page) -> None:
    approval_id = served.incident.approval_id
    log_in(page, f"{served.url}/approvals", "ada")
    expect(page.locator(f".st-key-approve-inbox-{approval_id}")).to_be_visible()
    stolen = session_cookie(page.context)
    assert httpx.post(f"{served.url}/session/logout", cookies={COOKIE: stolen}, timeout=30).status_code == 303
    # The inbox refreshes itself every 3 s; its next refresh finds the session ended and draws the login prompt.
    expect(page.locator(".st-key-login-link")).to_be_visible(timeout=30_000)
    expect(page.locator(f".st-key-approve-inbox-{approval_id}")).to_have_count(0)
    assert service.get_approval(approval_id).status == "pending"


def test_an_expired_session_is_refused_and_recorded(served: Served, page: Page,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_SESSION_TTL", "1s")
    reset_settings()
    issued = service.sessions.log_in("ada", USERS["ada"][1])
    assert issued is not None
    while time.time() <= issued.expires_at:
        time.sleep(0.2)
    plant(page.context, served.url, issued.cookie)
    page.goto(f"{served.url}/approvals")
    expect_login_form(page)
    assert page_status(served.url, issued.cookie) == 303
    [expired] = service.audit_search(actor="user:ada", action="session.expired")
    assert json.loads(expired.payload)["user"] == "ada"
    assert service.sessions.check_session(issued.cookie).status == "expired"


def test_a_tampered_or_forged_cookie_is_refused_and_the_genuine_one_is_not(served: Served, page: Page) -> None:
    issued = service.sessions.log_in("vera", USERS["vera"][1])
    assert issued is not None
    session_id, expires, signature = issued.cookie.split(".")
    flipped = session_id[:-1] + ("A" if session_id[-1] != "A" else "B")
    forged = [f"{flipped}.{expires}.{signature}",                      # another id under the old signature
              f"{session_id}.{int(expires) + 86400}.{signature}",     # a later expiry
              f"{session_id}.{expires}.{'0' * len(signature)}",       # a made-up signature
              "admin", ""]
    for value in forged:
        assert page_status(served.url, value) == 303, value
    plant(page.context, served.url, forged[1])
    page.goto(f"{served.url}/approvals")
    expect_login_form(page)
    plant(page.context, served.url, issued.cookie)
    page.goto(f"{served.url}/approvals")
    expect(page.get_by_text("vera · viewer")).to_be_visible()


def test_a_viewer_reads_someone_elses_conversation_but_has_no_input_box(served: Served, page: Page,
                                                                         shots: Path) -> None:
    reply = service.chat_send("say hello to Bob", user="otto")
    log_in(page, f"{served.url}/chat", "otto")
    page.locator(f".st-key-conversation-{reply.conversation_id} button").click()
    expect(page.locator(".st-key-chat-history")).to_contain_text("say hello to Bob")
    assert f"conversation={reply.conversation_id}" in page.url
    page.reload()
    expect(page.locator(".st-key-chat-history")).to_contain_text("say hello to Bob")
    expect(page.locator(".st-key-chat-input")).to_be_visible()
    page.locator(".st-key-logout button").click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()

    page.context.clear_cookies()
    log_in(page, f"{served.url}/chat", "vera")
    button = page.locator(f".st-key-conversation-{reply.conversation_id} button")
    expect(button).to_contain_text("otto")
    button.click()
    history = page.locator(".st-key-chat-history")
    expect(history).to_contain_text("say hello to Bob")
    expect(history).to_contain_text(reply.answer.splitlines()[0][:40])
    expect(page.get_by_text("can read conversations but not start automations")).to_be_visible()
    expect(page.locator(".st-key-chat-input")).to_have_count(0)
    expect(page.locator("[data-testid='stChatInput']")).to_have_count(0)
    page.screenshot(path=str(shots / "chat-viewer.png"), full_page=True)
