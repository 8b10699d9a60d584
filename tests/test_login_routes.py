"""The login routes beside the app, in process (Starlette's TestClient): the cookie's flags, where a login may send
the browser back to, forms from other sites, hostile forms, and the page gate in front of the app."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from agentops import service

APP_DIR = Path(__file__).resolve().parents[1] / "app"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))
from ui_kit.login_routes import LoginRequired, routes, safe_next  # noqa: E402

COOKIE = service.sessions.SESSION_COOKIE
PASSWORD = "ada-approves"


def the_app(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"the app at {request.url.path}")


@pytest.fixture
def client(sqlite_project: Path) -> Iterator[TestClient]:
    service.add_user("ada", "approver", PASSWORD)
    app = Starlette(routes=[*routes(), Route("/{path:path}", the_app)], middleware=[Middleware(LoginRequired)])
    with TestClient(app, base_url="http://127.0.0.1:8501", follow_redirects=False) as test_client:
        yield test_client


def log_in(client: TestClient, next_path: str = "/approvals", password: str = PASSWORD,
           **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/session/login", data={"user": "ada", "password": password, "next": next_path},
                       headers=headers)


def test_a_page_without_a_session_goes_to_the_login_and_comes_back_with_an_httponly_cookie(
        client: TestClient) -> None:
    first = client.get("/approvals?request=abc")
    assert first.status_code == 303 and first.headers["location"] == "/session/login?next=%2Fapprovals%3Frequest%3Dabc"
    form = client.get(first.headers["location"])
    assert form.status_code == 200 and 'name="next" value="/approvals?request=abc"' in form.text
    assert form.headers["cache-control"] == "no-store"
    done = log_in(client, "/approvals?request=abc")
    assert done.status_code == 303 and done.headers["location"] == "/approvals?request=abc"
    flags = [part.strip().lower() for part in done.headers["set-cookie"].split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    max_age = int(next(f for f in flags if f.startswith("max-age=")).split("=")[1])
    assert 0 < max_age <= service.sessions.session_ttl()
    assert "secure" not in flags, "plain http on 127.0.0.1; over https the cookie is Secure"
    assert client.get("/approvals?request=abc").text == "the app at /approvals"
    assert client.get("/session/login?next=/runs").headers["location"] == "/runs", "logged in: straight back"
    for open_path in ("/_stcore/health", "/static/js/main.js", "/favicon.png"):
        client.cookies.clear()
        assert client.get(open_path).status_code == 200, open_path


def test_wrong_and_empty_passwords_stay_on_the_form_and_are_recorded(client: TestClient) -> None:
    wrong = log_in(client, password="not-her-password")
    assert wrong.status_code == 401 and "Wrong user or password." in wrong.text and "set-cookie" not in wrong.headers
    empty = log_in(client, password="")
    assert empty.status_code == 400 and "set-cookie" not in empty.headers
    assert [json.loads(e.payload)["via"] for e in service.audit_search(action="user.login_failed")] == ["local"]
    assert "not-her-password" not in json.dumps([e.payload for e in service.audit_search(limit=1000)])


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x",
                                    "evil.example", "/session/logout", "/\x00x", "", "/_stcore/stream"])
def test_the_login_sends_the_browser_back_only_to_a_page_of_this_app(client: TestClient, target: str) -> None:
    assert safe_next(target) == "/"
    done = log_in(client, target)
    assert done.status_code == 303 and done.headers["location"] == "/"


def test_forms_posted_from_another_site_are_refused(client: TestClient) -> None:
    refused = log_in(client, Origin="http://evil.example")
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    assert service.audit_search(action="user.login") == []
    assert log_in(client, Origin="http://127.0.0.1:8501").status_code == 303
    cookie = client.cookies[COOKIE]
    assert client.post("/session/logout", headers={"Origin": "http://evil.example"}).status_code == 403
    assert service.sessions.check_session(cookie).status == "ok"
    out = client.post("/session/logout")
    assert out.status_code == 303 and out.headers["location"] == "/session/login?why=logged-out"
    assert service.sessions.check_session(cookie).status == "ended"
    client.cookies.set(COOKIE, cookie)
    again = client.get("/runs")
    assert again.status_code == 303 and f'{COOKIE}=""' in again.headers["set-cookie"], "the dead cookie is cleared"
    assert "You are logged out." in client.get("/session/login?why=logged-out").text


def test_hostile_forms_are_refused_in_one_line(client: TestClient) -> None:
    huge = client.post("/session/login", content=b"user=ada&password=" + b"x" * 20000,
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 400 and "malformed" in huge.text
    binary = client.post("/session/login", content=b"\xff\xfe\x00user=ada",
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert binary.status_code == 400
    many = client.post("/session/login", content="&".join(f"f{i}=1" for i in range(50)).encode(),
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert many.status_code == 400
    markup = client.get("/session/login", params={"next": '/x"><script>alert(1)</script>'})
    assert "<script>alert(1)</script>" not in markup.text
    assert service.audit_search(action="session.started") == []


def test_the_cookie_is_secure_when_the_app_is_served_over_https(sqlite_project: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from agentops.settings import reset_settings

    monkeypatch.setenv("AGENTOPS_APP_URL", "https://agentops.example.com")
    reset_settings()
    service.add_user("ada", "approver", PASSWORD)
    app = Starlette(routes=routes())
    with TestClient(app, base_url="http://127.0.0.1:8501", follow_redirects=False) as behind_a_proxy:
        done = log_in(behind_a_proxy)
    assert done.status_code == 303 and "secure" in done.headers["set-cookie"].lower()
