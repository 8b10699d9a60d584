"""Local accounts: roles, argon2 password hashes, authentication, and role checks."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from agentops.core.ledger import Event
from agentops.db import Store
from agentops.errors import AgentOpsError, PermissionDenied

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from agentops.db.schema import User

Role = Literal["viewer", "operator", "approver", "admin"]
ROLES: tuple[str, ...] = ("viewer", "operator", "approver", "admin")
CAN_DECIDE = frozenset({"approver", "admin"})
CAN_OPERATE = frozenset({"operator", "approver", "admin"})
CAN_ADMIN = frozenset({"admin"})
CAN_SCHEDULE = frozenset({"operator", "admin"})
"""Managing schedules: runs that start on their own later are an operator's or an admin's to set up."""

_hasher: PasswordHasher | None = None


def _password_hasher() -> PasswordHasher:
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher()
    return _hasher


def hash_password(password: str) -> str:
    return _password_hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        return False
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_password_hasher().verify(stored_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def add_user(store: Store, name: str, role: str, password: str | None, *, actor: str = "system:cli") -> User:
    if role not in ROLES:
        raise AgentOpsError(f"unknown role '{role}' (choose one of: {', '.join(ROLES)})")
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").replace("@", "").isalnum():
        raise AgentOpsError(f"invalid user name '{name}': use letters, digits, '-', '_', '.', '@'")
    if password is not None and len(password) < 8:
        raise AgentOpsError("password too short: use at least 8 characters")
    now = time.time()
    values: dict[str, Any] = {"name": name, "role": role,
                              "password_hash": hash_password(password) if password else None,
                              "created_at": now, "disabled": False}
    event = Event(actor=actor, action="user.created", payload={"user": name, "role": role}, ts=now)
    if not store.add_user(values, [event]):
        raise AgentOpsError(f"user '{name}' already exists")
    from agentops.db.schema import User  # sqlmodel stays off `agentops run` (the service imports this module)

    return User.model_construct(**values)


def authenticate(store: Store, name: str, password: str, *, via: str = "local") -> User | None:
    """Check a password; records the login or the failed login in the ledger."""
    user = store.get_user(name)
    ok = user is not None and not user.disabled and verify_password(user.password_hash, password)
    action = "user.login" if ok else "user.login_failed"
    store.append_events([Event(actor=f"user:{name}", action=action, payload={"user": name, "via": via})])
    return user if ok else None


def record_login(store: Store, name: str, *, via: str) -> None:
    store.append_events([Event(actor=f"user:{name}", action="user.login", payload={"user": name, "via": via})])


def require_user(store: Store, name: str | None, allowed: frozenset[str], action: str) -> User:
    """The acting user, if they exist and their role allows `action`; PermissionDenied otherwise."""
    if not name:
        raise PermissionDenied(f"{action} needs an acting user: pass --as USER or set AGENTOPS_USER")
    user = store.get_user(name)
    if user is None or user.disabled:
        raise PermissionDenied(f"unknown user '{name}' (create it with: agentops users add {name} --role ...)")
    if user.role not in allowed:
        raise PermissionDenied(
            f"user '{name}' has role '{user.role}'; {action} needs one of: {', '.join(sorted(allowed))}")
    return user


def oidc_login(store: Store, claims: dict[str, object], default_role: str) -> User:
    """The account behind an OIDC identity (email, else preferred_username, else sub); created on first login."""
    name = str(claims.get("email") or claims.get("preferred_username") or claims.get("sub") or "")
    if not name:
        raise PermissionDenied("the identity provider returned no email, username or subject")
    user = store.get_user(name)
    if user is None:
        user = add_user(store, name, default_role, None, actor="system:oidc")
    if user.disabled:
        raise PermissionDenied(f"user '{name}' is disabled")
    record_login(store, name, via="oidc")
    return user
