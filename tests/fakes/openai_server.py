"""A local OpenAI-compatible chat-completions server that replays scripted responses, good and malformed.

A scripted response is one of: a message (`text_reply`, `tool_reply`), a status error (`server_error`), a JSON
body served exactly as given (`{"body": ...}`), raw bytes (`{"raw": RawBody(...)}`), or, for a request with
`stream: true`, the message as server-sent events; `{"cut_stream": True}` ends that stream before its last chunk
(no finish reason, no [DONE]). `MALFORMED` holds one response for each kind of garbage a model server can send.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.http_base import FakeServer, RawBody


def text_reply(content: str, tokens: int = 20) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": content}, "finish_reason": "stop", "tokens": tokens}


def tool_reply(name: str, arguments: dict[str, Any] | str, call_id: str = "call_1", content: str = "",
               tokens: int = 30) -> dict[str, Any]:
    """A tool call; pass `arguments` as a string to send deliberately malformed JSON."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"message": {"role": "assistant", "content": content or None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]},
        "finish_reason": "tool_calls", "tokens": tokens}


def server_error(status: int = 500) -> dict[str, Any]:
    return {"error": status}


def completion(choices: list[Any], tokens: int = 20, model: str = "gpt-4.1-mini") -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model, "choices": choices,
            "usage": {"prompt_tokens": tokens // 2, "completion_tokens": tokens - tokens // 2, "total_tokens": tokens}}


ECHOED_SECRET = b"sk-proxy-echoed-0123456789abcdef"
"""A proxy's error page that echoes the request's credentials: they must reach no record."""
_SCALE = tool_reply("scale_deployment", {"name": "web-app", "replicas": 12})
_WHOLE = json.dumps(completion([{"index": 0, "message": _SCALE["message"], "finish_reason": "tool_calls"}])).encode()

MALFORMED: dict[str, dict[str, Any]] = {
    "empty_choices": {"body": completion([])},
    "null_message": {"body": completion([{"index": 0, "message": None, "finish_reason": "stop"}])},
    "non_utf8_body": {"raw": RawBody(b'{"choices": "\xff\xfe\x80\x81 not text"}')},
    "html_body": {"raw": RawBody(b"<html><body><h1>502 Bad Gateway</h1><pre>Authorization: Bearer " + ECHOED_SECRET
                                 + b"</pre>" + b"<p>padding</p>" * 8000 + b"</body></html>", "text/html")},
    "not_a_chat_completion": {"body": {"object": "list", "data": [{"id": "gpt-4.1-mini", "object": "model"}]}},
    "tool_call_without_function": {"body": completion([{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function"}]}}])},
    "arguments_not_json": tool_reply("scale_deployment", '{"name": "web-app", "replicas": '),
    "arguments_not_an_object": tool_reply("scale_deployment", '["web-app", 12]'),
    "unknown_tool": tool_reply("rm_rf", {"path": "/"}),
    "truncated_body": {"raw": RawBody(_WHOLE[: len(_WHOLE) // 2], declared_length=len(_WHOLE))},
    "truncated_stream": {**tool_reply("send_email", {"to": ["oncall@example.com"], "subject": "scale web-app",
                                                     "body": "cut short"}), "cut_stream": True},
}
"""Each kind of garbage: none of them may turn into an action."""


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4.1-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _stream(scripted: dict[str, Any]) -> RawBody:
    message = scripted["message"]
    parts = [_chunk({"role": "assistant", "content": message.get("content") or ""})]
    for i, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        parts.append(_chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"],
                                                          "arguments": arguments[:half]}}]}))
        parts.append(_chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[half:]}}]}))
    if not scripted.get("cut_stream"):
        parts += [_chunk({}, scripted["finish_reason"]), b"data: [DONE]\n\n"]
    return RawBody(b"".join(parts), "text/event-stream")


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
        if "body" in scripted:
            return 200, scripted["body"]
        if "raw" in scripted:
            return 200, scripted["raw"]
        if (request["body"] or {}).get("stream"):
            return 200, _stream(scripted)
        message = {"index": 0, "message": scripted["message"], "finish_reason": scripted["finish_reason"]}
        return 200, {**completion([message], scripted.get("tokens", 20), request["body"].get("model", "gpt-4.1-mini")),
                     "id": f"chatcmpl-{self.completions}"}
