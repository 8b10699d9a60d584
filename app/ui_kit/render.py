"""Small renderers shared by pages: times, states, JSON and diffs."""

from __future__ import annotations

import difflib
import json
import time
from typing import Any

STATE_ICON = {"COMPLETED": "✓", "FAILED": "✗", "CRASHED": "✗", "CANCELLED": "○", "AWAITING_APPROVAL": "◆",
              "AWAITING_RETRY": "↻", "RUNNING": "▶", "PENDING": "…", "SCHEDULED": "◷"}
"""Plain symbols that common system fonts carry (a server's browser often has no colour-emoji font)."""


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


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
