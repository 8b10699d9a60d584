"""API tokens for every face: add (admins, or a local command), list, revoke, and the account a token acts as."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agentops.core.times import parse_duration
from agentops.db import open_store
from agentops.errors import AgentOpsError, NotFoundError, TokenRefused
from agentops.governance import tokens
from agentops.governance.users import CAN_ADMIN, require_user
from agentops.service.auth_failures import record_auth_failure
from agentops.service.runs import actor_of

if TYPE_CHECKING:
    from agentops.db.schema import ApiToken


def add_token(name: str, role: str, *, actor_user: str | None = None, expires: str | None = None) -> str:
    """The new token's secret, to show once. `expires` is a duration (`30d`, `12h`); none: until revoked."""
    try:
        expires_in = None if expires is None else parse_duration(expires)
    except ValueError as exc:
        raise AgentOpsError(f"--expires: {exc}") from None
    st = open_store()
    if actor_user:
        require_user(st, actor_user, CAN_ADMIN, "adding API tokens")
    return tokens.create_token(st, name, role, actor=actor_of(actor_user), expires_in=expires_in)


def list_tokens() -> list[ApiToken]:
    return open_store().list_tokens()


def list_token(name: str) -> ApiToken:
    found = next((t for t in open_store().list_tokens() if t.name == name), None)
    if found is None:
        raise NotFoundError(f"no token named '{name}'")
    return found


def token_state(token: ApiToken) -> str:
    """live, expired or revoked."""
    if token.revoked_at is not None:
        return "revoked"
    return "live" if tokens.is_live(token, time.time()) else "expired"


def revoke_token(name: str, *, actor_user: str | None = None) -> None:
    st = open_store()
    if actor_user:
        require_user(st, actor_user, CAN_ADMIN, "revoking API tokens")
    tokens.revoke_token(st, name, actor=actor_of(actor_user))


def token_user(secret: str) -> str:
    """The account a presented token acts as; TokenRefused for an unknown, revoked or expired one."""
    return tokens.user_for_token(open_store(), secret)


def authenticate(secret: str | None, *, client: str = "", path: str = "") -> str:
    """The account of a request's bearer token (None: no token was sent). A refusal is recorded, without the
    token, at most once a minute per reason and token name, and raised as TokenRefused."""
    try:
        if secret is None:
            raise TokenRefused("missing")
        return token_user(secret)
    except TokenRefused as exc:
        record_auth_failure("api_token", exc.reason, subject=exc.name or "", client=client, detail=path)
        raise
