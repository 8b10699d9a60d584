"""An MCP server for the tests that asks for input during a call, written with the SDK's MCPServer.

Usage: ask_server.py stdio. `deploy` asks the way the 2026-07-28 protocol lets a server ask: it answers the call
with an InputRequiredResult (the question and a request_state sealed with ASK_SERVER_KEY, a key every process of
the server shares, so the call can be made again with the answer after agentops restarted), and completes when
the call comes back with the answer. `legacy_ask` asks in the middle of the live call instead (`ctx.elicit`),
which nobody can answer later. ASK_SERVER_STATE (when set) names a file holding the JSON list of calls received,
ASK_SERVER_STARTS one that gets the pid of every process started.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.server.request_state import RequestStateSecurity
from pydantic import BaseModel

server = MCPServer("ask", request_state_security=RequestStateSecurity(keys=[os.environ["ASK_SERVER_KEY"]],
                                                                      ttl=3600))


class ChangeTicket(BaseModel):
    ticket: str
    window_minutes: int


def _record(tool: str, args: dict[str, Any]) -> None:
    state = os.environ.get("ASK_SERVER_STATE")
    if not state:
        return
    path = Path(state)
    calls = json.loads(path.read_text()) if path.exists() else []
    calls.append({"tool": tool, "args": args})
    path.write_text(json.dumps(calls))


def ask_ticket(service: str) -> Elicit[ChangeTicket]:
    _record("deploy.asked", {"service": service})
    return Elicit(f"Which change ticket covers deploying {service}?", ChangeTicket)


@server.tool()
def deploy(service: str, change: Annotated[ChangeTicket, Resolve(ask_ticket)]) -> str:
    """Deploy a service; asks which change ticket covers it."""
    _record("deploy", {"service": service, "ticket": change.ticket, "window_minutes": change.window_minutes})
    return f"deployed {service} under {change.ticket} within {change.window_minutes} minutes"


@server.tool()
async def legacy_ask(service: str, ctx: Context) -> str:
    """Asks for a ticket in the middle of the call, which cannot wait for a person."""
    _record("legacy_ask", {"service": service})
    answer = await ctx.elicit(f"Which change ticket covers {service}?", ChangeTicket)
    return f"answer: {answer.action}"


if __name__ == "__main__":
    assert sys.argv[1] == "stdio"
    if os.environ.get("ASK_SERVER_STARTS"):  # one line per process started, with its pid
        with open(os.environ["ASK_SERVER_STARTS"], "a") as starts:
            starts.write(f"{os.getpid()}\n")
    server.run("stdio")
