"""What counts as a usable model reply, and which failed calls mean that the model is unreachable.

A reply is usable when it is an AI message whose every tool call names a tool the agent was given, with a
JSON object of arguments, and which ended normally: a streamed reply, and any reply from an OpenAI-compatible
server, carries a finish reason other than `length`. Anything else raises ModelReplyError, and never becomes
an action.

A failed call means the model is *unreachable*, and only then may the playbook model stand in, when the
connection was never made (refused, a DNS failure, a connect timeout), the request timed out, or the server
said it cannot serve now (a 5xx or a 429 status) after the provider client's own retries. Anything else the
client raises is a ModelReplyError as well: a body cut off in transit, a body that is not UTF-8 or not JSON,
a JSON body that is not a chat completion, a 4xx (a bad key, a request the server refuses).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

from agentops.core.redaction import default_redactor
from agentops.errors import ModelReplyError

REASON_CHARS = 300
"""A recorded reason keeps at most this much of an error's text: never a whole reply body."""

_UNREACHABLE = {"APITimeoutError", "InternalServerError", "RateLimitError", "ConnectError", "ConnectTimeout",
                "TimeoutException", "ConnectionRefusedError", "gaierror", "TimeoutError"}
"""Exception classes (by name, so that every provider SDK built on httpx or httpx2 is covered) that mean the
request never reached a model able to answer it."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 12:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def unreachable(exc: BaseException) -> bool:
    """True when the failed call means the model could not be reached (see the module's docstring)."""
    for link in _chain(exc):
        names = {cls.__name__ for cls in type(link).__mro__}
        if names & _UNREACHABLE:
            return True
        status = getattr(link, "status_code", None)
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
    return False


def describe(exc: BaseException) -> str:
    """One redacted line naming what failed: the error and, behind a generic one, its cause."""
    links = list(_chain(exc))
    text = _one(exc)
    if len(links) > 1:
        text += f" (caused by {_one(links[-1])})"
    return _clean(text)


def _one(exc: BaseException) -> str:
    message = _first_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _first_line(text: str) -> str:
    """The first line, redacted before it is cut (a cut could leave a secret too short to be recognised)."""
    return default_redactor().text((text.strip().splitlines() or [""])[0])[:REASON_CHARS]


def _clean(text: str) -> str:
    return default_redactor().text(text)[: REASON_CHARS * 2]


def check_reply(message: BaseMessage, tools: set[str], *, streamed: bool = False) -> None:
    """Raise ModelReplyError, with the reason, unless `message` is a usable reply for an agent given `tools`."""
    if not isinstance(message, AIMessage):
        raise ModelReplyError(f"the model returned a {type(message).__name__}, not an AI message")
    for bad in message.invalid_tool_calls:
        detail = _first_line(str(bad.get("error") or "they do not parse as a JSON object"))
        raise ModelReplyError(_clean(f"tool call '{bad.get('name') or '(no name)'}': its arguments are not a JSON "
                                     f"object: {detail}"))
    for call in message.tool_calls:
        name = call.get("name")
        if not isinstance(call.get("args"), dict):
            raise ModelReplyError(_clean(f"tool call '{name}': its arguments are not a JSON object"))
        if name not in tools:
            known = ", ".join(sorted(tools)) or "none"
            raise ModelReplyError(_clean(f"tool call names an unknown tool {str(name)[:80]!r} (given: {known})"))
    meta = message.response_metadata or {}
    if streamed or meta.get("model_provider") == "openai":
        finish = meta.get("finish_reason", meta.get("stop_reason"))
        if finish is None:
            raise ModelReplyError("the reply ended before it was complete (no finish reason: a cut-off stream)")
        if finish in ("length", "max_tokens"):
            raise ModelReplyError(f"the reply was cut off at the token limit (finish reason {finish!r})")


def check_stream(total: AIMessageChunk | None) -> None:
    """A streamed reply, all chunks added up: each tool call's argument text must be one whole JSON object.
    (LangChain parses partial JSON from a stream, so `{"name": "web-app", "replicas": ` would read as a call.)"""
    if total is None:
        raise ModelReplyError("the stream ended before any part of the reply")
    for chunk in total.tool_call_chunks:
        text = chunk.get("args") or ""
        try:
            args: Any = json.loads(text) if text else {}
        except ValueError:
            args = None
        if not isinstance(args, dict):
            raise ModelReplyError(_clean(f"tool call '{chunk.get('name') or '(no name)'}': its streamed arguments "
                                         "are not a whole JSON object"))
