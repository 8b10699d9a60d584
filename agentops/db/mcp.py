"""The statements of MCP pinning: each server tool's accepted definition and its digest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event
from agentops.db.ledger import LedgerSQL
from agentops.db.sql import as_row

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
    from agentops.db.schema import McpPin
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")


class McpSQL(LedgerSQL):
    def mcp_pin(self, server: str, tool: str) -> McpPin | None:
        with self.read() as conn:
            pins = schema.MCP_PINS
            row = conn.execute(sa.select(pins).where(pins.c.server == server, pins.c.tool == tool)).first()
            return as_row(schema.McpPin, row._mapping) if row is not None else None

    def mcp_pins(self) -> list[McpPin]:
        with self.read() as conn:
            pins = schema.MCP_PINS
            rows = conn.execute(sa.select(pins).order_by(pins.c.server, pins.c.tool))
            return [as_row(schema.McpPin, r._mapping) for r in rows]

    def add_mcp_pin(self, values: dict[str, Any], events: Sequence[Event] = ()) -> McpPin:
        """Pin a definition unless the tool already has one; returns the pin that holds (first writer wins)."""
        pins = schema.MCP_PINS
        try:
            with self.write() as conn:
                held = conn.execute(sa.select(pins).where(pins.c.server == values["server"],
                                                          pins.c.tool == values["tool"])).first()
                if held is not None:
                    return as_row(schema.McpPin, held._mapping)
                conn.execute(sa.insert(pins), values)
                self._append(conn, events)
        except sa.exc.IntegrityError:
            pass  # another process pinned it between our read and insert: theirs holds
        pin = self.mcp_pin(values["server"], values["tool"])
        assert pin is not None
        return pin

    def replace_mcp_pin(self, values: dict[str, Any], events: Sequence[Event] = ()) -> None:
        """An admin's re-pin: the new definition replaces the old one, with its ledger events, in one transaction."""
        pins = schema.MCP_PINS
        with self.write() as conn:
            conn.execute(sa.delete(pins).where(pins.c.server == values["server"], pins.c.tool == values["tool"]))
            conn.execute(sa.insert(pins), values)
            self._append(conn, events)
