"""Small renderers shared by pages: times, states, JSON and diffs."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

import streamlit as st

from agentops.service import format_time

STATE_ICON = {"COMPLETED": "✓", "FAILED": "✗", "CRASHED": "✗", "CANCELLED": "○", "AWAITING_APPROVAL": "◆",
              "AWAITING_RETRY": "↻", "RUNNING": "▶", "PENDING": "…", "SCHEDULED": "◷"}
"""Plain symbols that common system fonts carry (a server's browser often has no colour-emoji font)."""


def viewer_zone() -> str:
    """The browser's IANA zone as Streamlit reports it; UTC when it reports none (a script run, a test)."""
    try:
        return st.context.timezone or "UTC"
    except Exception:  # no browser session (AppTest, a bare script run)
        return "UTC"


def when(ts: float | None, zone: str | None = None) -> str:
    """A time labelled with its zone: `zone` (a schedule's) or the viewer's, and the same instant in UTC."""
    return format_time(ts, zone or viewer_zone())


MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~$])")


def md_text(text: str) -> str:
    """Text shown through st.markdown exactly as written: markdown and HTML characters escaped."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def state_label(state: str) -> str:
    return f"{STATE_ICON.get(state, '·')} {state}"


def countdown(seconds: float | None) -> str:
    if seconds is None:
        return "never expires"
    if seconds <= 0:
        return "expired"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"expires in {hours} h {minutes} min" if hours else f"expires in {minutes} min {secs} s"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def args_diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    return "\n".join(difflib.unified_diff(pretty(before).splitlines(), pretty(after).splitlines(),
                                          "proposed", "edited", lineterm=""))
