"""Where a proposed call's argument values came from: data the run read (a tool's output, a task's result, the
alert or webhook that started it, parameters a model wrote) rather than a person (the parameters someone started
the run with, the chat message a dispatcher acted on).

Worked out once, when an approval request is opened, and stored with it, so a reviewer sees where an injected
value would have come from. A string value is traced by its pieces: the whole value, each line of 8 characters or
more, and each token that names something (an email address, a URL, a host name, an IPv4 or IPv6 address, a
number with a unit, an account-like number of 6 digits or more such as an IBAN); a number by its text when it has
2 digits or more. A piece is marked when a data source holds it and no person's words do; tokens and numbers match
whole (`12` is not found in `512Mi`), and matching ignores case. Each line of 16 characters or more of a data
source is also looked for inside each string value (a data sentence copied into a longer message).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MIN_PIECE = 8
"""Whole values and lines shorter than this are not traced (too common to say where they came from)."""
MIN_DATA_LINE = 16
"""A data source's lines this long or longer are looked for inside argument values."""
MIN_NUMBER_DIGITS = 2
"""A number argument with fewer digits is not traced (0, 1, 3 are everywhere)."""
MAX_SOURCE_CHARS = 200_000
"""Of each source's text, this much is searched."""

_TOKENS = re.compile(
    r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an email address
    r"|https?://[^\s\"'<>]+"  # a URL
    r"|(?<![\w.-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\b"  # a host name
    r"|\b(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?\b"  # an IPv4 address or network
    r"|(?<![\w:])(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}(?![\w:])"  # a full IPv6 address
    r"|(?<![\w:])(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?"  # IPv6 with ::
    r"|::[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)(?![\w:])"
    r"|\b\d+(?:\.\d+)?\s?(?:%|ms|s|m|h|d|ki|mi|gi|kb|mb|gb|tb|cpu|cores?|replicas?|usd|eur)\b"  # a number with a unit
    r"|\b[a-z0-9]*\d{6,}[a-z0-9]*\b"  # an account-like number (an IBAN, an account or phone number)
    r"|\b\d{4}(?:[ -]\d{4}){2,}\b",  # a card-like number in groups
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


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str, bool]]:
    """(path, text, is it a number) for each string and number argument (a number as JSON writes it)."""
    if isinstance(value, str):
        yield path, value, False
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, json.dumps(value), True
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


class _Texts:
    """The sources' texts, casefolded, with whole-word lookups for tokens and numbers."""

    def __init__(self, sources: list[Source]) -> None:
        self.people = "\n".join(s.text for s in sources if s.person).casefold()
        self.data = [(s.label or "data", s.text.casefold()) for s in sources if not s.person]
        lines: dict[str, tuple[str, str, str]] = {}
        for source in sources:
            for line in source.text.splitlines() if not source.person else ():
                line, folded = line.strip(), line.strip().casefold()
                if len(line) >= MIN_DATA_LINE and folded not in lines and folded not in self.people:
                    lines[folded] = (folded, line, source.label or "data")
        self.lines = sorted(lines.values(), key=lambda item: len(item[0]), reverse=True)
        """(casefolded, as written, label) of each data line long enough to be looked for inside a value, longest
        first."""

    @staticmethod
    def holds(text: str, folded: str, *, whole: bool) -> bool:
        if not whole:
            return folded in text
        return folded in text and re.search(rf"(?<![\w.]){re.escape(folded)}(?!\w|\.\w)", text) is not None

    def source_of(self, piece: str, *, whole: bool) -> str | None:
        """The label of the first data source holding `piece` when no person's words do."""
        folded = piece.casefold()
        if self.holds(self.people, folded, whole=whole):
            return None
        return next((label for label, text in self.data if self.holds(text, folded, whole=whole)), None)


def trace(args: dict[str, Any], sources: list[Source]) -> dict[str, dict[str, str]]:
    """{argument path: {"value": the piece found, "source": its label}} for each argument a piece of which came
    from data and not from a person. Paths are `to[0]`, `body`, `attachments[1].name`, `replicas`."""
    marks: dict[str, dict[str, str]] = {}
    if not any(not s.person for s in sources):
        return marks
    texts = _Texts(sources)
    for path, value, number in _leaves(args, ""):
        if not number:
            found = _traced(value, texts)
        elif sum(c.isdigit() for c in value) >= MIN_NUMBER_DIGITS:
            label = texts.source_of(value, whole=True)
            found = None if label is None else {"value": value, "source": label}
        else:
            found = None
        if found is not None:
            marks[path] = found
    return marks


def _traced(value: str, texts: _Texts) -> dict[str, str] | None:
    """The longest piece of `value` found in data, or the longest data line found inside `value`."""
    best: dict[str, str] | None = None
    for piece in pieces(value):
        label = texts.source_of(piece, whole=_TOKENS.fullmatch(piece) is not None)
        if label is not None:
            best = {"value": piece, "source": label}
            break
    folded = value.casefold()
    for line, written, label in texts.lines:
        if best is not None and len(line) <= len(best["value"]):
            break
        if line in folded:
            best = {"value": written, "source": label}
            break
    return best
