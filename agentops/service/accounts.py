"""People: local accounts, password and OIDC logins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentops.db import open_store
from agentops.governance.users import CAN_ADMIN, require_user
from agentops.governance.users import add_user as _add
from agentops.governance.users import authenticate as _auth
from agentops.governance.users import oidc_login as _oidc_login
from agentops.service.runs import actor_of
from agentops.settings import get_settings

if TYPE_CHECKING:
    from agentops.db.schema import User


def add_user(name: str, role: str, password: str | None, *, actor_user: str | None = None) -> None:
    st = open_store()
    if actor_user:
        require_user(st, actor_user, CAN_ADMIN, "adding users")
    _add(st, name, role, password, actor=actor_of(actor_user))


def authenticate(name: str, password: str) -> Any:
    return _auth(open_store(), name, password)


def oidc_login(claims: dict[str, Any]) -> Any:
    """The local account for an identity from the OIDC provider (created on first login); login recorded."""
    return _oidc_login(open_store(), claims, get_settings().oidc_default_role)


def list_users() -> list[User]:
    return open_store().list_users()
