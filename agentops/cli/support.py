"""Shared pieces of the CLI: parameter parsing, JSON output, tables and times."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console

from agentops.core.serialization import stored
from agentops.errors import AgentOpsError

console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AsUser = Annotated[str | None, typer.Option("--as", envvar="AGENTOPS_USER", help="The person acting.")]


def parse_params(pairs: list[str] | None, hints: dict[str, Any] | None = None) -> dict[str, Any]:
    """`-p key=value` pairs; values are JSON when they parse (numbers, lists, true), text otherwise.

    A parameter annotated as `str` always keeps its text.
    """
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise AgentOpsError(f"bad parameter '{pair}': use -p key=value")
        if hints is not None and hints.get(key) is str:
            params[key] = raw
            continue
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(json.loads(stored(data)), indent=2) + "\n")


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def fmt_duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


STATE_STYLE = {"COMPLETED": "green", "FAILED": "red", "CRASHED": "red", "CANCELLED": "yellow",
               "AWAITING_APPROVAL": "magenta", "AWAITING_RETRY": "yellow", "RUNNING": "cyan",
               "PENDING": "blue", "SCHEDULED": "blue"}


def styled_state(state: str) -> str:
    style = STATE_STYLE.get(state, "white")
    return f"[{style}]{state}[/{style}]"


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
