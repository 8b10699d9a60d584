"""Pinning MCP tool definitions: the first allowed use of a server tool records its definition and digest, a
changed definition is refused until an admin re-pins it, and every pin and re-pin is in the ledger."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentops.core import serialization
from agentops.core.ledger import Event
from agentops.db import Store
from agentops.engine import mcp
from agentops.engine.mcp_trust import check_pin
from agentops.errors import ConfigError, SerializationError

if TYPE_CHECKING:
    from agentops.db.schema import McpPin


def _values(definition: mcp.ToolDefinition, actor: str) -> dict[str, object]:
    return {"server": definition.server, "tool": definition.name, "digest": definition.digest,
            "definition": serialization.dumps(definition.as_dict()), "pinned_by": actor, "pinned_at": time.time()}


def pin_problem(store: Store, definition: mcp.ToolDefinition) -> str | None:
    """Why a call to this definition is refused (its pin does not agree with the ledger, or the server now offers
    another definition than the pinned one), or None."""
    checked = check_pin(store, definition.server, definition.name)
    if checked.problem is not None:
        return checked.problem
    pin = checked.pin
    if pin is None or pin.digest == definition.digest:
        return None
    return (f"the MCP server '{definition.server}' changed the definition of '{definition.name}' since it was "
            f"pinned (pinned {pin.digest[:12]}, offered {definition.digest[:12]}); an admin must review it and "
            f"re-pin it (agentops mcp pin {definition.server} {definition.name})")


PinState = str
"""pinned | unpinned | changed (the server offers another definition) | untrusted (the pin row disagrees with
the ledger: written, edited or deleted in the database); calls are refused in the last two."""


def pin_state(store: Store, definition: mcp.ToolDefinition) -> tuple[PinState, str | None, str | None]:
    """The pin state of a live definition, the problem when it is `untrusted`, and the pin row's digest (for
    `agentops mcp list`)."""
    checked = check_pin(store, definition.server, definition.name)
    held = checked.pin.digest if checked.pin is not None else None
    if checked.problem is not None:
        return "untrusted", checked.problem, held
    if held is None:
        return "unpinned", None, None
    return ("pinned" if held == definition.digest else "changed"), None, held


def trusted_pin(store: Store, server: str, tool: str) -> McpPin | None:
    """The pin of `server.tool` when it agrees with the ledger, else None."""
    checked = check_pin(store, server, tool)
    return checked.pin if checked.digest is not None else None


def pinned_definition(store: Store, server: str, tool: str, digest: str) -> dict[str, object] | None:
    """The trusted pin's definition of `server.tool` when its digest is `digest` (the one a call was screened on);
    None otherwise."""
    held = trusted_pin(store, server, tool)
    if held is None or held.digest != digest:
        return None
    try:
        value = serialization.loads(held.definition, f"the pin of {server}.{tool}")
    except SerializationError:
        return None
    return value if isinstance(value, dict) else None


def pin_first_use(store: Store, definition: mcp.ToolDefinition) -> None:
    """Pin the definition unless one is pinned already (then the caller has checked `pin_problem`), or the ledger
    says it was pinned before (its row was deleted: only an admin pins it again)."""
    if store.mcp_pin(definition.server, definition.name) is not None:
        return
    event = Event(actor="system:mcp", action="mcp.pinned", payload={
        "server": definition.server, "tool": definition.name, "digest": definition.digest,
        "definition": definition.as_dict(), "first_use": True})
    store.add_mcp_pin(_values(definition, "system:mcp"), [event])


@dataclass(frozen=True)
class Repinned:
    server: str
    tool: str
    digest: str
    previous: str | None


def repin(store: Store, root: Path, server: str, tool: str | None, actor: str) -> list[Repinned]:
    """Pin the server's live definition of `tool` (or of each allowlisted tool), each with an `mcp.pinned` event."""
    allowed = mcp.allowed_definitions(root, server)
    if tool is not None and tool not in allowed:
        raise ConfigError(f"MCP server '{server}' has no tool '{tool}' that agents may use "
                          f"(allowed: {', '.join(sorted(allowed)) or 'none'})")
    chosen = [allowed[tool]] if tool is not None else list(allowed.values())
    done = []
    for definition in chosen:
        held = store.mcp_pin(server, definition.name)
        previous = held.digest if held is not None else None
        event = Event(actor=actor, action="mcp.pinned", payload={
            "server": server, "tool": definition.name, "digest": definition.digest, "previous": previous,
            "definition": definition.as_dict(), "first_use": False})
        store.replace_mcp_pin(_values(definition, actor), [event])
        done.append(Repinned(server, definition.name, definition.digest, previous))
    return done
