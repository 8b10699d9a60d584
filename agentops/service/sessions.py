"""The app's logins as sessions: log in (password or OIDC), check the cookie on every page, log out."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentops.db import open_store
from agentops.errors import ConfigError
from agentops.governance import sessions as _sessions
from agentops.governance.users import authenticate as _authenticate
from agentops.governance.users import oidc_login as _oidc_login
from agentops.settings import get_settings

SESSION_COOKIE = "agentops_session"
SECRET_FILE = "session-secret"


@dataclass(frozen=True)
class SessionAccount:
    """Who a live session is: the account's name and its role as it is now."""

    name: str
    role: str
    via: str
    expires_at: float


@dataclass(frozen=True)
class SessionCheck:
    status: _sessions.Status
    account: SessionAccount | None = None


def session_ttl() -> float:
    return get_settings().session_ttl


def _secret() -> bytes:
    """AGENTOPS_SESSION_SECRET, or a random key made once per project (0600, created exclusively so two app
    processes starting together agree on one)."""
    settings = get_settings()
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    path: Path = settings.state_dir / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    value = path.read_text().strip()
    if len(value) < 32:  # a second process may be between the exclusive create and the write
        import time

        time.sleep(0.05)
        value = path.read_text().strip()
    if len(value) < 32:
        raise ConfigError(f"the session secret {path} is empty or short; delete it to make a new one")
    return value.encode()


def log_in(name: str, password: str) -> _sessions.Issued | None:
    """Check a password (the login or failed login recorded) and open a session: its cookie, or None."""
    store = open_store()
    user = _authenticate(store, name, password)
    if user is None:
        return None
    return _sessions.start(store, user, "local", secret=_secret(), ttl=session_ttl())


def log_in_oidc(claims: dict[str, Any]) -> _sessions.Issued:
    """A session for an identity the OIDC provider vouched for (the account created on first login)."""
    store = open_store()
    user = _oidc_login(store, claims, get_settings().oidc_default_role)
    return _sessions.start(store, user, "oidc", secret=_secret(), ttl=session_ttl())


def check_session(cookie: str | None) -> SessionCheck:
    """The account a session cookie logs in, or why it does not (expired sessions are recorded)."""
    checked = _sessions.check(open_store(), cookie, secret=_secret())
    if not checked.ok or checked.user is None or checked.session is None:
        return SessionCheck(checked.status)
    return SessionCheck("ok", SessionAccount(checked.user.name, checked.user.role, checked.session.via,
                                             checked.session.expires_at))


def session_account(cookie: str | None) -> SessionAccount | None:
    return check_session(cookie).account


def log_out(cookie: str | None) -> bool:
    """End the session server-side (recorded as `user.logout`); the cookie is refused from then on."""
    return _sessions.end(open_store(), cookie, secret=_secret())
