"""A scripted chat model for tests: replies in order, records what it was sent, refuses extra calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

Reply = AIMessage | Callable[[list[BaseMessage]], AIMessage]


class ScriptedChatModel(BaseChatModel):
    replies: list[Any] = Field(default_factory=list)
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[list[str]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        if len(self.calls) >= len(self.replies):
            raise AssertionError(f"scripted model called {len(self.calls) + 1} times but has {len(self.replies)} "
                                 "replies: a recorded model call was sent again?")
        self.calls.append(list(messages))
        self.bound_tools.append([t["function"]["name"] for t in kwargs.get("tools") or []])
        reply = self.replies[len(self.calls) - 1]
        message = reply(messages) if callable(reply) else reply.model_copy()
        message.response_metadata = {"model_name": "scripted", **(message.response_metadata or {})}
        if message.usage_metadata is None:
            message.usage_metadata = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
        return ChatResult(generations=[ChatGeneration(message=message)])
