"""Text from outside (a server's description, a tool's output, a stored row) made safe to print on a terminal."""

from __future__ import annotations

import re

_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Control characters but line breaks and tabs (an ESC starts a sequence that recolours, hides, retitles or
links), and the bidirectional controls that make text read in another order than it is stored."""


def visible(text: str) -> str:
    """`text` with each terminal control or bidirectional control shown as its escape (`\\x1b`, `\\u202e`)."""
    return _HIDDEN.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible_json(text: str) -> str:
    """JSON text with the same characters written as JSON escapes (`\\u009b`), meaning the same to a parser."""
    return _HIDDEN.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
