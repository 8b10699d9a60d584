"""Remove secrets from anything bound for the ledger or a log: by key name and by value."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from agentops.settings import environment_secrets

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token(?!s)|api[_-]?key|apikey|authorization|auth[_-]?header|credential|private[_-]?key|cookie)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-]{8,}|ghp_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}"
    r"|\$argon2[a-z]*\$[^\s\"']+)"
)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


class Redactor:
    """Redacts known secret values (from settings and the environment) and secret-looking keys."""

    def __init__(self, secret_values: list[str] | None = None) -> None:
        values = sorted({v for v in (secret_values or []) if v and len(v) >= 6}, key=len, reverse=True)
        self._values = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def text(self, value: str) -> str:
        if self._values is not None:
            value = self._values.sub(REDACTED, value)
        for secret in _run_secrets.get():
            value = value.replace(secret, REDACTED)
        return _SECRET_VALUE.sub(REDACTED, value)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: (_hidden(v) if isinstance(k, str) and is_secret_key(k) else self(v)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


def _hidden(value: Any) -> Any:
    """Everything textual under a secret-looking key; numbers, booleans and empty values say nothing secret."""
    if isinstance(value, str | bytes):
        return REDACTED if value else value
    if isinstance(value, dict):
        return {k: _hidden(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hidden(v) for v in value]
    return value


_default: Redactor | None = None
_run_secrets: ContextVar[tuple[str, ...]] = ContextVar("agentops_run_secrets", default=())


@contextmanager
def secret_values(values: Iterable[str]) -> Iterator[None]:
    """Redact these values too, in this context (a run's secret parameters, wherever the flow passes them)."""
    known = tuple(sorted({v for v in values if isinstance(v, str) and len(v) >= 6}, key=len, reverse=True))
    token = _run_secrets.set(_run_secrets.get() + known)
    try:
        yield
    finally:
        _run_secrets.reset(token)


def secret_parameter_values(params: dict[str, Any]) -> list[str]:
    """Values a run must never store: parameters under secret-looking names, and SecretStr values."""
    found = []
    for key, value in params.items():
        if hasattr(value, "get_secret_value"):
            found.append(value.get_secret_value())
        elif is_secret_key(key) and isinstance(value, str):
            found.append(value)
    return found


def default_redactor() -> Redactor:
    """The process-wide redactor, built once from the environment's secret values."""
    global _default
    if _default is None:
        _default = Redactor(environment_secrets())
    return _default


def reset_redactor() -> None:
    global _default
    _default = None


def redact(value: Any) -> Any:
    return default_redactor()(value)
