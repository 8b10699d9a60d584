"""A ledger event in a few words for the Audit page's table (`run → AWAITING_APPROVAL`, `send_email: needs
approval (tools.send_email)`); the whole payload stays one click away, as pretty JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]


def clip(text: str, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"


def payload_of(text: str | None) -> Any:
    """The event's payload decoded; the text itself when it is not JSON."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


def event_summary(action: str, payload: Any) -> str:
    """What the event says, in words; for an action with no words here, its first few plain fields."""
    if not isinstance(payload, dict):
        return clip(str(payload), 100)
    try:
        words = _WORDS[action](payload) if action in _WORDS else None
    except (KeyError, TypeError, ValueError, AttributeError):
        words = None
    return clip(words or _fields(payload), 160)


def _fields(payload: Payload) -> str:
    plain = [(k, v) for k, v in payload.items() if isinstance(v, str | int | float | bool) and not k.endswith("digest")]
    return " · ".join(f"{k} {v}" for k, v in plain[:4]) or (f"{len(payload)} fields" if payload else "")


def _args(args: Any) -> str:
    """`to=["ops@example.com"], subject=Weekly…, attachments=[3 items]`: short values first, nested ones counted."""
    if not isinstance(args, dict):
        return ""
    shown = sorted(((_rank(v), k, _value(v)) for k, v in args.items() if v is not None), key=lambda t: t[0])
    return ", ".join(f"{k}={text}" for _, k, text in shown[:4]) + (", …" if len(shown) > 4 else "")


def _rank(value: Any) -> int:
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return 0
    if isinstance(value, str):
        return 0 if len(value) <= 40 else 1
    return 2 if isinstance(value, dict | list) else 0


def _value(value: Any) -> str:
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return f"[{len(value)} item{'' if len(value) == 1 else 's'}]"
    if isinstance(value, dict):
        return f"{{{len(value)} field{'' if len(value) == 1 else 's'}}}"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return clip(text, 40)


def _call(tool: str, args: Any) -> str:
    return f"{tool}({_args(args)})"


def _run_state(p: Payload) -> str:
    extra = f" ({clip(str(p['message']), 60)})" if p.get("message") else ""
    return f"run → {p['state']}{extra}"


def _step_state(p: Payload) -> str:
    attempts = f", attempt {p['attempts']}" if p.get("attempts") and p["attempts"] != 1 else ""
    error = f": {clip(str(p['error']), 60)}" if p.get("error") else ""
    return f"step {p['task']} → {p['state']}{attempts}{error}"


def _verdict(p: Payload) -> str:
    verdict = p.get("verdict") or {}
    rule = f" (rule {verdict['rule']})" if isinstance(verdict, dict) and verdict.get("rule") else ""
    return f"{_call(p['tool'], p.get('args'))}: {p['status']}{rule}"


def _tool_result(p: Payload) -> str:
    return f"{_call(p['tool'], p.get('args'))} → {p['status']}: {clip(str(p.get('content') or ''), 60)}"


def _requested(p: Payload) -> str:
    reason = f": {clip(str(p['reason']), 60)}" if p.get("reason") else ""
    return f"asks to {_call(p['action'], p.get('args'))}{reason}"


def _decided(p: Payload) -> str:
    by = ", ".join(p.get("decided_by") or [])
    message = f": {clip(str(p['message']), 60)}" if p.get("message") else ""
    return f"{p['decision']}" + (f" by {by}" if by else "") + message


def _vote(p: Payload) -> str:
    return f"{p['decision']} vote {p['votes']} of {p['quorum']}"


def _model_call(p: Payload) -> str:
    usage = p.get("usage") or {}
    tokens = f", {int(usage['total_tokens']):,} tokens" if usage.get("total_tokens") else ""
    proposed = p.get("proposed") or []
    names = [str(c.get("name")) if isinstance(c, dict) else str(c) for c in proposed]
    calls = f", proposes {', '.join(names)}" if names else ", answers"
    return f"{p['model']}{tokens}, {float(p['latency_ms']):,.0f} ms{calls}"


def _expired(p: Payload) -> str:
    return f"{p['action']} request expired"


def _cancelled(p: Payload) -> str:
    return f"{p['action']} request cancelled: {p.get('reason') or ''}".rstrip(": ")


def _login(p: Payload) -> str:
    return f"{p['user']} logged in" + (f" via {p['via']}" if p.get("via") else "")


_WORDS: dict[str, Callable[[Payload], str]] = {
    "run.state": _run_state, "step.state": _step_state, "policy.verdict": _verdict, "tool.result": _tool_result,
    "approval.requested": _requested, "approval.decided": _decided, "approval.vote": _vote,
    "approval.expired": _expired, "approval.cancelled": _cancelled, "model.call": _model_call,
    "user.login": _login}
