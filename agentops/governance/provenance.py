"""Where a proposed call's argument values came from: data the run read (a tool's output, a task's result, the
alert or webhook that started it) rather than a person (the parameters someone started the run with).

Worked out once, when an approval request is opened, and stored with it, so a reviewer sees where an injected
value would have come from. A value is traced by its pieces: the whole value, each line of 8 characters or more,
and each token that names something (an email address, a URL, a host name, a number with a unit). A piece is
marked when a data source holds it and no person's words do; matching ignores case.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MIN_PIECE = 8
"""Whole values and lines shorter than this are not traced (too common to say where they came from)."""
MAX_SOURCE_CHARS = 200_000
"""Of each source's text, this much is searched."""

_TOKENS = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an email address
    r"|https?://[^\s\"'<>]+"  # a URL
    r"|\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\b"  # a host name
    r"|\b\d+(?:\.\d+)?\s?(?:%|ms|s|m|h|d|ki|mi|gi|kb|mb|gb|tb|cpu|cores?|replicas?|usd|eur)\b",  # a number with a unit
    re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    label: str
    """How the card names it: `list_tickets output`, `the alert that started the run`; empty: `data`."""
    text: str
    person: bool = False
    """A person's words (the run's parameters as started): what is found there is not marked."""


def source_text(value: Any) -> str:
    """A source as searched: its text, and the string values inside it when it is JSON (so a line break or a
    non-ASCII letter a JSON encoding escaped is found as written)."""
    raw = value if isinstance(value, str) else json.dumps(value, default=str)
    try:
        decoded = json.loads(raw) if isinstance(value, str) else value
    except ValueError:
        return raw[:MAX_SOURCE_CHARS]
    leaves = "\n".join(_strings(decoded))
    return f"{raw}\n{leaves}"[:MAX_SOURCE_CHARS]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")


def pieces(value: str) -> list[str]:
    """The parts of a value traced: the whole, its long lines, its naming tokens (longest first, no repeats)."""
    found = [value.strip(), *(line.strip() for line in value.splitlines()),
             *(m.group(0).rstrip(".,;:") for m in _TOKENS.finditer(value))]
    seen: dict[str, str] = {}
    for piece in found:
        if (len(piece) >= MIN_PIECE or _TOKENS.fullmatch(piece)) and piece.casefold() not in seen:
            seen[piece.casefold()] = piece
    return sorted(seen.values(), key=len, reverse=True)


def trace(args: dict[str, Any], sources: list[Source]) -> dict[str, dict[str, str]]:
    """{argument path: {"value": the piece found, "source": its label}} for each string argument a piece of
    which came from data and not from a person. Paths are `to[0]`, `body`, `attachments[1].name`."""
    people = "\n".join(s.text for s in sources if s.person).casefold()
    data = [(s.label, s.text.casefold()) for s in sources if not s.person]
    marks: dict[str, dict[str, str]] = {}
    if not data:
        return marks
    for path, value in _leaves(args, ""):
        for piece in pieces(value):
            folded = piece.casefold()
            if folded in people:
                continue
            label = next((label for label, text in data if folded in text), None)
            if label is not None:
                marks[path] = {"value": piece, "source": label or "data"}
                break
    return marks
