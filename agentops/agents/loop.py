"""The agent loop we own, on LangChain chat models, tools and messages (no LangGraph checkpoints).

Per model turn: one `model` step (messages in, AI message out, usage, latency, model name, prompt
hash). Per proposed tool call: a `policy` step (whitelist, schema and policy verdict, recorded so a
replay sees the same verdict even after rate windows moved), an `approval` step when the policy
asks for one, and a `tool` step that runs the tool with an idempotency key of its own step. On
resume every recorded step returns its record: no model call is sent twice, no effect runs twice.

A reply that is not usable (agents/models/replies.py) is never acted on: the model step is retried within
AGENTOPS_MODEL_REPLY_RETRIES, each failed attempt recorded with its reason, and then the run fails, or with
AGENTOPS_MODEL_ON_ERROR=ask a person decides whether the turn is sent again. The playbook model stands in only
for an unreachable model; the calls it proposes are screened as fallback calls (the policy's `fallback:`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentops.agents.prompts import load_prompt
from agentops.core.ledger import Event
from agentops.engine import tracing
from agentops.engine.context import current_run, current_step
from agentops.engine.mcp import McpInputRequired, Resume, mcp_tools, resuming
from agentops.engine.project import project_root
from agentops.engine.tasks import StepFacts, Task
from agentops.engine.toolkit import ToolCallInfo, current_tool_call, key_for, load_tools
from agentops.errors import AgentOpsError, ModelReplyError
from agentops.governance import provenance
from agentops.governance import screening as governance
from agentops.governance.approvals import request_approval
from agentops.governance.budgets import RunBudget
from agentops.settings import get_settings

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langchain_core.tools import BaseTool

    from agentops.db import Store
    from agentops.db.records import RunRecord

MAX_RESULT_CHARS = 8000
MAX_INPUT_ROUNDS = 3
"""How many times one MCP call may ask for input (each question a `respond` approval) before it is an error."""
MODEL_RETRY = "model.retry"
"""The action of the approval that asks a person whether to send a turn again (AGENTOPS_MODEL_ON_ERROR=ask)."""
_DATA_TRIGGERS = {"alert": "the alert that started the run", "hook": "the webhook that started the run"}
"""Runs whose parameters are data from outside, not a person's words."""
def _parameter_sources(store: Store, run: RunRecord) -> list[provenance.Source]:
    """A run's parameters as a source: a person's words when someone started it; data when an alert or a webhook
    did, or a model wrote them (the chat dispatcher's `start_flow`, an MCP client), with the person's chat message
    the dispatcher acted on, when the run has that parent."""
    text = provenance.source_text(run.parameters)
    trigger = run.trigger or ""
    if trigger in _DATA_TRIGGERS:
        return [provenance.Source(_DATA_TRIGGERS[trigger], text)]
    if trigger.startswith("mcp:"):
        return [provenance.Source("the parameters an MCP client sent", text)]
    if trigger == "chat" and run.parent_run_id:
        sources = [provenance.Source("the parameters the chat dispatcher wrote", text)]
        parent = store.get_run(run.parent_run_id)
        message = _parameters(parent.parameters).get("message") if parent is not None else None
        if isinstance(message, str):
            sources.insert(0, provenance.Source("the chat message", provenance.source_text(message), person=True))
        return sources
    return [provenance.Source("the run's parameters", text, person=True)]


