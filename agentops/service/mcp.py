"""MCP servers as people see them: each declared server, its tools with their pin state, the agents configured to
use them (the project's `Agent` objects) and the agents recorded calling them (the ledger); and an admin's re-pin."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agentops.agents.loop import Agent
from agentops.db import open_store
from agentops.engine import mcp
from agentops.errors import ConfigError
from agentops.governance.mcp_pins import Repinned, pin_state, repin
from agentops.governance.users import CAN_ADMIN, require_user
from agentops.service.runs import project_path


@dataclass(frozen=True)
class McpToolView:
    name: str
    pin: str
    """pinned | unpinned | changed (the server offers another definition: refused until re-pinned) | untrusted
    (the pin row disagrees with the ledger: refused until re-pinned)"""
    digest: str
    pinned_digest: str | None
    description: str
    """The server's own words, not verified."""
    problem: str | None = None
    """Why an `untrusted` pin is not trusted."""
    configured: list[str] = field(default_factory=list)
    """The project's agents whose tool list names this tool (`server.tool`) or its server (its allowlist)."""
    called: list[str] = field(default_factory=list)
    """The agents the ledger records calling this tool."""


@dataclass(frozen=True)
class McpServerView:
    name: str
    transport: str
    target: str
    tools: list[McpToolView] = field(default_factory=list)
    error: str | None = None
    """Why the server's tools could not be listed (then `tools` is empty)."""
    configured: list[str] = field(default_factory=list)
    """The project's agents whose tool list names the server or one of its tools (each tool says which)."""
    called: list[str] = field(default_factory=list)
    """The agents recorded calling its tools (from the ledger's tool.result events)."""
    agents: list[str] = field(default_factory=list)
    """The same as `called` (the name this field had first)."""


def project_agents(root: Path) -> list[Agent]:
    """The `Agent` objects the project's flows define at module level: in flows/*.py, or in a project module they
    import. The flows are imported already (`project_path` loads them); nothing is called, no model, no server.
    An agent built inside a flow function is not seen until it runs (the ledger's `called` names it then)."""
    root = root.resolve()
    found: dict[int, Agent] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name == "agentops" or name.startswith("agentops."):
            continue
        path = Path(file).resolve()
        if not path.is_relative_to(root) or "site-packages" in path.parts or path.parts[len(root.parts)] == ".venv":
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Agent):
                found.setdefault(id(value), value)
    return sorted(found.values(), key=lambda a: a.name)


def _configured(agents: list[Agent], server: str, allowed: list[str] | None) -> dict[str, set[str]]:
    """Tool name -> the agents naming it, directly or through the server (`allowed`: its allowlist, or None)."""
    out: dict[str, set[str]] = {}
    for agent in agents:
        for entry in agent.tools:
            owner, tool = mcp.split_name(entry)
            if owner != server:
                continue
            for name in ([tool] if tool else allowed or []):
                out.setdefault(name, set()).add(agent.name)
    return out


def list_servers() -> list[McpServerView]:
    root = project_path()
    store = open_store()
    servers = mcp.mcp_servers(root)
    agents = project_agents(root) if servers else []
    called: dict[tuple[str, str], set[str]] = {}
    for event in store.search_ledger(action="tool.result", limit=100_000):
        server, name = mcp.split_name(str(json.loads(event.payload).get("tool") or ""))
        if name and event.actor.startswith("agent:"):
            called.setdefault((server, name), set()).add(event.actor.removeprefix("agent:"))
    out = []
    for name, config in sorted(servers.items()):
        target = config.url or " ".join([config.command or "", *config.args])
        by_server = sorted({a for (s, _), who in called.items() if s == name for a in who})
        configured = _configured(agents, name, config.tools)
        try:
            definitions = list(mcp.allowed_definitions(root, name).values())
        except ConfigError as exc:
            out.append(McpServerView(name, config.transport, target, error=str(exc),
                                     configured=sorted({a for who in configured.values() for a in who}),
                                     called=by_server, agents=by_server))
            continue
        tools = []
        for d in definitions:
            state, problem, held = pin_state(store, d)
            tools.append(McpToolView(d.name, state, d.digest, held, d.description, problem,
                                     configured=sorted(configured.get(d.name, ())),
                                     called=sorted(called.get((name, d.name), ()))))
        out.append(McpServerView(name, config.transport, target, tools,
                                 configured=sorted({a for who in configured.values() for a in who}),
                                 called=by_server, agents=by_server))
    return out


def pin(server: str, tool: str | None, *, user: str | None) -> list[Repinned]:
    """An admin accepts the server's current definition of `tool` (or of each allowlisted tool)."""
    store = open_store()
    acting = require_user(store, user, CAN_ADMIN, "pinning MCP tools")
    return repin(store, project_path(), server, tool, actor=f"user:{acting.name}")
