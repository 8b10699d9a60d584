"""Which chat model an agent uses, and one call to it: bound tools, usage, latency, playbook fallback."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.runnables import Runnable

from agentops.agents.models.playbook import NAME as PLAYBOOK
from agentops.agents.models.playbook import PlaybookChatModel
from agentops.agents.models.replies import check_reply, check_stream, describe, unreachable
from agentops.errors import ModelReplyError
from agentops.settings import get_settings

DEFAULT_OPENAI_MODEL = "openai:gpt-4.1-mini"
PRICES_PER_MILLION = {"gpt-4.1-mini": (0.40, 1.60), "gpt-4.1": (2.0, 8.0), "gpt-4o-mini": (0.15, 0.60)}
"""USD per million input/output tokens, for the per-run cost budget (unknown models cost 0)."""
CLIENT_RETRIES = 2
"""The provider client's own retries of one request (connection errors, 408/409/429/5xx), before a turn fails."""


@dataclass
class ModelCallResult:
    message: AIMessage
    model_name: str
    latency_ms: float
    usage: dict[str, int] = field(default_factory=dict)
    fallback: str | None = None
    error: str | None = None
    cost_usd: float = 0.0


def get_chat_model(spec: str | None, *, root: Path) -> tuple[BaseChatModel, str]:
    """The configured model, or the playbook model when none is configured and there is no API key."""
    if spec is None and not os.environ.get("OPENAI_API_KEY"):
        return PlaybookChatModel.from_project(root), PLAYBOOK
    spec = spec or DEFAULT_OPENAI_MODEL
    if spec == PLAYBOOK:
        return PlaybookChatModel.from_project(root), PLAYBOOK
    from langchain.chat_models import init_chat_model

    options: dict[str, Any] = {"streaming": True} if get_settings().model_streaming else {}
    model = init_chat_model(spec, max_retries=CLIENT_RETRIES, timeout=60, **options)
    model._agentops_root = root
    return model, spec


def _usage(message: AIMessage) -> dict[str, int]:
    meta = getattr(message, "usage_metadata", None) or {}
    return {"input_tokens": int(meta.get("input_tokens", 0)), "output_tokens": int(meta.get("output_tokens", 0)),
            "total_tokens": int(meta.get("total_tokens", 0))}


def _cost(model_name: str, usage: dict[str, int]) -> float:
    for prefix, (cin, cout) in PRICES_PER_MILLION.items():
        if model_name.split(":")[-1].startswith(prefix):
            return (usage["input_tokens"] * cin + usage["output_tokens"] * cout) / 1_000_000
    return 0.0


def price_known(model_name: str) -> bool:
    """Whether a model's cost can be worked out: a priced model, or the playbook model (local, free)."""
    bare = model_name.split(":")[-1]
    return bare == PLAYBOOK or any(bare.startswith(prefix) for prefix in PRICES_PER_MILLION)


def call_model(model: BaseChatModel, messages: list[BaseMessage], tools: list[Any], *,
               bound: Runnable[Any, Any] | None = None) -> ModelCallResult:
    """One model turn, its reply checked (`replies.check_reply`).

    An unusable reply, or a call that failed although the model was reachable, raises ModelReplyError: the
    caller retries the turn within its budget, and never acts on it. Only an unreachable model (see
    `replies.unreachable`) falls back to the playbook model, and the result says so and why.
    `bound` is `model.bind_tools(tools)` made once by the caller (binding converts every tool's schema).
    """
    started = time.perf_counter()
    names = {getattr(t, "name", "") for t in tools}
    streamed = bool(getattr(model, "streaming", False))
    try:
        runnable = bound if bound is not None else model.bind_tools(tools) if tools else model
    except Exception as exc:
        raise ModelReplyError(f"the model cannot be given the agent's tools: {describe(exc)}") from exc
    try:
        message = _streamed(runnable, messages) if streamed else runnable.invoke(messages)
        check_reply(message, names, streamed=streamed)
        error = fallback = None
    except ModelReplyError:
        raise
    except Exception as exc:
        if isinstance(model, PlaybookChatModel):
            raise
        if not unreachable(exc):
            raise ModelReplyError(f"the model call failed: {describe(exc)}") from exc
        root = getattr(model, "_agentops_root", None) or Path.cwd()
        playbook = PlaybookChatModel.from_project(root)
        message = (playbook.bind_tools(tools) if tools else playbook).invoke(messages)
        error, fallback = f"the model is unreachable: {describe(exc)}", PLAYBOOK
        message.response_metadata = {**message.response_metadata, "fallback": PLAYBOOK, "error": error}
    latency = (time.perf_counter() - started) * 1000
    name = (message.response_metadata or {}).get("model_name") or getattr(model, "model_name", None) or PLAYBOOK
    if fallback:
        name = PLAYBOOK
    usage = _usage(message)
    return ModelCallResult(message, str(name), latency, usage, fallback, error, _cost(str(name), usage))


def _streamed(runnable: Runnable[Any, Any], messages: list[BaseMessage]) -> AIMessage:
    """A streamed reply added up chunk by chunk, its tool calls' argument text checked whole."""
    total: AIMessageChunk | None = None
    for chunk in runnable.stream(messages):
        total = chunk if total is None else total + chunk
    check_stream(total)
    assert total is not None
    message = message_chunk_to_message(total)
    if not isinstance(message, AIMessage):
        raise ModelReplyError(f"the stream held a {type(message).__name__}, not an AI message")
    return message
