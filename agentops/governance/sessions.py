"""The app's login sessions: a signed cookie naming a random session id whose SHA-256 alone is stored.

The cookie is `<id>.<expiry>.<signature>`: the HMAC-SHA256 (keyed by the session secret) of the id and expiry.
A cookie whose signature does not match is refused before the database is asked; one that matches still needs a
live row (not logged out, not expired) of an enabled account, so a logout or a disabled account ends it at once
wherever the cookie was copied. The row keeps no way back to the id: someone who reads the table cannot log in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from agentops.core.ledger import Event
from agentops.db import Store

if TYPE_CHECKING:
    from agentops.db.schema import User, WebSession

Status = Literal["ok", "missing", "malformed", "tampered", "unknown", "ended", "expired", "disabled"]


@dataclass(frozen=True)
class Issued:
    cookie: str
    expires_at: float


@dataclass(frozen=True)
class Checked:
    status: Status
    user: User | None = None
    session: WebSession | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def digest(session_id: str) -> str:
    """The stored form of a session id (256 random bits: a plain SHA-256 cannot be reversed or guessed)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def reference(id_hash: str) -> str:
    """How the ledger names a session: a prefix of its digest (enough to follow it, useless to log in)."""
    return id_hash[:16]


def _signature(secret: bytes, session_id: str, expires: int) -> str:
    return hmac.new(secret, f"{session_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def _parse(cookie: str, secret: bytes) -> tuple[Status, str, float]:
    """The cookie's status, its session id and the expiry it was signed with."""
    parts = cookie.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[0]) < 32 or len(cookie) > 200:
        return "malformed", "", 0.0
    session_id, expires, signature = parts
    if not hmac.compare_digest(_signature(secret, session_id, int(expires)), signature):
        return "tampered", "", 0.0
    return "ok", session_id, float(expires)


def start(store: Store, user: User, via: str, *, secret: bytes, ttl: float, now: float | None = None) -> Issued:
    """A new session for `user` (already authenticated), recorded with a `session.started` event."""
    now = time.time() if now is None else now
    session_id = secrets.token_urlsafe(32)
    expires = int(now + ttl)
    id_hash = digest(session_id)
    event = Event(actor=f"user:{user.name}", action="session.started", ts=now,
                  payload={"user": user.name, "via": via, "session": reference(id_hash), "expires_at": expires})
    store.add_session({"id_hash": id_hash, "user_name": user.name, "via": via, "created_at": now,
                       "expires_at": float(expires), "ended_at": None, "end_reason": None}, [event])
    return Issued(f"{session_id}.{expires}.{_signature(secret, session_id, expires)}", float(expires))


def check(store: Store, cookie: str | None, *, secret: bytes, now: float | None = None) -> Checked:
    """Whose session a presented cookie is, or why it is refused. An expired session is ended and recorded once
    (`session.expired`), by whichever process sees it first."""
    if not cookie:
        return Checked("missing")
    status, session_id, signed_expiry = _parse(cookie, secret)
    if status != "ok":
        return Checked(status)
    now = time.time() if now is None else now
    id_hash = digest(session_id)
    session = store.session_by_hash(id_hash)
    if session is None:
        return Checked("unknown")
    if session.ended_at is not None:
        return Checked("expired" if session.end_reason == "expired" else "ended", session=session)
    expires_at = min(session.expires_at, signed_expiry)  # a row's expiry moved later in the database does not count
    if expires_at <= now:
        event = Event(actor=f"user:{session.user_name}", action="session.expired", ts=now,
                      payload={"user": session.user_name, "via": session.via, "session": reference(id_hash),
                               "expires_at": expires_at})
        store.end_session(id_hash, "expired", [event], now=now)
        return Checked("expired", session=session)
    user = store.get_user(session.user_name)
    if user is None or user.disabled:
        return Checked("disabled", session=session)
    return Checked("ok", user=user, session=session)


def end(store: Store, cookie: str | None, *, secret: bytes, now: float | None = None) -> bool:
    """Log out: end the session a cookie names (`user.logout`); False when it is not a live session."""
    if not cookie:
        return False
    status, session_id, _expiry = _parse(cookie, secret)
    if status != "ok":
        return False
    id_hash = digest(session_id)
    session = store.session_by_hash(id_hash)
    if session is None:
        return False
    now = time.time() if now is None else now
    event = Event(actor=f"user:{session.user_name}", action="user.logout", ts=now,
                  payload={"user": session.user_name, "via": session.via, "session": reference(id_hash)})
    return store.end_session(id_hash, "logout", [event], now=now)
