"""Chat that triggers automations: a dispatcher agent whose only tool starts the project's flows.

Starting a flow is a governed tool call like any other (policy `start_flow`, approvals apply). The
dispatcher runs as a recorded flow run of its own; the flow it starts is a separate, queued run.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from agentops.agents import Agent
from agentops.backends.cluster_sim import deployment_names
from agentops.core import serialization
from agentops.core.ledger import Event
from agentops.core.redaction import default_redactor
from agentops.db import open_store
from agentops.engine.flows import flow
from agentops.engine.project import project_root
from agentops.engine.registry import find_flow, registered_flows
from agentops.engine.runner import CREATED_EPOCH, create_run, execute_run, local_worker_id
from agentops.engine.toolkit import StartFlowArgs, current_run_id, idempotency_key, load_tools
from agentops.errors import AgentOpsError
from agentops.service.outcomes import outcome_of
from agentops.service.setup import check_settings

DISPATCHER_FLOW = "chat_dispatch"


def _flow_catalogue() -> str:
    lines = []
    for f in sorted(registered_flows().values(), key=lambda f: f.name):
        if f.name == DISPATCHER_FLOW:
            continue
        props = f.parameter_schema().get("properties", {})
        params = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in props.items())
        lines.append(f"- {f.name}({params}): {(f.description.splitlines() or [''])[0]}")
    return "\n".join(lines)


def start_flow_tool(user: str | None) -> Any:
    """The dispatcher's tool: queue a run of a project flow, once per tool step (idempotent)."""
    from langchain_core.tools import StructuredTool


    def start(flow: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        target = find_flow(flow)
        store = open_store()
        run_id = uuid.uuid5(uuid.NAMESPACE_URL, f"agentops:start_flow:{idempotency_key()}").hex
        existing = store.get_run(run_id)
        if existing is not None:
            return {"run_id": run_id, "flow": existing.flow_name, "state": existing.state}
        create_run(target, parameters or {}, trigger="chat", created_by=user, queue=True, store=store,
                   parent_run_id=current_run_id(), run_id=run_id)
        return {"run_id": run_id, "flow": flow, "state": "PENDING"}

    return StructuredTool.from_function(
        func=start, name="start_flow", args_schema=StartFlowArgs, metadata={"side_effect": True},
        description="Start one of the project's automation flows. Available flows:\n" + _flow_catalogue())


DIRECT_TOOLS = ("scale_deployment", "create_ticket", "query_data")
"""Tools the dispatcher may call itself when a message asks for exactly that (screened like any call)."""


def _known_things() -> dict[str, str]:
    """The deployments (from the cluster backend) and datasets that exist, for the dispatcher's prompt."""
    from agentops.data import list_datasets  # the data package loads with the first chat, not on import

    deployments = deployment_names()
    datasets = sorted(list_datasets(project_root()))
    return {"deployments": ", ".join(deployments) or "(none)", "datasets": ", ".join(datasets) or "(none)"}


@flow(name=DISPATCHER_FLOW)
def chat_dispatch(message: str, conversation_id: str, user: str | None = None) -> dict[str, Any]:
    """Route a chat message to the right flow or tool call (the chat dispatcher)."""
    available = load_tools(project_root())
    dispatcher = Agent(name="dispatcher", prompt="dispatcher",
                       tools=["start_flow", *(t for t in DIRECT_TOOLS if t in available)],
                       extra_tools=[start_flow_tool(user)])
    result = dispatcher.run(message, flows=_flow_catalogue(), **_known_things())
    started = [json.loads(o.content) for o in result.tool_calls if o.name == "start_flow" and o.status == "ok"]
    return {"answer": result.answer, "started": started, "model": result.model,
            "calls": [{"name": o.name, "args": o.args, "status": o.status} for o in result.tool_calls],
            "refused": [o.content for o in result.tool_calls if o.status != "ok"]}


@dataclass
class ChatReply:
    conversation_id: str
    dispatch_run_id: str
    answer: str
    started_runs: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    state: str = "COMPLETED"
    waiting: list[dict[str, Any]] = field(default_factory=list)
    """Approvals the dispatcher's own call waits for: id, action, args."""


def send(message: str, *, user: str | None, conversation_id: str | None = None) -> ChatReply:
    """Store the message, run the dispatcher now, store its answer. Started flows are queued runs."""
    if not message.strip():
        raise AgentOpsError("the chat message is empty")
    check_settings()
    store = open_store()
    conversation_id = conversation_id or uuid.uuid4().hex
    actor = f"user:{user}" if user else "system:cli"
    message = default_redactor().text(message)
    store.add_chat_message({"conversation_id": conversation_id, "user": user, "role": "user", "content": message,
                            "ts": time.time()},
                           [Event(actor=actor, action="chat.message", payload={"conversation_id": conversation_id,
                                                                               "text": message})])
    worker_id = local_worker_id()
    run_id = create_run(find_flow(DISPATCHER_FLOW), {"message": message, "conversation_id": conversation_id,
                                                     "user": user}, trigger="chat", created_by=user,
                        queue=False, store=store, worker_id=worker_id)
    outcome = execute_run(run_id, worker_id=worker_id, epoch=CREATED_EPOCH, store=store)
    dispatched = store.get_run(run_id)
    assert dispatched is not None
    described = outcome_of(dispatched)
    if outcome.state == "COMPLETED":
        data = outcome.result
        answer, started, model = data["answer"], data["started"], data["model"]
    elif outcome.state == "AWAITING_APPROVAL":
        answer, started, model = (f"That needs a person's approval first: {described.words}. "
                                  "An approver decides it in the chat or the inbox."), [], None
    else:
        answer, started, model = f"The dispatcher failed: {outcome.error}", [], None
    answer = default_redactor().text(answer)
    store.add_chat_message({"conversation_id": conversation_id, "user": None, "role": "assistant",
                            "content": answer, "run_id": run_id, "ts": time.time()},
                           [Event(actor="agent:dispatcher", action="chat.reply", run_id=run_id,
                                  payload={"conversation_id": conversation_id, "text": answer,
                                           "started": serialization.loads(serialization.dumps(started))})])
    return ChatReply(conversation_id, run_id, answer, started, model, outcome.state.value,
                     [asdict(w) for w in described.waiting])
