"""MCP servers as people see them: each declared server, its tools with their pin state, the agents that used
them; and an admin's re-pin."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from agentops.db import open_store
from agentops.engine import mcp
from agentops.errors import ConfigError
from agentops.governance.mcp_pins import Repinned, repin
from agentops.governance.users import CAN_ADMIN, require_user
from agentops.service.runs import project_path


@dataclass(frozen=True)
class McpToolView:
    name: str
    pin: str
    """pinned | unpinned | changed (the server offers another definition: refused until re-pinned)"""
    digest: str
    pinned_digest: str | None
    description: str
    """The server's own words, not verified."""


@dataclass(frozen=True)
class McpServerView:
    name: str
    transport: str
    target: str
    tools: list[McpToolView] = field(default_factory=list)
    error: str | None = None
    """Why the server's tools could not be listed (then `tools` is empty)."""
    agents: list[str] = field(default_factory=list)
    """The agents recorded calling its tools (from the ledger's tool.result events)."""


def list_servers() -> list[McpServerView]:
    root = project_path()
    store = open_store()
    pins = {(p.server, p.tool): p.digest for p in store.mcp_pins()}
    users: dict[str, set[str]] = {}
    for event in store.search_ledger(action="tool.result", limit=100_000):
        tool = str(json.loads(event.payload).get("tool") or "")
        server, name = mcp.split_name(tool)
        if name and event.actor.startswith("agent:"):
            users.setdefault(server, set()).add(event.actor.removeprefix("agent:"))
    out = []
    for name, config in sorted(mcp.mcp_servers(root).items()):
        target = config.url or " ".join([config.command or "", *config.args])
        try:
            definitions = list(mcp.allowed_definitions(root, name).values())
        except ConfigError as exc:
            out.append(McpServerView(name, config.transport, target, error=str(exc),
                                     agents=sorted(users.get(name, ()))))
            continue
        tools = []
        for d in definitions:
            held = pins.get((name, d.name))
            state = "unpinned" if held is None else "pinned" if held == d.digest else "changed"
            tools.append(McpToolView(d.name, state, d.digest, held, d.description))
        out.append(McpServerView(name, config.transport, target, tools, agents=sorted(users.get(name, ()))))
    return out


def pin(server: str, tool: str | None, *, user: str | None) -> list[Repinned]:
    """An admin accepts the server's current definition of `tool` (or of each allowlisted tool)."""
    store = open_store()
    acting = require_user(store, user, CAN_ADMIN, "pinning MCP tools")
    return repin(store, project_path(), server, tool, actor=f"user:{acting.name}")
