"""JSON in and out of the store, and the digests that bind approvals and steps to exact inputs."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pydantic_core

from agentops.core.redaction import redact
from agentops.errors import SerializationError


def dumps(value: Any) -> str:
    """Serialise a value (pydantic models, dataclasses, datetimes included) to compact JSON text."""
    try:
        return pydantic_core.to_json(value).decode()
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
        raise SerializationError(
            f"cannot store a value of type {type(value).__name__} as JSON: {exc}"
        ) from None


def non_finite_at(value: Any, where: str = "value") -> str | None:
    """Where a value holds NaN or an infinity (JSON numbers cannot be either; stored, they would turn to null), or
    None."""
    todo: list[tuple[Any, str]] = [(value, where)]
    while todo:
        item, at = todo.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return at
        if isinstance(item, dict):
            todo += [(v, f"{at}.{k}") for k, v in item.items()]
        elif isinstance(item, (list, tuple)):
            todo += [(v, f"{at}[{i}]") for i, v in enumerate(item)]
    return None


def stored(value: Any) -> str:
    """JSON for a database column: secrets redacted (by key name and by value) before anything is written."""
    return dumps(redact(value))


def canonical(value: Any) -> str:
    """Sorted-key JSON, stable across processes: the input of every digest."""
    return json.dumps(json.loads(dumps(value)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None, what: str = "a stored value") -> Any:
    """Decode stored JSON; corrupt text is a SerializationError naming `what` (e.g. "run 1f2e parameters")."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        where = f" ({exc.msg} at character {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise SerializationError(f"{what} is not valid JSON{where}; the row was edited or damaged") from None


def digest(value: Any) -> str:
    """sha256 hex of the canonical JSON of `value`."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()


def safe_digest(value: Any) -> str:
    """Like `digest`, but falls back to repr() for inputs that are not JSON (e.g. open clients)."""
    try:
        return digest(value)
    except SerializationError:
        return hashlib.sha256(repr(value).encode()).hexdigest()


def safe_dumps(value: Any, limit: int = 20_000) -> str:
    """JSON for display (step inputs): never fails, truncates very large values."""
    try:
        text = dumps(value)
    except SerializationError:
        text = json.dumps(repr(value))
    if len(text) > limit:
        text = json.dumps({"truncated": True, "preview": text[:limit]})
    return text
