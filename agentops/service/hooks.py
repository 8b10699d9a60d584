"""Signed inbound webhooks: `POST /api/v1/hooks/{name}` starts the flow `hooks.yaml` maps the hook to.

A request carries `X-Agentops-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>` under the
hook's shared secret, which is read from the environment variable the hook names (never from the repository or
the database). Unsigned, wrongly signed, stale (outside AGENTOPS_HOOK_WINDOW_SECONDS of this clock) and replayed
requests (the same signature seen before, remembered in the database) are refused and recorded. The start is the
policy's `start_flow` call, as the account the hook names, with the flow's parameter types checked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentops.core.ledger import Event
from agentops.core.yaml_files import parse_yaml
from agentops.db import open_store
from agentops.engine.project import project_root
from agentops.errors import ConfigError, HookRefused, ParameterError
from agentops.governance.users import CAN_OPERATE, require_user
from agentops.service.auth_failures import record_auth_failure
from agentops.service.setup import check_settings
from agentops.service.starts import governed_start
from agentops.settings import get_settings

HOOKS_FILE = "hooks.yaml"
SIGNATURE_HEADER = "X-Agentops-Signature"
MAX_BODY_BYTES = 1 << 20
MIN_SECRET_BYTES = 16
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_HEX = re.compile(r"^[0-9a-f]{64}\Z")
ACTOR = "system:hooks"


class Hook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow: str = Field(min_length=1)
    secret_env: str = Field(pattern=r"^AGENTOPS_HOOK_[A-Z0-9_]+_SECRET$",
                            description="The environment variable of the shared secret (named *_SECRET, so its value "
                                        "is redacted everywhere).")
    as_user: str = Field(min_length=1, description="The account runs are started as (operator or above).")
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Literal values, or `$.a.b.0` paths into the JSON body (`$` is the whole body)."""


class HooksFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hooks: dict[str, Hook] = Field(default_factory=dict)


@dataclass(frozen=True)
class HookOutcome:
    hook: str
    run_id: str
    flow: str


def load_hooks(root: Path) -> dict[str, Hook]:
    path = root / HOOKS_FILE
    if not path.is_file():
        return {}
    hooks = parse_yaml(path.read_text(), HOOKS_FILE, HooksFile, not_mapping="expected a mapping with `hooks:`")[0]
    for name in hooks.hooks:
        if not re.match(NAME_PATTERN, name):
            raise ConfigError(f"{HOOKS_FILE}: hook name '{name}' must match {NAME_PATTERN}")
    return hooks.hooks


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The v1 signature of `body` at `timestamp`, as a sender computes it."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},v1={sign(secret, at, body)}"


def _parse_signature(header: str | None) -> tuple[int, list[str]] | None:
    """(timestamp, v1 signatures) of a well-formed header; None otherwise."""
    if not header or len(header) > 1000:
        return None
    stamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12 and stamp is None:
            stamp = int(value)
        elif key == "v1" and _HEX.match(value.lower()):
            signatures.append(value.lower())
    return (stamp, signatures[:5]) if stamp is not None and signatures else None


def _refuse(reason: str, message: str, *, hook: str = "", client: str = "", status: int = 401) -> HookRefused:
    record_auth_failure("hook", reason, subject=hook, client=client)
    return HookRefused(reason, message, status=status)


def receive_hook(name: str, body: bytes, signature: str | None, *, client: str = "") -> HookOutcome:
    """Check the request's signature, freshness and novelty, then start the hook's flow as a governed call."""
    check_settings()
    hook = load_hooks(project_root()).get(name)
    if hook is None:
        raise _refuse("unknown_hook", "no such hook", client=client, status=404)
    secret = os.environ.get(hook.secret_env, "")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise _refuse("no_secret", f"hook '{name}' has no usable secret configured; it refuses every request",
                      hook=name, client=client)
    parsed = _parse_signature(signature)
    if parsed is None:
        raise _refuse("unsigned", f"a {SIGNATURE_HEADER}: t=<unix seconds>,v1=<hex HMAC-SHA256> header is required",
                      hook=name, client=client)
    stamp, given = parsed
    expected = sign(secret, stamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in given):
        raise _refuse("bad_signature", "the signature does not match", hook=name, client=client)
    window = get_settings().hook_window_seconds
    now = time.time()
    if abs(now - stamp) > window:
        raise _refuse("stale", f"the signed timestamp is more than {window:g} s from this server's clock",
                      hook=name, client=client)
    st = open_store()
    run_id = uuid.uuid4().hex
    key = hashlib.sha256(f"{name}\0{expected}".encode()).hexdigest()
    facts = {"hook": name, "flow": hook.flow, "signed_at": stamp, "body_sha256": hashlib.sha256(body).hexdigest(),
             "client": client[:100]}
    if not st.remember_hook_delivery(key, name, signed_at=stamp, now=now, run_id=run_id,
                                     forget_before=now - 2 * window):
        raise _refuse("replayed", "this signed request was received before (a replay)", hook=name, client=client,
                      status=409)
    try:
        require_user(st, hook.as_user, CAN_OPERATE, f"starting runs from hook '{name}'")
        parameters = hook_parameters(name, hook, _json_body(name, body))
        governed_start(st, hook.flow, parameters, user=hook.as_user, trigger="hook", run_id=run_id,
                       source=f"hook '{name}'")
    except Exception as exc:
        st.append_events([Event(actor=ACTOR, action="hook.refused",
                                payload=facts | {"as_user": hook.as_user, "reason": str(exc)[:500]})])
        raise
    st.append_events([Event(actor=f"user:{hook.as_user}", action="hook.received", run_id=run_id, payload=facts)])
    return HookOutcome(name, run_id, hook.flow)


def _json_body(name: str, body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise ParameterError(f"hook '{name}': the body is not JSON") from None


def hook_parameters(name: str, hook: Hook, body: Any) -> dict[str, Any]:
    """The flow's parameters: each literal as given, each `$.path` the value at that path in the body."""
    return {param: _at_path(name, param, value, body) if isinstance(value, str) and value.startswith("$") else value
            for param, value in hook.parameters.items()}


def _at_path(name: str, param: str, path: str, body: Any) -> Any:
    if path != "$" and not path.startswith("$."):
        raise ParameterError(f"{HOOKS_FILE}: hook '{name}' parameter {param}: a path is `$` or `$.key.0.key`")
    value = body
    for segment in [s for s in path[2:].split(".") if s] if path != "$" else []:
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            raise ParameterError(f"hook '{name}': the body has no {path} (for the parameter {param})")
    return value
