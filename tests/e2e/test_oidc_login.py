"""OIDC login through st.login, offline, against oidc-provider-mock on 127.0.0.1, in a real Chromium."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from agentops import service
from tests.e2e.conftest import Served, serve

pytestmark = pytest.mark.e2e


@pytest.fixture
def provider() -> Iterator[str]:
    import oidc_provider_mock
    from werkzeug.serving import make_server

    users = [oidc_provider_mock.User(sub="sso-ada", claims={"email": "ada.sso@example.com", "name": "Ada SSO"})]
    server = make_server("127.0.0.1", 0, oidc_provider_mock.app(user_claims=users), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture
def served_with_oidc(ops_project: Path, provider: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    from tests import app_fixtures

    monkeypatch.setenv("AGENTOPS_OIDC_SERVER_METADATA_URL", f"{provider}/.well-known/openid-configuration")
    monkeypatch.setenv("AGENTOPS_OIDC_CLIENT_ID", "agentops-app")
    monkeypatch.setenv("AGENTOPS_OIDC_CLIENT_SECRET", "oidc-client-secret-value")
    monkeypatch.setenv("AGENTOPS_OIDC_COOKIE_SECRET", "cookie-secret-for-the-test-only")
    from agentops.settings import reset_settings

    reset_settings()
    app_fixtures.app_project(ops_project)
    service.add_user("ada.sso@example.com", "approver", None)
    yield from serve(ops_project)


def test_single_sign_on_logs_in_with_the_accounts_role_and_is_audited(served_with_oidc: Served, page: Page) -> None:
    page.goto(f"{served_with_oidc.url}/runs")
    page.locator("#login-sso").click()
    page.locator("input[name=sub]").fill("sso-ada")
    page.get_by_role("button", name="Authorize").click()
    expect(page.locator(".st-key-logout")).to_be_visible()
    expect(page.get_by_text("ada.sso@example.com · approver")).to_be_visible()
    approval_id = served_with_oidc.incident.approval_id
    expect(page.locator(f".st-key-approve-inbox-{approval_id}")).to_be_visible()
    logins = service.audit_search(actor="user:ada.sso@example.com", action="user.login")
    assert [json.loads(e.payload)["via"] for e in logins] == ["oidc"]
    # The provider's sign-in ends in the same session as a password's: an HttpOnly cookie that a reload keeps.
    [started] = service.audit_search(actor="user:ada.sso@example.com", action="session.started")
    assert json.loads(started.payload)["via"] == "oidc"
    assert next(c for c in page.context.cookies() if c["name"] == "agentops_session")["httpOnly"]
    page.reload()
    expect(page.get_by_text("ada.sso@example.com · approver")).to_be_visible()
    page.locator(".st-key-logout button").click()
    page.get_by_role("button", name="End session").click()  # the provider's own logout (its end_session_endpoint)
    expect(page.locator("#login-form")).to_be_visible()
    page.goto(f"{served_with_oidc.url}/approvals")
    expect(page.locator("#login-form")).to_be_visible()  # Streamlit's identity cookie went with the session
    assert len(service.audit_search(actor="user:ada.sso@example.com", action="user.logout")) == 1
    secrets_file = service.project_path(".agentops", "streamlit", "secrets.toml")
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    assert "oidc-client-secret-value" not in json.dumps([e.payload for e in service.audit_search(limit=1000)])
