"""Shared pieces of the CLI: parameter parsing, JSON output, tables and times."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from agentops.core.serialization import stored
from agentops.core.terminal import visible, visible_json
from agentops.core.times import duration_text, format_time, iso_times
from agentops.errors import AgentOpsError


class VisibleConsole(Console):
    """A console that shows control characters in what it prints as escapes, so that no text it is given (a
    server's description, a stored output) can restyle, hide or reorder what a person reads."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(visible(text), **kwargs)


console = VisibleConsole()

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
    """Indented JSON on stdout, secrets redacted, every timestamp as ISO 8601 with its offset."""
    text = json.dumps(iso_times(json.loads(stored(data))), indent=2, ensure_ascii=False)
    sys.stdout.write(visible_json(text) + "\n")


def fmt_time(ts: float | None, zone: str | None = None) -> str:
    """A time with its zone: UTC, or `zone`'s wall clock followed by the same instant in UTC."""
    return format_time(ts, zone)


class Listing:
    """Rows printed as a table when it fits the terminal (COLUMNS), else as one block per row: the first cell
    (an id, never wrapped or cut, so it can be copied whole) on its own line, then `header  value` lines."""

    def __init__(self, *headers: str, markup: bool = False) -> None:
        self.headers = headers
        self.rows: list[tuple[str, ...]] = []
        self.markup = markup

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells)

    def print(self) -> None:
        wide = Table(box=None, pad_edge=False)
        wide.add_column(self.headers[0], no_wrap=True)
        for header in self.headers[1:]:
            wide.add_column(header, overflow="fold")
        for row in self.rows:
            wide.add_row(*row)
        if console.measure(wide, options=console.options.update_width(10_000)).maximum <= console.width:
            console.print(wide, markup=self.markup, highlight=False)
            return
        label = max(len(h) for h in self.headers[1:])
        for n, (first, *rest) in enumerate(self.rows):
            block = Table.grid(padding=(0, 2), pad_edge=False)
            block.add_column(no_wrap=True, min_width=label)
            block.add_column(overflow="fold")
            for header, cell in zip(self.headers[1:], rest, strict=True):
                block.add_row(header, cell)
            if n:
                console.print()
            console.print(first, markup=self.markup, highlight=False, soft_wrap=True)
            console.print(Padding(block, (0, 0, 0, 2)), markup=self.markup, highlight=False)


def one_line_json(value: Any) -> str:
    """A value as compact JSON on one line (for table cells), never a Python repr."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def fmt_duration(ms: float | None) -> str:
    return "-" if ms is None else duration_text(ms / 1000)


STATE_STYLE = {"COMPLETED": "green", "FAILED": "red", "CRASHED": "red", "CANCELLED": "yellow",
               "AWAITING_APPROVAL": "magenta", "AWAITING_RETRY": "yellow", "RUNNING": "cyan",
               "PENDING": "blue", "SCHEDULED": "blue"}


def styled_state(state: str) -> str:
    style = STATE_STYLE.get(state, "white")
    return f"[{style}]{state}[/{style}]"


def fail(message: str) -> None:
    typer.echo(f"error: {visible(message)}", err=True)
    raise typer.Exit(2)
