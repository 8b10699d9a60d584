"""API tokens for every face: add (admins, or a local command), list, revoke, and the account a token acts as."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentops.db import open_store
from agentops.governance import tokens
from agentops.governance.users import CAN_ADMIN, require_user
from agentops.service.runs import actor_of

if TYPE_CHECKING:
    from agentops.db.schema import ApiToken


def add_token(name: str, role: str, *, actor_user: str | None = None) -> str:
    """The new token's secret, to show once."""
    st = open_store()
    if actor_user:
        require_user(st, actor_user, CAN_ADMIN, "adding API tokens")
    return tokens.create_token(st, name, role, actor=actor_of(actor_user))


def list_tokens() -> list[ApiToken]:
    return open_store().list_tokens()


def revoke_token(name: str, *, actor_user: str | None = None) -> None:
    st = open_store()
    if actor_user:
        require_user(st, actor_user, CAN_ADMIN, "revoking API tokens")
    tokens.revoke_token(st, name, actor=actor_of(actor_user))


def token_user(secret: str) -> str:
    """The account a presented token acts as; PermissionDenied for an unknown or revoked one."""
    return tokens.user_for_token(open_store(), secret)
