"""CLI commands for the HTTP faces: `agentops api`, its tokens, and the simulated cluster's /metrics."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from agentops import service
from agentops.cli.serve import require_free_port
from agentops.cli.support import AsUser, JsonOpt, console, emit_json, fmt_time
from agentops.service import tokens

tokens_app = typer.Typer(help="Bearer tokens of the HTTP API.", no_args_is_help=True)

Host = Annotated[str, typer.Option("--host", help="The address to bind (loopback unless you mean otherwise).")]
Port = Annotated[int, typer.Option("--port", min=1, max=65535)]


def api(host: Host = "127.0.0.1", port: Port = 8502) -> None:
    """Serve the HTTP API (runs it starts wait for a worker: `agentops worker` or `agentops serve`)."""
    from agentops.api.server import ApiServer

    service.open_database()
    require_free_port(host, port)
    server = ApiServer(host, port)
    console.print(f"API on {server.url} (OpenAPI: {server.url}/api/openapi.json); Ctrl-C stops it")
    server.run()


def cluster_metrics(host: Host = "127.0.0.1", port: Port = 9108) -> None:
    """Serve the simulated cluster's metrics at /metrics (cAdvisor and kube-state-metrics names) for Prometheus."""
    import threading

    from agentops.backends import sim_exporter

    service.open_database()
    require_free_port(host, port)
    server, bound = sim_exporter.serve(host, port)
    console.print(f"simulated cluster metrics on http://{host}:{bound}/metrics; Ctrl-C stops it")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


@tokens_app.command("add")
def tokens_add(name: str, role: Annotated[str, typer.Option("--role", help="viewer, operator, approver or admin")],
               expires: Annotated[str | None, typer.Option(
                   "--expires", help="Refuse it after this long: 30d, 12h, 90m, 2w (default: until revoked)")] = None,
               user: AsUser = None) -> None:
    """Create a token acting as the account NAME (created with ROLE if missing). It is shown once."""
    secret = tokens.add_token(name, role, actor_user=user, expires=expires)
    until = f", expires {fmt_time(tokens.list_token(name).expires_at)}" if expires else ""
    console.print(f"token {name} ({role}{until}) created; it is shown once, store it now:")
    console.print(secret, highlight=False, soft_wrap=True)


@tokens_app.command("list")
def tokens_list(as_json: JsonOpt = False) -> None:
    """The tokens (never their secrets): name, role, who created it, when, its expiry and its state."""
    items = tokens.list_tokens()
    if as_json:
        emit_json([t.model_dump(exclude={"token_hash"}) | {"state": tokens.token_state(t)} for t in items])
        return
    table = Table("name", "role", "state", "created by", "created", "expires", "revoked", box=None)
    for t in items:
        table.add_row(t.name, t.role, tokens.token_state(t), t.created_by, fmt_time(t.created_at),
                      fmt_time(t.expires_at) if t.expires_at else "never", fmt_time(t.revoked_at))
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: str, user: AsUser = None) -> None:
    """Revoke a token: requests carrying it are refused from now on."""
    tokens.revoke_token(name, actor_user=user)
    console.print(f"token {name} revoked")


def register(app: typer.Typer) -> None:
    app.command("api")(api)
    app.command("cluster-metrics")(cluster_metrics)
    app.add_typer(tokens_app, name="tokens")
