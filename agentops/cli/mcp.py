"""CLI commands for the project's MCP servers (mcp.yaml): list them, re-pin a tool's definition."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from agentops.cli.support import AsUser, JsonOpt, console, emit_json
from agentops.service import mcp as mcp_service

mcp_app = typer.Typer(help="MCP servers declared in mcp.yaml, their tools and pins.", no_args_is_help=True)


@mcp_app.command("list")
def mcp_list(as_json: JsonOpt = False) -> None:
    """Each server, its allowlisted tools with their pin state, the agents configured to use each tool (the
    project's Agent objects in flows/) and the agents the ledger records calling it."""
    servers = mcp_service.list_servers()
    if as_json:
        from dataclasses import asdict

        emit_json([asdict(s) for s in servers])
        return
    if not servers:
        console.print("no MCP servers (declare them in mcp.yaml)")
        return
    table = Table("server", "transport", "tool", "pin", "digest", "configured", "called", box=None)
    for s in servers:
        if s.error is not None:
            table.add_row(s.name, s.transport, "-", "[red]unreachable[/red]", "-",
                          ", ".join(s.configured) or "-", ", ".join(s.called) or "-")
        for t in s.tools:
            pin = f"[red]{t.pin}[/red]" if t.pin in ("changed", "untrusted") else t.pin
            table.add_row(s.name, s.transport, t.name, pin, t.digest[:12],
                          ", ".join(t.configured) or "-", ", ".join(t.called) or "-")
    console.print(table)
    for s in servers:  # reasons in full, below the table: squeezed into a column they were cut mid-word
        if s.error is not None:
            console.print(f"{escape(s.name)}: {escape(s.error)}", soft_wrap=True)
        for t in s.tools:
            if t.problem is not None:
                console.print(f"{escape(s.name)}.{escape(t.name)}: {escape(t.problem)}", soft_wrap=True)


@mcp_app.command("pin")
def mcp_pin(
    server: str,
    tool: Annotated[str | None, typer.Argument(help="Default: every allowlisted tool of the server")] = None,
    user: AsUser = None,
) -> None:
    """Accept the server's current definition of a tool (an admin, recorded in the ledger)."""
    for done in mcp_service.pin(server, tool, user=user):
        was = f" (was {done.previous[:12]})" if done.previous and done.previous != done.digest else ""
        console.print(f"pinned {done.server}.{done.tool} {done.digest[:12]}{was}")


@mcp_app.command("serve")
def mcp_serve(user: AsUser = None) -> None:
    """Serve the project's flows (and read tools for runs and approvals) as an MCP server over stdio.

    Runs started here are queued for a worker (`agentops worker`) as the acting user. Over HTTP the same tools are
    at /mcp of `agentops api`, each request acting as its bearer token's account.
    """
    from agentops.api.mcp_server import serve_stdio

    serve_stdio(user)
