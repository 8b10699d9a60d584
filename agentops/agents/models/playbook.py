"""The playbook model: a deterministic LangChain chat model that turns playbook rules into tool calls.

It is the embedded default when no model is configured, and the fallback when the configured model
is unreachable. Rules live in prompts/playbooks/*.yaml:

    rules:                      # the incident runbook, evaluated per deployment
      - when: cpu_percent > 80
        call: scale_deployment
        args: {name: "{name}", replicas: "=min(replicas * 2, 20)"}   # "=" marks an expression
        reason: "CPU at {cpu_percent:.0f}% on {name}"
    routes:                     # the chat dispatcher (intents.py): a pattern picks a flow or a tool call
      - pattern: '\\bscale\\b'
        call: scale_deployment
        args: {name: "{deployment}", replicas: "=replicas"}
        needs: [deployment, replicas]

Facts come from tool results (JSON with "deployments") and from the operator's text ("web-app is at
95% CPU"). It only calls tools that are bound, never repeats a call, and answers plainly otherwise.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import yaml
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from agentops.agents.models import intents
from agentops.core.expressions import evaluate

NAME = "playbook"
_DEPLOYMENT_TEXT = re.compile(r"\b(?:deployment\s+)?([a-z][a-z0-9-]*-[a-z0-9-]+|[a-z]+-?app|api|worker|checkout)\b"
                              r"(?=\s+(?:is|has|at|shows|reports)|\s*:|\s+and|\s*,|\s+apply)", re.IGNORECASE)
_CPU_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*%\s*cpu|cpu\D{0,12}(\d+(?:\.\d+)?)\s*%", re.IGNORECASE)
_DEPLOYMENT_WORD = re.compile(r"\bdeployment\s+([a-z0-9][a-z0-9-]*)", re.IGNORECASE)


def load_playbooks(root: Path) -> list[dict[str, Any]]:
    books = []
    for path in sorted((root / "prompts" / "playbooks").glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        data.setdefault("name", path.stem)
        books.append(data)
    return books


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, list):
        return " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _fill(template: Any, facts: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        return {k: _fill(v, facts) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, facts) for v in template]
    if isinstance(template, str) and template.startswith("="):
        return evaluate(template[1:], facts)
    if isinstance(template, str):
        try:
            return template.format(**facts)
        except (KeyError, ValueError, IndexError):
            return template
    return template


class PlaybookChatModel(BaseChatModel):
    """Deterministic rules as a chat model. Labelled `playbook` in every AI message it produces."""

    playbooks: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def from_project(cls, root: Path) -> PlaybookChatModel:
        return cls(playbooks=load_playbooks(root))

    @property
    def _llm_type(self) -> str:
        return NAME

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        bound = {t["function"]["name"] for t in kwargs.get("tools") or []}
        message = self._decide(messages, bound)
        message.response_metadata = {"model_name": NAME, "playbook": True}
        message.usage_metadata = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        return ChatResult(generations=[ChatGeneration(message=message)])

    # -- deciding --------------------------------------------------------------------------------

    def _decide(self, messages: list[BaseMessage], bound: set[str]) -> AIMessage:
        request = next((_text(m) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        called = [(c["name"], c.get("args", {})) for m in messages if isinstance(m, AIMessage)
                  for c in m.tool_calls]
        results = [m for m in messages if isinstance(m, ToolMessage)]
        if "start_flow" in bound:
            return self._dispatch(messages, request, bound, called, results)
        return self._runbook(request, bound, called, results)

    def _dispatch(self, messages: list[BaseMessage], request: str, bound: set[str],
                  called: list[tuple[str, dict]], results: list[ToolMessage]) -> AIMessage:
        if called:
            return AIMessage(content=self._summary(results, "I started nothing."))
        system = next((_text(m) for m in messages if isinstance(m, SystemMessage)), "")
        routes = [r for b in self.playbooks for r in b.get("routes", [])]
        picked = intents.route(request, routes, intents.Known.from_prompt(system))
        if isinstance(picked, intents.Answer):
            return AIMessage(content=picked.text)
        if picked.tool not in bound:
            return AIMessage(content=f"That needs the {picked.tool} tool, which this dispatcher does not have; "
                                     "I did nothing.")
        what = f"Starting {picked.flow}" if picked.flow else f"Calling {picked.tool}"
        return _call(picked.tool, picked.args, f"{what} for: {request}")

    def _runbook(self, request: str, bound: set[str], called: list[tuple[str, dict]],
                 results: list[ToolMessage]) -> AIMessage:
        rules = [r for b in self.playbooks for r in b.get("rules", []) if r.get("call") in bound]
        if not rules:
            return AIMessage(content=self._summary(results, f"No playbook rule applies to: {request}"))
        focus = _deployment_in(request)
        deployments = _deployments_from(results)
        if not deployments and "get_metrics" in bound and not any(n == "get_metrics" for n, _ in called):
            return _call("get_metrics", {"name": focus} if focus else {}, "Reading the cluster's metrics first.")
        if not deployments:
            deployments = _facts_from_text(request, focus)
        if focus:
            deployments = [d for d in deployments if d.get("name") == focus] or deployments
        done = {(name, args.get("name") or args.get("title", "")) for name, args in called}
        calls, reasons = [], []
        for facts in deployments:
            for rule in rules:
                try:
                    applies = bool(evaluate(rule["when"], facts))
                except (ValueError, TypeError):
                    continue
                if not applies:
                    continue
                args = _fill(rule.get("args") or {}, facts)
                key = (rule["call"], args.get("name") or args.get("title", ""))
                if key in done:
                    continue
                done.add(key)
                calls.append({"name": rule["call"], "args": args, "id": f"call_{uuid.uuid4().hex[:12]}",
                              "type": "tool_call"})
                reasons.append(_fill(rule.get("reason", rule["when"]), facts))
        if calls:
            return AIMessage(content="; ".join(reasons), tool_calls=calls)
        names = ", ".join(d.get("name", "?") for d in deployments) or "the request"
        return AIMessage(content=self._summary([r for r in results if not _is_metrics(r)],
                                               f"No playbook rule applies to {names}; nothing to do."))

    @staticmethod
    def _summary(results: list[ToolMessage], nothing: str) -> str:
        lines = []
        for r in results:
            if _is_metrics(r):
                continue
            lines.append(f"- {r.name or 'tool'}: {_readable(_text(r))[:300]}")
        return ("Done, per the playbook:\n" + "\n".join(lines)) if lines else nothing


def _readable(text: str) -> str:
    """A tool's JSON object result as `key value` pairs a person reads at a glance; other text as it is."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    if isinstance(data.get("answer"), str):
        return data["answer"]
    if {"run_id", "flow"} <= data.keys():
        return f"started {data['flow']} as run {data['run_id']}"
    return ", ".join(f"{key} {value if isinstance(value, str | int | float) else json.dumps(value)}"
                     for key, value in data.items())


def _call(name: str, args: dict[str, Any], content: str) -> AIMessage:
    return AIMessage(content=content, tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}",
                                                   "type": "tool_call"}])


def _is_metrics(message: ToolMessage) -> bool:
    return bool(_deployments_from([message]))


def _deployments_from(results: list[ToolMessage]) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for message in results:
        try:
            data = json.loads(_text(message))
        except (json.JSONDecodeError, TypeError):
            continue
        items = data.get("deployments") if isinstance(data, dict) else None
        for item in items or []:
            if isinstance(item, dict) and "name" in item:
                found[item["name"]] = item
    return list(found.values())


def _deployment_in(text: str) -> str | None:
    named = _DEPLOYMENT_WORD.search(text)
    if named:
        return named.group(1).lower()
    match = _DEPLOYMENT_TEXT.search(text)
    return match.group(1).lower() if match else None


def _facts_from_text(text: str, focus: str | None) -> list[dict[str, Any]]:
    cpu = _CPU_TEXT.search(text)
    if not focus or not cpu:
        return []
    return [{"name": focus, "cpu_percent": float(cpu.group(1) or cpu.group(2)), "replicas": 1,
             "error_rate": 0.0, "p95_latency_ms": 0.0}]
