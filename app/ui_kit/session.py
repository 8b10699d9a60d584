"""Who is using the app: the session cookie set by the login beside the app (ui_kit/login_routes.py).

Every run of every page checks the cookie against the session store; every page passes the user's name to the
service layer, which checks the role again, so a forged click from a viewer is refused there too.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import quote

import streamlit as st

from agentops import service
from agentops.errors import AgentOpsError

STATUS_KEY = "agentops_session_status"


@dataclass(frozen=True)
class SessionUser:
    name: str
    role: str
    via: str

    @property
    def can_decide(self) -> bool:
        return self.role in service.CAN_DECIDE

    @property
    def can_operate(self) -> bool:
        return self.role in service.CAN_OPERATE

    @property
    def can_schedule(self) -> bool:
        return self.role in service.CAN_SCHEDULE


def bootstrap() -> str:
    """Load the project's flows and open its store once per app process (and project)."""
    settings = service.get_settings()
    return _load(str(settings.root), settings.database_url or "")


def database_key() -> str:
    """Distinguishes cached query results per database (tests and multi-project hosts)."""
    settings = service.get_settings()
    return f"{settings.root}|{settings.database_url or ''}"


@st.cache_resource(show_spinner=False)
def _load(root: str, database_url: str) -> str:
    service.project_path()
    service.open_database()
    return root


def session_cookie() -> str | None:
    """The session cookie the browser sent when this page connected (HttpOnly: the page's JavaScript never
    sees it, but the websocket's handshake carries it)."""
    return st.context.cookies.get(service.sessions.SESSION_COOKIE)


def current_user() -> SessionUser | None:
    """The logged-in user, checked against the session store on every run of every page: a session logged out
    elsewhere, expired, or of a disabled account is no user, whatever this tab remembers."""
    try:
        checked = service.sessions.check_session(session_cookie())
    except AgentOpsError as exc:
        st.error(str(exc))
        return None
    st.session_state[STATUS_KEY] = checked.status
    account = checked.account
    if account is None:
        return None
    return SessionUser(account.name, account.role, account.via)


def still_logged_in(user: SessionUser) -> bool:
    """Check the session again before acting: a fragment (the inbox's refresh, a click on a card inside it)
    reruns without the main script, so a session logged out or expired meanwhile is caught here. When it has
    ended the whole page reruns, which shows the login prompt; False means do nothing."""
    current = current_user()
    if current is not None and current.name == user.name and current.role == user.role:
        return True
    st.rerun(scope="app")
    return False


def requested_path() -> str:
    """This page's path and query, for the login to come back to."""
    url = st.context.url or ""
    path = "/" + url.split("://", 1)[-1].partition("/")[2] if "://" in url else "/"
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in st.query_params.items())
    return path + (f"?{query}" if query else "")


def login_page() -> None:
    """Shown when this tab has no live session (it was logged out or expired while open): the login is a page of
    its own, beside the app, which sets the cookie and comes back here."""
    st.title("agentops")
    status = st.session_state.get(STATUS_KEY)
    if status == "ended":
        st.info("You are logged out.", icon=":material/logout:")
    elif status == "expired":
        st.warning("Your session expired; log in again.", icon=":material/schedule:")
    elif status in ("tampered", "malformed", "unknown", "disabled"):
        st.warning("This session is not valid; log in again.", icon=":material/lock:")
    target = f"/session/login?next={quote(requested_path(), safe='')}"
    # A same-tab link (st.link_button opens a new tab): the login page sets the cookie and comes back here.
    with st.container(key="login-link"):
        st.markdown(f'<a href="{html.escape(target)}" target="_self" style="font-size:1.1rem">Log in again →</a>',
                    unsafe_allow_html=True)


def logout(user: SessionUser) -> None:
    service.sessions.log_out(session_cookie())
    if user.via == "oidc":
        st.logout()


def sidebar_account(user: SessionUser) -> None:
    with st.sidebar:
        st.markdown(f"**{user.name}** · {user.role}")
        st.button("Log out", key="logout", on_click=logout, args=(user,))
