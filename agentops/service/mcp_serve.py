"""agentops as an MCP server, as the service layer sees it: the project's flows as tools, starting one as the
caller (a governed call, recorded in the ledger), and the read tools for runs and approvals.

The transport (stdio, Streamable HTTP) lives in `agentops.api.mcp_server`; everything it answers comes from here.
A flow started over MCP is queued for a worker like one from the API; its tool waits `AGENTOPS_MCP_WAIT_SECONDS`
for the run to end or to pause, and answers with the run id and state, plus the result of a run that ended or the
link of the approval a paused run waits for. It never blocks on a person.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from agentops.core import serialization
from agentops.core.ledger import Event
from agentops.core.states import State, is_terminal
from agentops.core.times import iso_times
from agentops.db import open_store
from agentops.errors import AgentOpsError, NotFoundError, PermissionDenied
from agentops.governance.users import ROLES, require_user
from agentops.service.documents import approval_document, run_document, step_document
from agentops.service.links import approval_url
from agentops.service.outcomes import outcome_of
from agentops.service.runs import acting_user, get_run, list_flows, list_runs, start_run
from agentops.settings import get_settings

CAN_READ = frozenset(ROLES)
READ_TOOLS: dict[str, tuple[str, dict[str, Any]]] = {
    "runs_list": ("Recent runs, newest first, optionally of one state or flow.", {
        "type": "object", "additionalProperties": False,
        "properties": {"state": {"type": "string", "description": "e.g. COMPLETED, AWAITING_APPROVAL"},
                       "flow": {"type": "string"},
                       "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20}}}),
    "runs_show": ("One run: its state, parameters, result, steps and the approvals it waits for.", {
        "type": "object", "additionalProperties": False, "required": ["run_id"],
        "properties": {"run_id": {"type": "string", "description": "A run id or a unique prefix of 6+"}}}),
    "approvals_list": ("Approval requests (pending by default), with each one's link in the app.", {
        "type": "object", "additionalProperties": False,
        "properties": {"status": {"type": "string", "default": "pending",
                                  "description": "pending, approved, rejected, expired, responded, ... or all"},
                       "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}}),
    "approvals_show": ("One approval request: what it asks, its status and decision, and its link in the app.", {
        "type": "object", "additionalProperties": False, "required": ["approval_id"],
        "properties": {"approval_id": {"type": "string"}}}),
}
"""Read tools: name -> (description, input JSON Schema)."""


@dataclass(frozen=True)
class ServedTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    starts_flow: bool


class ToolRefused(AgentOpsError):
    """A call the MCP server answers with a tool error (bad arguments, an unknown tool, a role that may not)."""


def served_tools() -> list[ServedTool]:
    """Each project flow as a tool (its docstring, its parameter schema), then the read tools."""
    tools = [ServedTool(f.name, f.description or f"Start the flow {f.name}.", f.parameter_schema(), True)
             for f in list_flows()]
    flows = {t.name for t in tools}
    tools += [ServedTool(name, text, schema, False) for name, (text, schema) in READ_TOOLS.items()
              if name not in flows]
    return tools


def call(tool: str, arguments: dict[str, Any] | None, *, user: str | None, transport: str) -> dict[str, Any]:
    """Answer one MCP tool call as `user`; ToolRefused (recorded) for anything the caller must fix."""
    args = arguments or {}
    flows = {f.name for f in list_flows()}
    try:
        if not isinstance(args, dict):
            raise ToolRefused("the arguments must be a JSON object")
        _check_shape(args)
        if tool in flows:
            return _start(tool, args, user=user, transport=transport)
        if tool in READ_TOOLS:
            if user:
                require_user(open_store(), user, CAN_READ, f"reading {tool.split('_')[0]}")
            return iso_times(_read(tool, args))
        raise ToolRefused(f"no tool '{tool}' (flows: {', '.join(sorted(flows)) or 'none'}; "
                          f"read tools: {', '.join(READ_TOOLS)})")
    except ToolRefused as exc:
        _record(tool, args, user=user, transport=transport, status="refused", reason=str(exc))
        raise
    except (AgentOpsError, ValueError) as exc:
        _record(tool, args, user=user, transport=transport, status="refused", reason=str(exc))
        raise ToolRefused(str(exc)) from None


MAX_DEPTH = 32
"""How deeply the arguments of a call may nest (deeper is refused before anything reads them)."""
MAX_RECORDED_ARGS = 16 * 1024
"""The arguments of a call are recorded in its `mcp.serve_call` event up to this size as JSON; larger ones are
recorded as their size only, so a caller cannot fill the ledger with refused calls."""


def _check_shape(args: dict[str, Any]) -> None:
    """Refuse arguments nested deeper than MAX_DEPTH, or holding NaN or an infinity (not JSON numbers)."""
    todo: list[tuple[Any, int]] = [(args, 1)]
    while todo:
        value, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise ToolRefused(f"the arguments nest deeper than {MAX_DEPTH} levels")
        if isinstance(value, float) and not math.isfinite(value):
            raise ToolRefused("the arguments hold NaN or an infinity, which JSON numbers cannot be")
        if isinstance(value, dict):
            todo += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            todo += [(v, depth + 1) for v in value]


def _recorded_args(args: Any) -> dict[str, Any]:
    if not isinstance(args, dict):
        return {"args": None}
    try:
        _check_shape(args)
        size = len(json.dumps(args, default=str, allow_nan=False))
    except (ToolRefused, ValueError, RecursionError):
        return {"args": None}
    return {"args": args} if size <= MAX_RECORDED_ARGS else {"args": None, "args_bytes": size}


def _record(tool: str, args: dict[str, Any], *, user: str | None, transport: str, status: str,
            run_id: str | None = None, reason: str | None = None) -> None:
    if tool in READ_TOOLS and status == "ok":
        return  # reads change nothing; their refusals are recorded like any refused call
    payload = {"tool": tool[:200], **_recorded_args(args), "transport": transport, "status": status,
               "reason": reason[:1000] if reason else reason}
    open_store().append_events([Event(actor=f"user:{acting_user(user)}", action="mcp.serve_call", run_id=run_id,
                                      payload=payload)])


def _start(flow: str, args: dict[str, Any], *, user: str | None, transport: str) -> dict[str, Any]:
    run_id = start_run(flow, args, user=user, trigger=f"mcp:{transport}")
    _record(flow, args, user=user, transport=transport, status="started", run_id=run_id)
    deadline = time.monotonic() + get_settings().mcp_wait_seconds
    run = get_run(run_id)
    while not _settled(run.state) and time.monotonic() < deadline:
        time.sleep(0.05)
        run = get_run(run_id)
    return run_answer(run_id)


def _settled(state: str) -> bool:
    return is_terminal(state) or state == State.AWAITING_APPROVAL


def run_answer(run_id: str) -> dict[str, Any]:
    """What a started flow's tool says: the run id and state; the result or error once ended; the approvals it
    waits for, each with its link."""
    run = get_run(run_id)
    outcome = outcome_of(run)
    out: dict[str, Any] = {"run_id": run.id, "flow": run.flow_name, "state": run.state, "outcome": outcome.words}
    if run.state == State.COMPLETED:
        out["result"] = serialization.loads(run.result, f"run {run.id} result") if run.result else None
    elif run.error:
        out["error"] = run.error
    if run.state == State.AWAITING_APPROVAL:
        out["approvals"] = [{"id": a.id, "url": approval_url(a.id), "action": a.action, "kind": a.kind}
                            for a in open_store().list_approvals(status="pending", run_id=run.id)]
    return out


def _int(args: dict[str, Any], name: str, default: int) -> int:
    value = args.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 200:
        raise ToolRefused(f"'{name}' must be an integer from 1 to 200")
    return value


def _str(args: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = args.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ToolRefused(f"'{name}' must be a non-empty string")
    return value


def _read(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    known = set(READ_TOOLS[tool][1]["properties"])
    unknown = sorted(set(args) - known)
    if unknown:
        raise ToolRefused(f"unknown argument '{unknown[0]}' (this tool takes: {', '.join(sorted(known))})")
    store = open_store()
    if tool == "runs_list":
        runs = list_runs(state=_str(args, "state"), flow=_str(args, "flow"), limit=_int(args, "limit", 20))
        return {"runs": [{"run_id": r.id, "flow": r.flow_name, "state": r.state, "created_at": r.created_at,
                          "created_by": r.created_by} for r in runs]}
    if tool == "runs_show":
        run = get_run(_str(args, "run_id", required=True) or "")
        return {**run_answer(run.id), "run": run_document(run),
                "steps": [{k: v for k, v in step_document(s).items() if k in _STEP_FIELDS}
                          for s in store.steps_for_run(run.id)]}
    if tool == "approvals_list":
        status = _str(args, "status") or "pending"
        rows = store.list_approvals(status=None if status == "all" else status, limit=_int(args, "limit", 50))
        return {"approvals": [_approval(a) for a in rows]}
    approval_id = _str(args, "approval_id", required=True) or ""
    appr = store.get_approval(approval_id)
    if appr is None:
        raise NotFoundError(f"no approval with id '{approval_id}'")
    return approval_document(appr) | {"url": approval_url(appr.id)}


_STEP_FIELDS = ("step_no", "name", "kind", "state", "error", "output")


def _approval(appr: Any) -> dict[str, Any]:
    return {"id": appr.id, "run_id": appr.run_id, "action": appr.action, "kind": appr.kind, "status": appr.status,
            "requester": appr.requester, "created_at": appr.created_at, "expires_at": appr.expires_at,
            "url": approval_url(appr.id)}


def check_caller(user: str | None) -> None:
    """Refuse to serve a caller named by --as/AGENTOPS_USER that has no account (before any tool is called)."""
    if user:
        try:
            require_user(open_store(), user, CAN_READ, "serving MCP")
        except PermissionDenied as exc:
            raise AgentOpsError(str(exc)) from None