def _parameters(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


_NOT_APPROVED = {"reject": "rejected", "expired": "left to expire", "respond": "answered, not approved"}


@dataclass
class ToolOutcome:
    """What happened to one proposed tool call."""

    name: str
    args: dict[str, Any]
    status: str
    """ok | error | refused | rejected | expired | responded"""
    content: str
    verdict: dict[str, Any] | None = None
    approval_id: str | None = None
    edited: bool = False
    result: Any = None
    """The tool's return value (JSON-safe) when it ran."""


@dataclass
class AgentResult:
    answer: str
    tool_calls: list[ToolOutcome] = field(default_factory=list)
    model: str | None = None
    turns: int = 0
    stopped: str = "answered"
    """answered | max_turns"""


@dataclass
class Agent:
    """An agent: a name, a system prompt from prompts/, a whitelist of tools, a model and limits.

    Call `.run(task_text)` inside a flow.
    """

    name: str
    prompt: str
    tools: list[str]
    model: Any = None
    """An init_chat_model string, a LangChain chat model instance, or None for the configured default."""
    max_turns: int = 8
    approval_expires_in: float | None = 24 * 3600
    root: Path | None = None
    extra_tools: list[Any] = field(default_factory=list)
    """LangChain tools built in code rather than found in tools/ (the chat dispatcher's start_flow)."""

    def run(self, task_text: str, **prompt_values: Any) -> AgentResult:
        ctx = current_run.get()
        if ctx is None:
            raise AgentOpsError(f"agent '{self.name}' must run inside a flow (its steps are recorded on a run)")
        return _Loop(self, ctx, prompt_values).run(task_text)

    def use(self, tool: str, **args: Any) -> ToolOutcome:
        """A call the flow makes itself, not the model: whitelisted, screened, approved if the policy says so,
        and recorded as steps exactly like a model-proposed call. The agent's tools, prompt and policy are
        loaded on its first call in a run and kept for the rest of it."""
        ctx = current_run.get()
        if ctx is None:
            raise AgentOpsError(f"agent '{self.name}' must run inside a flow (its steps are recorded on a run)")
        key = f"agent-use:{id(self)}"
        cached = ctx.extras.get(key)
        if cached is None or cached[0] is not self:
            cached = ctx.extras[key] = (self, _Loop(self, ctx, {}))
        return cached[1]._handle_call(tool, args, f"flow_{tool}", [])


class _Loop:
    def __init__(self, agent: Agent, ctx: Any, prompt_values: dict[str, Any]) -> None:
        from agentops.agents.models.factory import get_chat_model  # langchain loads with the first agent, not on import

        self.agent = agent
        self.ctx = ctx
        self.root = agent.root or project_root()
        self.settings = get_settings()
        self.prompt = load_prompt(self.root, agent.prompt)
        self.system_text = self.prompt.render(**prompt_values)
        available = {**load_tools(self.root), **{t.name: t for t in agent.extra_tools}}
        from_mcp = mcp_tools(self.root, agent.tools)  # entry -> its MCP tools by `server.tool`; only those named
        missing = [t for t in agent.tools if t not in available and t not in from_mcp]
        if missing:
            raise AgentOpsError(f"agent '{agent.name}' lists unknown tools: {', '.join(missing)} "
                                f"(tools/ defines: {', '.join(sorted(available))})")
        self.whitelist: dict[str, BaseTool] = {}
        for t in agent.tools:
            self.whitelist.update(from_mcp.get(t) or {t: available[t]})
        self.model_names = {tool.name: name for name, tool in self.whitelist.items()}
        if len(self.model_names) != len(self.whitelist):  # e.g. server `ops_` tool `x` and server `ops` tool `_x`
            clash = sorted(n for n in self.model_names
                           if sum(t.name == n for t in self.whitelist.values()) > 1)
            raise AgentOpsError(f"agent '{agent.name}': tools {', '.join(sorted(self.whitelist))} give the model "
                                f"the same name ({', '.join(clash)}), so a call could not be told apart; rename or "
                                "drop one of them")
        """The name the model calls a tool by (`server__tool` for an MCP tool) -> its name here."""
        self.policy = governance.project_policy(self.root)
        if agent.model is not None and not isinstance(agent.model, str):
            self.model, self.model_label = agent.model, type(agent.model).__name__
        else:
            self.model, self.model_label = get_chat_model(agent.model or self.settings.model, root=self.root)
        self.actor = f"agent:{agent.name}"
        self._message_dicts: dict[int, tuple[BaseMessage, dict[str, Any]]] = {}
        self._bound_model: Any = None

    @property
    def bound_model(self) -> Any:
        """The model with the whitelisted tools bound, made on the first live model call and reused; None when
        binding fails, so that call_model binds again and the failure is the turn's recorded model error."""
        if self._bound_model is None:
            tools = list(self.whitelist.values())
            try:
                self._bound_model = self.model.bind_tools(tools) if tools else self.model
            except Exception:
                return None
        return self._bound_model

    def _as_dicts(self, messages: list[BaseMessage]) -> list[dict[str, Any]]:
        """messages_to_dict, converting each message once: every model step records the whole conversation."""
        from langchain_core.messages import message_to_dict

        out = []
        for message in messages:
            cached = self._message_dicts.get(id(message))
            if cached is None or cached[0] is not message:
                cached = (message, message_to_dict(message))
                self._message_dicts[id(message)] = cached
            out.append(cached[1])
        return out

    # -- steps ---------------------------------------------------------------------------------------

    def _model_turn(self, messages: list[BaseMessage]) -> dict[str, Any]:
        from langchain_core.messages import messages_to_dict

        from agentops.agents.models.factory import call_model  # langchain loads with the first agent, not on import

        retries = self.settings.model_reply_retries
        ask = self.settings.model_on_error == "ask"
        failed = [0]

        provider, _, requested = self.model_label.rpartition(":")

        def call(turn: int) -> dict[str, Any]:
            RunBudget.of(self.ctx).take_model_call(self.policy, self.agent.name)
            with tracing.span(f"chat {requested}", {"gen_ai.operation.name": "chat", "gen_ai.request.model": requested,
                                                    "gen_ai.provider.name": provider or None,
                                                    "gen_ai.agent.name": self.agent.name,
                                                    "agentops.model.turn": turn}) as span:
                try:
                    result = call_model(self.model, messages, list(self.whitelist.values()), bound=self.bound_model)
                except ModelReplyError as exc:
                    failed[0] += 1
                    if ask and failed[0] > retries:
                        span.set({"agentops.model.unusable": True})
                        return {"unusable": str(exc), "model": self.model_label, "turn": turn,
                                "attempts": failed[0]}
                    raise
                span.set({"gen_ai.response.model": result.model_name,
                          "gen_ai.usage.input_tokens": result.usage.get("input_tokens"),
                          "gen_ai.usage.output_tokens": result.usage.get("output_tokens"),
                          "agentops.model.fallback": result.fallback,
                          "gen_ai.response.finish_reasons": (result.message.response_metadata or {}).get(
                              "finish_reason")})
            message = result.message
            return {"message": messages_to_dict([message])[0], "model": result.model_name,
                    "latency_ms": result.latency_ms, "usage": result.usage, "fallback": result.fallback,
                    "error": result.error, "turn": turn, "cost_usd": result.cost_usd}

        def describe(out: dict[str, Any]) -> StepFacts:
            if "unusable" in out:
                facts = {"model": out["model"], "unusable": out["unusable"], "attempts": out["attempts"]}
                return StepFacts(meta=facts, events=[Event(actor=self.actor, action="model.unusable", payload=facts)])
            data = out["message"]["data"]
            proposed = [{"name": c.get("name"), "args": c.get("args")} for c in data.get("tool_calls") or []]
            usage = out.get("usage") or {}
            meta = {"model": out["model"], "prompt": self.prompt.name, "prompt_hash": self.prompt.hash,
                    "usage": usage, "latency_ms": out["latency_ms"], "fallback": out.get("fallback"),
                    "fallback_reason": out.get("error"), "proposed": proposed, "messages_in": self._as_dicts(messages)}
            event = Event(actor=self.actor, action="model.call", payload={
                "model": out["model"], "prompt_hash": self.prompt.hash, "usage": usage,
                "latency_ms": round(out["latency_ms"], 2), "fallback": out.get("fallback"),
                "fallback_reason": out.get("error"), "proposed": proposed})
            return StepFacts(meta=meta, tokens=int(usage.get("total_tokens") or 0), cost=out.get("cost_usd", 0.0),
                             events=[event])

        task = Task(call, name=f"{self.agent.name}.model", kind="model", describe=describe, retries=retries,
                    retry_delay_seconds=self.settings.model_retry_delay_seconds, retry_backoff=2.0,
                    retry_on=(ModelReplyError,))
        try:
            return task(len(messages))
        except ModelReplyError as exc:
            raise ModelReplyError(f"agent '{self.agent.name}': the model {self.model_label} gave no usable reply in "
                                  f"{retries + 1} attempts (AGENTOPS_MODEL_REPLY_RETRIES={retries}); the last: "
                                  f"{exc}") from None

    def _ask_to_retry(self, out: dict[str, Any], messages: list[BaseMessage]) -> None:
        """AGENTOPS_MODEL_ON_ERROR=ask: a person decides whether the turn is sent again; anything but an approval
        fails the run."""
        attempts = out["attempts"]
        decision = request_approval(
            MODEL_RETRY, {"agent": self.agent.name, "model": out["model"], "reason": out["unusable"]},
            reason=f"the model gave no usable reply in {attempts} attempts: approve to send the turn again, reject "
                   "to fail the run", requester=self.actor, expires_in=self.agent.approval_expires_in,
            context={"messages": self._as_dicts(messages)})
        if not decision.approved:
            said = f": {decision.message}" if decision.message else ""
            raise ModelReplyError(f"agent '{self.agent.name}': the model {out['model']} gave no usable reply in "
                                  f"{attempts} attempts, and the request to try again was "
                                  f"{_NOT_APPROVED.get(decision.kind, decision.kind)}{said}; "
                                  f"the last: {out['unusable']}")

    def _screen(self, name: str, args: Any, call_id: str, fallback: str | None) -> dict[str, Any]:
        def check(tool_name: str, proposed: Any, call_id: str, fallback: str | None) -> dict[str, Any]:
            step = current_step.get()
            with RunBudget.of(self.ctx).tool_call(self.policy, self.agent.name) as slot:
                s = governance.screen(tool_name, proposed, whitelist=self.whitelist, policy=self.policy,
                                      store=self.ctx.store, shadow=self.settings.shadow_policy,
                                      use_id=key_for(self.ctx.run_id, step.step_no) if step else None,
                                      fallback=fallback is not None)
                slot.kept = s.status != "refused"
            return {"status": s.status, "args": s.args, "reason": s.reason, "verdict": s.verdict,
                    "policy_hash": s.policy_hash}

        def describe(out: dict[str, Any]) -> StepFacts:
            event = Event(actor="system:policy", action="policy.verdict", policy_hash=out.get("policy_hash"),
                          payload={"tool": name, "args": out["args"], "status": out["status"],
                                   "reason": out["reason"], "verdict": out["verdict"], "fallback": fallback})
            return StepFacts(meta={"verdict": out["verdict"], "status": out["status"], "fallback": fallback},
                             events=[event])

        task = Task(check, name=f"{self.agent.name}.policy", kind="policy", describe=describe)
        return task(name, args, call_id, fallback)

    def _execute(self, name: str, args: dict[str, Any], screening: dict[str, Any],
                 resume: dict[str, Any] | None = None) -> dict[str, Any]:
        tool = self.whitelist[name]

        def run_tool(tool_name: str, tool_args: dict[str, Any], answers: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
            step = current_step.get()
            step_no = step.step_no if step else 0
            token = current_tool_call.set(ToolCallInfo(self.ctx.run_id, step_no, key_for(self.ctx.run_id, step_no),
                                                       self.actor))
            resumed = resuming.set(Resume(answers["input_responses"], answers["request_state"]) if answers else None)
            try:
                result = tool.invoke(tool_args)
                return {"status": "ok", "content": _as_text(result), "result": _jsonable(result)}
            except McpInputRequired as asked:  # recorded as this step's output; a person answers, then a new call
                return {"status": "input_required", "content": str(asked),
                        "input_required": {"requests": asked.requests, "request_state": asked.request_state}}
            except Exception as exc:
                return {"status": "error", "content": f"{type(exc).__name__}: {exc}"}
            finally:
                resuming.reset(resumed)
                current_tool_call.reset(token)

        def describe(out: dict[str, Any]) -> StepFacts:
            event = Event(actor=self.actor, action="tool.result", policy_hash=screening.get("policy_hash"),
                          payload={"tool": name, "args": args, "status": out["status"],
                                   "content": out["content"][:2000]})
            return StepFacts(meta={"verdict": screening.get("verdict"), "status": out["status"], "tool": name,
                                   "args": args}, events=[event])

        task = Task(run_tool, name=f"{self.agent.name}.tool:{name}", kind="tool", describe=describe)
        return task(name, args, resume) if resume is not None else task(name, args)

    def _answer_requests(self, name: str, args: dict[str, Any], done: dict[str, Any],
                         screening: dict[str, Any]) -> dict[str, Any]:
        """An MCP server asked for input: each question is a `respond` approval (the run pauses, holding no
        process); the call is then made again with the answers and the server's state. A question left to
        expire ends the call unanswered (fail closed); a declined one is sent to the server as declined."""
        for _ in range(MAX_INPUT_ROUNDS):
            asked = done["input_required"]
            responses: dict[str, dict[str, Any]] = {}
            for key, request in sorted(asked["requests"].items()):
                decision = request_approval(
                    name, {"question": key, "message": request["message"],
                           "requested_schema": request["requested_schema"], "call": args},
                    reason=f"the MCP server asks: {request['message']}", requester=self.actor,
                    expires_in=self.settings.mcp_elicitation_expires_seconds, kind="respond",
                    policy_hash=screening.get("policy_hash"))
                if decision.kind == "expired":
                    return {"status": "expired", "content": f"The server's request for input expired unanswered "
                                                            f"({request['message']}); the call was not completed."}
                responses[key] = ({"action": "accept", "content": decision.args} if decision.kind == "respond"
                                  else {"action": "decline"})
            done = self._execute(name, args, screening,
                                 {"input_responses": responses, "request_state": asked["request_state"]})
            if done["status"] != "input_required":
                return done
        return {"status": "error", "content": f"{name} asked for input more than {MAX_INPUT_ROUNDS} times; the "
                                              "call was not completed"}

    # -- the loop ------------------------------------------------------------------------------------

    def _handle_call(self, name: str, args: Any, call_id: str, conversation: list[Any],
                     fallback: str | None = None) -> ToolOutcome:
        """Screen, approve if asked, run. `fallback` names the model that stood in for an unreachable one
        and proposed this call (the policy's `fallback:` rule applies to it)."""
        with tracing.span(f"execute_tool {name}", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                                                   "gen_ai.tool.call.id": call_id,
                                                   "gen_ai.agent.name": self.agent.name}) as span:
            outcome = self._governed_call(name, args, call_id, conversation, fallback, span)
            span.set({"agentops.tool.status": outcome.status, "agentops.approval.id": outcome.approval_id,
                      "agentops.approval.edited": outcome.edited})
            return outcome

    def _governed_call(self, name: str, args: Any, call_id: str, conversation: list[Any], fallback: str | None,
                       span: tracing.Span) -> ToolOutcome:
        screening = self._screen(name, args, call_id, fallback)
        verdict = screening["verdict"] or {}
        span.set({"agentops.policy.status": screening["status"],
                  "agentops.policy.verdict": verdict.get("verdict") if isinstance(verdict, dict) else str(verdict),
                  "agentops.policy.rule": verdict.get("rule") if isinstance(verdict, dict) else None,
                  "agentops.policy.hash": screening["policy_hash"]})
        status = screening["status"]
        clean = screening["args"]
        if status == "refused":
            return ToolOutcome(name, clean, "refused", f"Error: {screening['reason']}", screening["verdict"])
        edited = False
        approval_id = None
        if status == "require_approval":
            decision = request_approval(
                name, clean, reason=_reason_for(conversation, name), requester=self.actor,
                expires_in=self.agent.approval_expires_in, verdict=screening["verdict"],
                policy_hash=screening["policy_hash"], context={"messages": self._as_dicts(conversation)},
                provenance=lambda: provenance.trace(clean, self._sources(conversation)))
            approval_id = decision.approval_id
            span.set({"agentops.approval.id": approval_id, "agentops.approval.decision": decision.kind,
                      "agentops.approval.decided_by": ",".join(decision.decided_by) or None})
            if decision.kind == "reject":
                return ToolOutcome(name, clean, "rejected", f"A reviewer rejected this call: {decision.message}",
                                   screening["verdict"], approval_id)
            if decision.kind == "expired":
                return ToolOutcome(name, clean, "expired", "The approval request expired; the call was not made.",
                                   screening["verdict"], approval_id)
            if decision.kind == "respond":
                return ToolOutcome(name, clean, "responded", f"A reviewer responded: {decision.message}",
                                   screening["verdict"], approval_id)
            edited = decision.edited
            clean = decision.args
        done = self._execute(name, clean, screening)
        if done["status"] == "input_required":
            done = self._answer_requests(name, clean, done, screening)
        content = done["content"][:MAX_RESULT_CHARS]
        if edited:
            content = (f"Note: a reviewer changed the arguments to {json.dumps(clean, sort_keys=True)} before "
                       f"running the call. Result: {content}")
        return ToolOutcome(name, clean, done["status"], content, screening["verdict"], approval_id, edited,
                           done.get("result"))

    def _sources(self, conversation: list[Any]) -> list[provenance.Source]:
        """What a proposed call's values may have come from: the run's parameters (see `_parameter_sources`), then
        each tool or task output of the run and each tool message the model read, in order."""
        store, run_id = self.ctx.store, self.ctx.run_id
        run = store.get_run(run_id)
        sources = [] if run is None else _parameter_sources(store, run)
        for step in store.steps_for_run(run_id):
            if step.kind in ("task", "tool") and step.state == "COMPLETED" and step.output:
                label = step.name.rsplit(".tool:", 1)[-1]
                sources.append(provenance.Source(f"{label} output", provenance.source_text(step.output)))
        for message in conversation:
            if getattr(message, "type", None) == "tool":
                sources.append(provenance.Source(f"{getattr(message, 'name', None) or 'a tool'} output",
                                                 provenance.source_text(_as_text(message.content))))
        return sources

    def run(self, task_text: str) -> AgentResult:
        from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage, messages_from_dict

        messages: list[Any] = [SystemMessage(self.system_text), HumanMessage(task_text)]
        outcomes: list[ToolOutcome] = []
        model_name = None
        empty_replies = 0
        for turn in range(1, self.agent.max_turns + 1):
            out = self._model_turn(messages)
            while "unusable" in out:
                self._ask_to_retry(out, messages)
                out = self._model_turn(messages)
            model_name = out["model"]
            ai = messages_from_dict([out["message"]])[0]
            messages.append(ai)
            calls = [(self.model_names.get(c["name"], c["name"]), c.get("args"), c.get("id") or f"call_{turn}_{i}")
                     for i, c in enumerate(getattr(ai, "tool_calls", []) or [])]
            if not calls:
                text = _as_text(ai.content).strip()
                if text or empty_replies >= 1:
                    return AgentResult(text or "(the model returned an empty reply)", outcomes, model_name, turn)
                empty_replies += 1
                messages.append(HumanMessage("Your reply was empty. Answer, or call one of your tools."))
                continue
            for name, args, call_id in calls:
                outcome = self._handle_call(name, args, call_id, messages, out.get("fallback"))
                outcomes.append(outcome)
                messages.append(ToolMessage(outcome.content, tool_call_id=call_id, name=name,
                                            status="success" if outcome.status == "ok" else "error"))
        return AgentResult("Stopped: the agent reached its limit of model turns.", outcomes, model_name,
                           self.agent.max_turns, stopped="max_turns")


def _reason_for(messages: list[Any], tool_name: str) -> str:
    for message in reversed(messages):
        text = _as_text(getattr(message, "content", "")).strip()
        if text and message.type == "ai":
            return text[:1000]
    return f"the flow called {tool_name}" if not messages else f"the agent proposed {tool_name}"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in value)
    try:
        return json.dumps(value, default=str)
    except TypeError:
        return str(value)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)

