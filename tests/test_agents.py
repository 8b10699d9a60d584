"""Governed agents: every proposal is screened outside the model; model and tool calls never repeat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agentops import flow
from agentops.agents import Agent
from agentops.agents.models.scripted import ScriptedChatModel
from agentops.core import serialization
from agentops.db import open_store
from agentops.engine.worker import Worker
from agentops.errors import RunFailed
from agentops.governance.approvals import decide
from agentops.governance.users import add_user

TOOLS = ["get_metrics", "scale_deployment", "create_ticket", "send_email"]


def call(name: str, args: dict, call_id: str = "c1", text: str = "") -> AIMessage:
    return AIMessage(content=text, tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


def run_agent(model: ScriptedChatModel, task_text: str = "web-app is hot") -> dict:
    @flow(name=f"agent_flow_{id(model)}")
    def agent_flow() -> dict:
        result = Agent(name="ops", prompt="incident", tools=TOOLS, model=model).run(task_text)
        return {"answer": result.answer, "calls": [(o.name, o.status, o.content) for o in result.tool_calls]}

    return agent_flow()


def tool_steps(run_id: str) -> list[tuple[str, str]]:
    return [(s.name, json.loads(s.output)["status"]) for s in open_store().steps_for_run(run_id)
            if s.kind in ("policy", "tool")]


def test_a_hallucinated_tool_is_a_model_error_and_the_turn_is_sent_again(ops_project: Path) -> None:
    model = ScriptedChatModel(replies=[call("delete_cluster", {"force": True}), AIMessage(content="ok, stopping")])
    out = run_agent(model)
    assert out == {"answer": "ok, stopping", "calls": []}
    assert model.calls[1] == model.calls[0], "the same turn was sent again, nothing was added to it"
    assert model.bound_tools[0] == TOOLS
    run = open_store().list_runs()[0]
    assert open_store().search_ledger(run_id=run.id, action="policy.verdict") == []
    retried = [json.loads(e.payload) for e in open_store().search_ledger(run_id=run.id, action="step.state")
               if json.loads(e.payload).get("state") == "AWAITING_RETRY"]
    assert len(retried) == 1 and "unknown tool 'delete_cluster'" in retried[0]["error"]


def test_arguments_that_break_schema_or_constraint_are_refused(ops_project: Path) -> None:
    model = ScriptedChatModel(replies=[
        call("scale_deployment", {"name": "web-app", "replicas": "lots"}, "c1"),
        call("scale_deployment", {"name": "web-app", "replicas": 50}, "c2"),
        call("scale_deployment", {"name": "web-app", "replicas": float("nan")}, "c3"),
        AIMessage(content="giving up")])
    out = run_agent(model)
    assert [c[1] for c in out["calls"]] == ["refused", "refused", "refused"]
    assert "arguments.replicas is NaN or an infinity" in out["calls"][2][2]
    assert "invalid arguments for 'scale_deployment': argument 'replicas'" in out["calls"][0][2]
    assert "replicas=50 exceeds max 20" in out["calls"][1][2]
    assert open_store().scale_events() == []


def test_budget_exhaustion_stops_the_run_with_a_readable_reason(ops_project: Path) -> None:
    policy = ops_project / "policies" / "default.yaml"
    policy.write_text(policy.read_text().replace("max_tool_calls: 30", "max_tool_calls: 1"))
    model = ScriptedChatModel(replies=[call("get_metrics", {}, "c1"), call("get_metrics", {}, "c2"),
                                       AIMessage(content="never")])
    with pytest.raises(RunFailed, match="budget exhausted: 1 tool calls used of 1 allowed"):
        run_agent(model)
    assert len(model.calls) == 1
    run = open_store().list_runs()[0]
    assert run.state == "FAILED" and "BudgetExceeded" in run.error
    assert open_store().search_ledger(action="budget.exceeded")[0].run_id == run.id


def test_the_budget_counts_the_steps_recorded_before_a_pause(ops_project: Path) -> None:
    policy = ops_project / "policies" / "default.yaml"
    policy.write_text(policy.read_text().replace("max_tool_calls: 30", "max_tool_calls: 2"))
    model, run_id, appr_id = _pause_for_scale(ops_project, [
        call("get_metrics", {}, "c1"), call("scale_deployment", {"name": "web-app", "replicas": 12}, "c2"),
        call("get_metrics", {}, "c3"), AIMessage(content="never")])
    decide(open_store(), appr_id, "approve", user="ada")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    run = open_store().get_run(run_id)
    assert run.state == "FAILED" and "budget exhausted: 2 tool calls used of 2 allowed" in run.error
    assert [s.name for s in open_store().steps_for_run(run_id) if s.kind == "tool"] == [
        "ops.tool:get_metrics", "ops.tool:scale_deployment"]
    assert len(model.calls) == 2, "with the budget spent, the model is not asked again"


def _pause_for_scale(ops_project: Path, replies: list) -> tuple[ScriptedChatModel, str, str]:
    store = open_store()
    add_user(store, "ada", "approver", "correct horse battery")
    model = ScriptedChatModel(replies=replies)

    @flow(name=f"approval_flow_{id(model)}")
    def approval_flow() -> dict:
        result = Agent(name="ops", prompt="incident", tools=TOOLS, model=model).run("web-app at 95%")
        return {"answer": result.answer, "calls": [(o.name, o.status, o.content, o.args) for o in result.tool_calls]}

    from agentops.engine.runner import create_run

    run_id = create_run(approval_flow, {}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    assert store.get_run(run_id).state == "AWAITING_APPROVAL"
    [appr] = store.list_approvals(run_id=run_id)
    assert serialization.loads(appr.verdict)["rule"] == "tools.scale_deployment.when[0]"
    assert serialization.loads(appr.context)["messages"][-1]["data"]["tool_calls"][0]["args"]["replicas"] == 12
    return model, run_id, appr.id


def test_an_edit_runs_the_edited_call_and_the_model_is_told(ops_project: Path) -> None:
    model, run_id, appr_id = _pause_for_scale(ops_project, [
        call("scale_deployment", {"name": "web-app", "replicas": 12}, text="cpu 95%, doubling"),
        AIMessage(content="scaled")])
    decide(open_store(), appr_id, "edit", user="ada", edited_args={"name": "web-app", "replicas": 8})
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    result = serialization.loads(open_store().get_run(run_id).result)
    assert result["calls"][0][1] == "ok" and result["calls"][0][3] == {"name": "web-app", "replicas": 8}
    assert "a reviewer changed the arguments" in model.calls[1][-1].content
    assert open_store().deployment("web-app").replicas == 8
    assert len(model.calls) == 2, "the first model call was replayed, not sent again"


def test_a_rejection_returns_the_reviewers_message(ops_project: Path) -> None:
    model, run_id, appr_id = _pause_for_scale(ops_project, [
        call("scale_deployment", {"name": "web-app", "replicas": 12}), AIMessage(content="understood")])
    decide(open_store(), appr_id, "reject", user="ada", message="not during the sale, max 8")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    assert "not during the sale, max 8" in model.calls[1][-1].content
    assert open_store().deployment("web-app").replicas == 6
    assert open_store().get_run(run_id).state == "COMPLETED"


def test_an_edit_that_breaks_the_policy_is_refused(ops_project: Path) -> None:
    from agentops import service
    from agentops.errors import PolicyViolation

    _, _, appr_id = _pause_for_scale(ops_project, [call("scale_deployment", {"name": "web-app", "replicas": 12})])
    with pytest.raises(PolicyViolation, match="replicas=99 exceeds max 20"):
        service.decide(appr_id, "edit", user="ada", edited_args={"name": "web-app", "replicas": 99})
    with pytest.raises(PolicyViolation, match="argument 'replicas'"):
        service.decide(appr_id, "edit", user="ada", edited_args={"name": "web-app", "replicas": "many"})
    for hole in (float("nan"), float("inf"), [1.0, float("-inf")]):
        with pytest.raises(PolicyViolation, match=r"arguments\.replicas.* is NaN or an infinity"):
            service.decide(appr_id, "edit", user="ada", edited_args={"name": "web-app", "replicas": hole})
    assert open_store().get_approval(appr_id).status == "pending"


def test_playbook_model_runs_the_incident_runbook(ops_project: Path) -> None:
    @flow(name="playbook_incident")
    def playbook_incident() -> dict:
        result = Agent(name="incident", prompt="incident", tools=TOOLS).run("Check deployment worker.")
        return {"model": result.model, "calls": [(o.name, o.args, o.status) for o in result.tool_calls]}

    out = playbook_incident()
    assert out["model"] == "playbook"
    assert out["calls"][0] == ("get_metrics", {"name": "worker"}, "ok")
    assert out["calls"][1][0] == "create_ticket" and out["calls"][1][1]["priority"] == "P2"
    assert [t.title for t in open_store().tickets_list()] == ["High error rate on worker"]


class ChatModelWithoutTools(BaseChatModel):
    """A chat model that cannot call tools (BaseChatModel.bind_tools raises NotImplementedError)."""

    @property
    def _llm_type(self) -> str:
        return "no-tools"

    def _generate(self, messages: list, stop: list[str] | None = None, run_manager: object = None,
                  **kwargs: object) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="I cannot use tools"))])


def test_a_model_that_cannot_bind_tools_fails_the_run_and_never_falls_back(ops_project: Path) -> None:
    """Only an unreachable model may be replaced by the playbook; one that cannot call tools is a model error."""
    with pytest.raises(RunFailed, match=r"gave no usable reply in 3 attempts.*cannot be given the agent's tools"):
        run_agent(ChatModelWithoutTools(), "Check deployment worker.")
    run = open_store().list_runs()[0]
    [model_step] = [s for s in open_store().steps_for_run(run.id) if s.kind == "model"]
    assert (model_step.state, model_step.attempts) == ("FAILED", 3)
    assert [s.kind for s in open_store().steps_for_run(run.id)] == ["model"], "no tool was screened or run"
