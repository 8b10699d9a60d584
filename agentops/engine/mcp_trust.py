"""Whether an MCP tool's pin row may be trusted: it must agree with the ledger's latest `mcp.pinned` event for
that (server, tool).

A pin row is written only together with its `mcp.pinned` event (first use, or an admin's re-pin), in one
transaction. A row inserted in the database without an event, edited (its digest or stored definition), or
deleted and inserted again with another definition disagrees with the ledger, and a row deleted alone leaves an
event with no row. Each of these is a `problem`: calls to the tool are refused (fail closed) until an admin
re-pins it, and nothing re-pins it automatically. The event is trusted as far as its own hash (an edited event is
caught here); a forged or recomputed chain is for `agentops audit verify` against a signed checkpoint, as for
approvals (`governance/binding.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from agentops.core import serialization
from agentops.core.ledger import LedgerRow, event_hash
from agentops.errors import SerializationError

if TYPE_CHECKING:
    from agentops.db import Store
    from agentops.db.schema import McpPin


class PinRow(Protocol):
    @property
    def digest(self) -> str: ...
    @property
    def definition(self) -> str: ...


@dataclass(frozen=True)
class PinCheck:
    pin: McpPin | None
    problem: str | None = None
    """Why the pin cannot be trusted; None when it agrees with the ledger (or the tool was never pinned)."""

    @property
    def digest(self) -> str | None:
        """The trusted pinned digest (None when unpinned or not trusted)."""
        return self.pin.digest if self.pin is not None and self.problem is None else None


def disagreement(server: str, tool: str, pin: PinRow | None, event: LedgerRow | None) -> str | None:
    """Why the pin row `pin` does not match `event` (the ledger's latest `mcp.pinned` event for the tool)."""
    qualified = f"{server}.{tool}"
    fix = f"an admin must review the tool and re-pin it (agentops mcp pin {server} {tool})"
    if pin is None and event is None:
        return None
    if event is None:
        return (f"the pin of {qualified} has no 'mcp.pinned' event in the ledger (the row was written in the "
                f"database, not by agentops); calls are refused: {fix}")
    seq, ts, actor, action, run_id, step_no, approval_id, payload_text, policy_hash, prev_hash, stored = event
    if event_hash(prev_hash, ts, actor, action, run_id, step_no, approval_id, payload_text, policy_hash) != stored:
        return f"the 'mcp.pinned' event of {qualified} (ledger seq {seq}) was edited; calls are refused: {fix}"
    if pin is None:
        return (f"the pin of {qualified} is gone from the database, but the ledger records it pinned (seq {seq}); "
                f"calls are refused and it is not pinned again on use: {fix}")
    payload = json.loads(payload_text)
    held = None
    with suppress(SerializationError):
        held = serialization.digest(serialization.loads(pin.definition))
    if payload.get("digest") != pin.digest or held != pin.digest:
        return (f"the pin of {qualified} does not match the ledger's 'mcp.pinned' event (seq {seq}: "
                f"{str(payload.get('digest'))[:12]}, row {pin.digest[:12]}, its stored definition "
                f"{(held or '-')[:12]}): it was changed in the database; calls are refused: {fix}")
    return None


def check_pin(store: Store, server: str, tool: str) -> PinCheck:
    """The pin of `server.tool` checked against the ledger. A disagreement is read once more before it is reported,
    since an admin's re-pin may have committed between the two reads."""
    for _ in range(2):
        pin, event = store.mcp_pin_with_event(server, tool)
        problem = disagreement(server, tool, pin, event)
        if problem is None:
            return PinCheck(pin)
    return PinCheck(pin, problem)


@dataclass(frozen=True)
class StoredPin:
    server: str
    tool: str
    digest: str
    definition: str


class PinEvents:
    """The latest `mcp.pinned` event of each (server, tool), noted while `agentops audit verify` walks the chain."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str], LedgerRow] = {}

    def tap(self, rows: Iterable[LedgerRow]) -> Iterator[LedgerRow]:
        for row in rows:
            if row[3] == "mcp.pinned":
                try:
                    payload = json.loads(row[7])
                except (ValueError, TypeError):
                    payload = None
                if isinstance(payload, dict) and isinstance(payload.get("server"), str) \
                        and isinstance(payload.get("tool"), str):
                    self.latest[(payload["server"], payload["tool"])] = row
            yield row

    def problems(self, pins: Iterable[StoredPin]) -> list[tuple[int | None, str]]:
        """(ledger seq or None, problem) for every pin row that disagrees with the ledger, and every pinned tool
        whose row is gone."""
        out: list[tuple[int | None, str]] = []
        rows = {(p.server, p.tool): p for p in pins}
        for key in sorted(set(rows) | set(self.latest)):
            event = self.latest.get(key)
            problem = disagreement(key[0], key[1], rows.get(key), event)
            if problem is not None:
                out.append((event[0] if event is not None else None, problem))
        return out
