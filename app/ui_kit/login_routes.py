"""The login beside the app: HTTP routes on the app's own origin that set and clear the HttpOnly session cookie.

Streamlit's script talks over a websocket and cannot set an HttpOnly cookie, so logging in and out are plain
HTTP requests to routes mounted on the same server (`st.App(routes=...)`, see app/server.py):

- GET  /session/login?next=/approvals?request=ID  the form (or, after an OIDC sign-in, a session straight away)
- POST /session/login                             checks the password; 303 to `next` with the cookie set
- POST /session/logout                            ends the session server-side and clears the cookie

`LoginRequired` sends a page load without a live session to the form, with the page asked for as `next`. It is
the convenience; the gate is the script itself (ui_kit/session.py), which checks the cookie on every run.
"""

from __future__ import annotations

import html
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from agentops import service
from agentops.errors import AgentOpsError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = service.sessions.SESSION_COOKIE
LOGIN_PATH = "/session/login"
LOGOUT_PATH = "/session/logout"
MAX_FORM_BYTES = 8192
OPEN_PREFIXES = ("/_stcore/", "/static/", "/media/", "/component/", "/session/", "/auth/", "/oauth2callback",
                 "/app/static/")


def safe_next(value: str | None) -> str:
    """A path on this site to go to after the login: anything else (another host, a scheme) becomes /."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value) or parts.path.startswith(OPEN_PREFIXES):
        return "/"
    return value


def login_location(next_path: str) -> str:
    return f"{LOGIN_PATH}?next={quote(safe_next(next_path), safe='')}"


def _requested(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    return scope.get("path", "/") + (f"?{query}" if query else "")


def _is_page(path: str) -> bool:
    last = path.rsplit("/", 1)[-1]
    return not path.startswith(OPEN_PREFIXES) and "." not in last


class LoginRequired:
    """A page load (GET of an app page) with no live session is sent to the login form; the rest passes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and _is_page(scope.get("path", "/")):
            cookie = Request(scope).cookies.get(COOKIE)
            account = await run_in_threadpool(_account, cookie) if cookie else None
            if account is None:
                response = RedirectResponse(login_location(_requested(scope)), status_code=303)
                if cookie:
                    _clear(response)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _account(cookie: str | None) -> service.sessions.SessionAccount | None:
    try:
        return service.sessions.session_account(cookie)
    except AgentOpsError:
        return None


def _same_origin(request: Request) -> bool:
    """A form posted from another site (login CSRF, a forced logout) is refused: browsers send Origin on POST."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def _set(response: Response, request: Request, issued: Any) -> None:
    max_age = max(1, int(issued.expires_at - time.time()))
    response.set_cookie(COOKIE, issued.cookie, max_age=max_age, path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https" or service.get_settings().app_url.startswith("https:"))


def _clear(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")


def _oidc_claims(request: Request) -> dict[str, Any] | None:
    """The identity Streamlit's OIDC callback left in its own signed cookie, if the provider signed someone in."""
    if not service.get_settings().oidc_enabled:
        return None
    try:
        from streamlit.web.server.starlette.starlette_auth_routes import _get_cookie_value_from_request
        from streamlit.web.server.starlette.starlette_server_config import USER_COOKIE_NAME

        raw = _get_cookie_value_from_request(request, USER_COOKIE_NAME)
        claims = json.loads(raw) if raw else None
    except Exception:  # a cookie that does not decode (or a Streamlit that moved it) is no identity
        return None
    return claims if isinstance(claims, dict) and claims.get("is_logged_in") else None


def _sso_link() -> str | None:
    if not service.get_settings().oidc_enabled:
        return None
    from streamlit.user_info import generate_login_redirect_url

    return generate_login_redirect_url("default")


def login_form(next_path: str, *, error: str | None = None, notice: str | None = None, status: int = 200) -> Response:
    sso = _sso_link()
    sso_html = (f'<a class="sso" id="login-sso" href="{html.escape(sso)}">Log in with single sign-on</a><hr>'
                if sso else "")
    banner = (f'<p class="error" id="login-error" role="alert">{html.escape(error)}</p>' if error else
              f'<p class="notice" id="login-notice">{html.escape(notice)}</p>' if notice else "")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agentops · log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: "Source Sans Pro", system-ui, sans-serif; background: #f6f7f9; color: #262730; margin: 0; }}
