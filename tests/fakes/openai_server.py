"""A local OpenAI-compatible chat-completions server that replays scripted responses (stream=false only)."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.http_base import FakeServer


def text_reply(content: str, tokens: int = 20) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": content}, "finish_reason": "stop", "tokens": tokens}


def tool_reply(name: str, arguments: dict[str, Any] | str, call_id: str = "call_1", content: str = "",
               tokens: int = 30) -> dict[str, Any]:
    """A tool call; pass `arguments` as a string to send deliberately malformed JSON."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"message": {"role": "assistant", "content": content or None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]},
        "finish_reason": "tool_calls", "tokens": tokens}


def server_error() -> dict[str, Any]:
    return {"error": 500}


class ScriptedOpenAIServer(FakeServer):
    def __init__(self, responses: list[dict[str, Any]]) -> None:
        super().__init__()
        self.responses = list(responses)
        self.completions = 0

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def handle(self, request: dict[str, Any]) -> tuple[int, Any]:
        if request["method"] == "GET" and request["path"].startswith("/v1/models"):
            return 200, {"object": "list", "data": [{"id": "gpt-4.1-mini", "object": "model"}]}
        if not request["path"].startswith("/v1/chat/completions"):
            return 404, {"error": {"message": "not found"}}
        self.completions += 1
        if not self.responses:
            return 500, {"error": {"message": "script exhausted", "type": "server_error"}}
        scripted = self.responses.pop(0)
        if "error" in scripted:
            return scripted["error"], {"error": {"message": "scripted failure", "type": "server_error"}}
        tokens = scripted.get("tokens", 20)
        return 200, {"id": f"chatcmpl-{self.completions}", "object": "chat.completion", "created": 0,
                     "model": request["body"].get("model", "gpt-4.1-mini"),
                     "choices": [{"index": 0, "message": scripted["message"],
                                  "finish_reason": scripted["finish_reason"]}],
                     "usage": {"prompt_tokens": tokens // 2, "completion_tokens": tokens - tokens // 2,
                               "total_tokens": tokens}}
