"""API tokens: shown once, kept as SHA-256 digests, each acting as the local account of its name."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import TYPE_CHECKING

from agentops.core.ledger import Event
from agentops.db import Store
from agentops.errors import AgentOpsError, TokenRefused
from agentops.governance.users import add_user

if TYPE_CHECKING:
    from agentops.db.schema import ApiToken

PREFIX = "agentops_"


def digest(secret: str) -> str:
    """The stored form of a token: 256 random bits need no slow hash, only one that does not reverse."""
    return hashlib.sha256(secret.encode()).hexdigest()


def is_live(token: ApiToken, now: float) -> bool:
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


def create_token(store: Store, name: str, role: str, *, actor: str, expires_in: float | None = None) -> str:
    """A new token for `name` (its account is created with `role`, or must already have it), refused after
    `expires_in` seconds when given; the secret, returned once and stored nowhere."""
    now = time.time()
    if expires_in is not None and not (0 < expires_in < 100 * 365 * 86400):
        raise AgentOpsError("a token's expiry must be in the future and within 100 years")
    if any(t.name == name and is_live(t, now) for t in store.list_tokens()):
        raise AgentOpsError(f"a token named '{name}' exists (revoke it first: agentops tokens revoke {name})")
    user = store.get_user(name)
    if user is None:
        add_user(store, name, role, None, actor=actor)
    elif user.role != role:
        raise AgentOpsError(f"user '{name}' has role '{user.role}'; a token acts as its account, so give "
                            f"--role {user.role}")
    secret = PREFIX + secrets.token_urlsafe(32)
    expires_at = None if expires_in is None else now + expires_in
    event = Event(actor=actor, action="token.created", payload={"token": name, "role": role,
                                                                 "expires_at": expires_at}, ts=now)
    values = {"name": name, "token_hash": digest(secret), "role": role, "created_by": actor, "created_at": now,
              "revoked_at": None, "expires_at": expires_at}
    if not store.add_token(values, [event]):
        raise AgentOpsError(f"a token named '{name}' exists (revoke it first: agentops tokens revoke {name})")
    return secret


def revoke_token(store: Store, name: str, *, actor: str) -> None:
    event = Event(actor=actor, action="token.revoked", payload={"token": name})
    if not store.revoke_token(name, [event], now=time.time()):
        raise AgentOpsError(f"no live token named '{name}'")


def user_for_token(store: Store, secret: str, *, now: float | None = None) -> str:
    """The account a presented token acts as; TokenRefused for an unknown, revoked or expired token."""
    token: ApiToken | None = store.token_by_hash(digest(secret)) if secret.startswith(PREFIX) else None
    if token is None:
        raise TokenRefused("unknown")
    if token.revoked_at is not None:
        raise TokenRefused("revoked", token.name)
    if token.expires_at is not None and token.expires_at <= (time.time() if now is None else now):
        raise TokenRefused("expired", token.name)
    return token.name
