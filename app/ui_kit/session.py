"""Who is using the app: local accounts (hashed passwords) or OIDC through st.login.

The acting user is kept in session state only after a successful login; every page passes that name to
the service layer, which checks the role again, so a forged click from a viewer is refused there too.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from agentops import service
from agentops.errors import AgentOpsError

SESSION_KEY = "agentops_user"


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


def current_user() -> SessionUser | None:
    user = st.session_state.get(SESSION_KEY)
    if isinstance(user, SessionUser):
        return user
    if service.get_settings().oidc_enabled and st.user.get("is_logged_in"):
        try:
            account = service.oidc_login(dict(st.user.to_dict()))
        except AgentOpsError as exc:
            st.error(str(exc))
            return None
        user = SessionUser(account.name, account.role, "oidc")
        st.session_state[SESSION_KEY] = user
        return user
    return None


def login_page() -> None:
    st.title("agentops")
    st.caption("Review what agents did; approve what they want to do.")
    if service.get_settings().oidc_enabled:
        st.button("Log in with single sign-on", key="login-sso", on_click=st.login, type="primary")
        st.divider()
    with st.form("login-form", border=True):
        name = st.text_input("User", key="login-user")
        password = st.text_input("Password", type="password", key="login-password")
        submitted = st.form_submit_button("Log in", key="login-submit")
    if submitted:
        account = service.authenticate(name.strip(), password)
        if account is None:
            st.error("Wrong user or password.", icon=":material/lock:")
            return
        st.session_state[SESSION_KEY] = SessionUser(account.name, account.role, "local")
        st.rerun()


def logout() -> None:
    user = st.session_state.pop(SESSION_KEY, None)
    if isinstance(user, SessionUser) and user.via == "oidc":
        st.logout()
    st.rerun()


def sidebar_account(user: SessionUser) -> None:
    with st.sidebar:
        st.markdown(f"**{user.name}** · {user.role}")
        st.button("Log out", key="logout", on_click=logout)