main {{ max-width: 380px; margin: 12vh auto; background: #fff; border: 1px solid #e3e5e8; border-radius: 10px;
        padding: 28px 32px; }}
h1 {{ margin: 0 0 4px; font-size: 1.8rem; }} .caption {{ color: #6b6f76; margin: 0 0 20px; }}
label {{ display: block; font-size: .9rem; margin: 12px 0 4px; }}
input[type=text], input[type=password] {{ width: 100%; box-sizing: border-box; padding: 8px 10px;
        border: 1px solid #d0d3d8; border-radius: 6px; font-size: 1rem; }}
button, .sso {{ display: inline-block; margin-top: 18px; padding: 8px 18px; border-radius: 6px; font-size: 1rem;
        border: 1px solid #ff4b4b; background: #ff4b4b; color: #fff; cursor: pointer; text-decoration: none; }}
.error {{ background: #fdecea; color: #8a1c1c; padding: 8px 10px; border-radius: 6px; }}
.notice {{ background: #eef4fd; color: #1c3d8a; padding: 8px 10px; border-radius: 6px; }}
hr {{ border: none; border-top: 1px solid #e3e5e8; margin: 20px 0 4px; }}
</style></head>
<body><main>
<h1>agentops</h1><p class="caption">Review what agents did; approve what they want to do.</p>
{banner}{sso_html}
<form method="post" action="{LOGIN_PATH}" id="login-form">
<input type="hidden" name="next" value="{html.escape(safe_next(next_path))}">
<label for="login-user">User</label><input type="text" id="login-user" name="user" autocomplete="username" autofocus>
<label for="login-password">Password</label>
<input type="password" id="login-password" name="password" autocomplete="current-password">
<button type="submit" id="login-submit">Log in</button>
</form></main></body></html>"""
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


async def _form(request: Request) -> dict[str, str] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: values[0] for key, values in fields.items()}


async def show_login(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    cookie = request.cookies.get(COOKIE)
    if cookie and await run_in_threadpool(_account, cookie) is not None:
        return RedirectResponse(next_path, status_code=303)
    claims = _oidc_claims(request)
    if claims is not None:
        try:
            issued = await run_in_threadpool(service.sessions.log_in_oidc, claims)
        except AgentOpsError as exc:
            return login_form(next_path, error=str(exc), status=403)
        response = RedirectResponse(next_path, status_code=303)
        _set(response, request, issued)
        return response
    notice = {"logged-out": "You are logged out.", "ended": "Your session ended; log in again."}.get(
        request.query_params.get("why", ""))
    response = login_form(next_path, notice=notice)
    if cookie:
        _clear(response)
    return response


async def do_login(request: Request) -> Response:
    if not _same_origin(request):
        return login_form("/", error="This form was posted from another site; open the app and log in there.",
                          status=403)
    form = await _form(request)
    if form is None:
        return login_form("/", error="The login form was malformed.", status=400)
    next_path = safe_next(form.get("next"))
    name, password = form.get("user", "").strip(), form.get("password", "")
    if not name or not password:
        return login_form(next_path, error="Enter your user name and password.", status=400)
    try:
        issued = await run_in_threadpool(service.sessions.log_in, name, password)
    except AgentOpsError as exc:
        return login_form(next_path, error=str(exc), status=500)
    if issued is None:
        return login_form(next_path, error="Wrong user or password.", status=401)
    response = RedirectResponse(next_path, status_code=303)
    _set(response, request, issued)
    return response


async def do_logout(request: Request) -> Response:
    if not _same_origin(request):
        return Response("refused: a logout posted from another site", status_code=403)
    cookie = request.cookies.get(COOKIE)
    account = await run_in_threadpool(_account, cookie)
    await run_in_threadpool(service.sessions.log_out, cookie)
    # After an OIDC session, Streamlit's own identity cookie is cleared too, or the next visit would sign in again.
    target = "/auth/logout" if account is not None and account.via == "oidc" else f"{LOGIN_PATH}?why=logged-out"
    response = RedirectResponse(target, status_code=303)
    _clear(response)
    return response


def routes() -> list[Route]:
    return [Route(LOGIN_PATH, show_login, methods=["GET"]), Route(LOGIN_PATH, do_login, methods=["POST"]),
            Route(LOGOUT_PATH, do_logout, methods=["POST"])]
