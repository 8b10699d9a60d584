"""The statements of MCP pinning: each server tool's accepted definition and its digest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event, LedgerRow
from agentops.db.ledger import LEDGER_COLUMNS, LedgerSQL
from agentops.db.sql import as_row

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
    from agentops.db.schema import McpPin
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")


def pinned_event_for(payload_text: str, server: str, tool: str) -> bool:
    """Whether an `mcp.pinned` event's payload names this (server, tool)."""
    try:
        payload = json.loads(payload_text)
    except (ValueError, TypeError):
        return False
    return isinstance(payload, dict) and payload.get("server") == server and payload.get("tool") == tool


class McpSQL(LedgerSQL):
    def mcp_pin(self, server: str, tool: str) -> McpPin | None:
        with self.read() as conn:
            pins = schema.MCP_PINS
            row = conn.execute(sa.select(pins).where(pins.c.server == server, pins.c.tool == tool)).first()
            return as_row(schema.McpPin, row._mapping) if row is not None else None

    def mcp_pin_with_event(self, server: str, tool: str) -> tuple[McpPin | None, LedgerRow | None]:
        """The pin row and the ledger's latest `mcp.pinned` event for (server, tool), read in one transaction."""
        with self.read() as conn:
            pins = schema.MCP_PINS
            row = conn.execute(sa.select(pins).where(pins.c.server == server, pins.c.tool == tool)).first()
            events = conn.execute(sa.text(f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE action = 'mcp.pinned' "
                                          "ORDER BY seq DESC"))
            event = next((tuple(e) for e in events if pinned_event_for(e[7], server, tool)), None)
            return (as_row(schema.McpPin, row._mapping) if row is not None else None), cast("Any", event)

    def mcp_pins(self) -> list[McpPin]:
        with self.read() as conn:
            pins = schema.MCP_PINS
            rows = conn.execute(sa.select(pins).order_by(pins.c.server, pins.c.tool))
            return [as_row(schema.McpPin, r._mapping) for r in rows]

    def add_mcp_pin(self, values: dict[str, Any], events: Sequence[Event] = ()) -> McpPin | None:
        """Pin a definition unless the tool already has one; returns the pin that holds (first writer wins). A tool
        the ledger records as pinned before has no first use any more: a missing row (deleted in the database) is
        not written again here (None), only by an admin's re-pin."""
        pins = schema.MCP_PINS
        server, tool = values["server"], values["tool"]
        try:
            with self.write() as conn:
                held = conn.execute(sa.select(pins).where(pins.c.server == server, pins.c.tool == tool)).first()
                if held is not None:
                    return as_row(schema.McpPin, held._mapping)
                before = conn.execute(sa.text("SELECT payload FROM ledger WHERE action = 'mcp.pinned'"))
                if any(pinned_event_for(p, server, tool) for (p,) in before):
                    return None
                conn.execute(sa.insert(pins), values)
                self._append(conn, events)
        except sa.exc.IntegrityError:
            pass  # another process pinned it between our read and insert: theirs holds
        return self.mcp_pin(server, tool)

    def replace_mcp_pin(self, values: dict[str, Any], events: Sequence[Event] = ()) -> None:
        """An admin's re-pin: the new definition replaces the old one, with its ledger events, in one transaction."""
        pins = schema.MCP_PINS
        with self.write() as conn:
            conn.execute(sa.delete(pins).where(pins.c.server == values["server"], pins.c.tool == values["tool"]))
            conn.execute(sa.insert(pins), values)
            self._append(conn, events)
