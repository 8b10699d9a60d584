"""How the project's tools (tools/*.py) are found, and what a running tool knows about its call.

A tool module exposes `TOOLS`: a list of LangChain tools (`StructuredTool` with a pydantic args_schema).
A tool that changes the world sets `metadata={"side_effect": True}`, uses `idempotency_key()`, so a
retry or a resume of the same step never repeats the effect, and calls `check_fence()` right before the
effect, so an execution that lost its run to another worker (it stalled past the stale interval) never
starts it.
"""

from __future__ import annotations

import sys
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agentops.engine import mcp
from agentops.engine.context import current_run, current_step
from agentops.engine.project import import_project_file, project_import_lock
from agentops.errors import ConfigError

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool


@dataclass(frozen=True)
class ToolCallInfo:
    """The durable step a tool call runs in. The idempotency key is derived from (run_id, step_no)."""

    run_id: str | None
    step_no: int | None
    idempotency_key: str
    actor: str = "agent"


current_tool_call: ContextVar[ToolCallInfo | None] = ContextVar("agentops_tool_call", default=None)


def idempotency_key() -> str:
    """The key for this tool call's effect: stable across retries and resumes of the same step."""
    info = current_tool_call.get()
    if info is not None:
        return info.idempotency_key
    ctx, step = current_run.get(), current_step.get()
    if ctx is not None and step is not None:
        return f"{ctx.run_id}:{step.step_no}"
    return f"adhoc:{uuid.uuid4().hex}"


def check_fence() -> None:
    """Raise LeaseLost if another execution has taken this run over; call it right before an effect.

    It reads the run's epoch (one query) and does nothing outside a run. A takeover between this check and the
    effect cannot be seen here: the idempotency key is what keeps that effect from happening twice, and an
    external system that checks the key (or a fencing token) is what closes the window.
    """
    ctx = current_run.get()
    if ctx is not None:
        ctx.check_fence()


def current_run_id() -> str | None:
    info = current_tool_call.get()
    if info is not None:
        return info.run_id
    ctx = current_run.get()
    return ctx.run_id if ctx else None


def current_step_no() -> int | None:
    info = current_tool_call.get()
    if info is not None:
        return info.step_no
    step = current_step.get()
    return step.step_no if step else None


def key_for(run_id: str, step_no: int) -> str:
    return f"{run_id}:{step_no}"


_tools: dict[Path, dict[str, BaseTool]] = {}


def load_tools(root: Path) -> dict[str, BaseTool]:
    """Every tool in <root>/tools/*.py (modules listing them in `TOOLS`), by name."""
    root = root.resolve()
    if root in _tools:
        return _tools[root]
    with project_import_lock:
        if root not in _tools:
            _tools[root] = _import_tools(root)
    return _tools[root]


def _import_tools(root: Path) -> dict[str, BaseTool]:
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    found: dict[str, BaseTool] = {}
    for path in sorted((root / "tools").glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            module = import_project_file(f"tools.{path.stem}", path)
        except Exception as exc:
            raise ConfigError(f"cannot load tools/{path.name}: {type(exc).__name__}: {exc}") from None
        for tool in getattr(module, "TOOLS", []):
            if tool.name in found:
                raise ConfigError(f"tool name '{tool.name}' is defined twice (tools/{path.name})")
            found[tool.name] = tool
    return found


class StartFlowArgs(BaseModel):
    """The arguments of `start_flow`, the chat dispatcher's one tool (built in code by agentops.service.chat)."""

    flow: str = Field(description="Name of the flow to start.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="The flow's parameters.")


BUILTIN_TOOL_ARGS: dict[str, type[BaseModel]] = {"start_flow": StartFlowArgs}
"""Tools agentops builds itself rather than finding them in tools/, by name."""


def tool_argument_schemas(root: Path, *, mcp_servers: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The JSON schema of the arguments of every tool an agent of this project can be given, by name: the local
    ones, and the allowlisted tools of the MCP servers in `mcp_servers` (default: every declared one; each is
    listed live)."""
    schemas = {name: model.model_json_schema() for name, model in BUILTIN_TOOL_ARGS.items()}
    for name, tool in load_tools(root).items():
        args = tool.args_schema
        if isinstance(args, type) and issubclass(args, BaseModel):
            schemas[name] = args.model_json_schema()
        elif isinstance(args, dict):
            schemas[name] = args
        else:
            schemas[name] = {"type": "object", "properties": dict(tool.args)}
    return schemas | mcp.tool_schemas(root, mcp_servers)


def find_tool(root: Path, name: str) -> BaseTool | None:
    """The tool an agent knows as `name`: one of tools/, or an allowlisted MCP server tool (listed live)."""
    local = load_tools(root).get(name)
    if local is not None or not mcp.is_mcp_entry(root, name) or "." not in name:
        return local
    return next(iter(mcp.mcp_tools(root, [name]).get(name, {}).values()), None)


def pinned_digest(definition: mcp.ToolDefinition) -> str | None:
    """The digest of the definition pinned for this MCP tool, read in the running flow's store (None outside one
    or when unpinned); McpCallRefused when the pin does not agree with the ledger (see engine/mcp_trust.py)."""
    from agentops.engine.mcp_trust import check_pin

    ctx = current_run.get()
    if ctx is None:
        return None
    checked = check_pin(ctx.store, definition.server, definition.name)
    if checked.problem is not None:
        raise mcp.McpCallRefused(checked.problem)
    return checked.digest


def is_side_effect(tool: BaseTool) -> bool:
    return bool((tool.metadata or {}).get("side_effect"))
