"""Times as people read them: every one carries its zone, and JSON carries ISO 8601 with an offset.

Timestamps are stored as seconds since the epoch (UTC). A shown time names its zone ("UTC" or an IANA name); a
time in a zone other than UTC also shows the same instant in UTC, so "09:00 Europe/Berlin / 08:00 UTC".
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TIME_KEYS_SUFFIX = "_at"
"""Keys of a record whose numeric value is a timestamp (`created_at`, `next_fire_at`...), besides `ts`."""


def zone_of(name: str | None) -> tzinfo:
    """The zone named (an IANA name); UTC for none, and for a name this machine does not know."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def zone_label(zone: tzinfo) -> str:
    return "UTC" if zone is UTC else str(zone)


def format_time(ts: float | None, zone: str | None = None, *, seconds: bool = True) -> str:
    """`2026-12-03 09:00:00 Europe/Berlin / 08:00:00 UTC`, or `2026-12-03 08:00:00 UTC`; "-" for no time."""
    if ts is None:
        return "-"
    clock = "%H:%M:%S" if seconds else "%H:%M"
    where = zone_of(zone)
    local = datetime.fromtimestamp(ts, where)
    shown = f"{local.strftime('%Y-%m-%d ' + clock)} {zone_label(where)}"
    if where is UTC:
        return shown
    utc = datetime.fromtimestamp(ts, UTC)
    day = "" if utc.date() == local.date() else utc.strftime("%Y-%m-%d ")
    return f"{shown} / {day}{utc.strftime(clock)} UTC"


def iso_time(ts: float | None) -> str | None:
    """ISO 8601 in UTC with its offset, to the microsecond: `2026-12-03T08:00:00.000000+00:00`."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def is_time_key(key: str) -> bool:
    return key == "ts" or key.endswith(TIME_KEYS_SUFFIX)


def iso_times(value: Any) -> Any:
    """A JSON-ready value with every timestamp (a number under `ts` or a key ending in `_at`) as ISO 8601."""
    if isinstance(value, dict):
        return {k: iso_time(v) if is_time_key(str(k)) and _is_number(v) else iso_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [iso_times(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in `30d`, `12h`, `90m`, `45s` or `2w`; ValueError for anything else (zero and negatives too)."""
    value = text.strip().lower()
    if len(value) < 2 or value[-1] not in _UNITS or not value[:-1].isdigit() or int(value[:-1]) <= 0 \
            or len(value) > 12:
        raise ValueError(f"'{text}' is not a duration like 30d, 12h, 90m or 45s")
    return float(int(value[:-1]) * _UNITS[value[-1]])


def duration_text(seconds: float) -> str:
    """A duration as people say it, for the app and the CLI alike: `12 ms`, `1.4 s`, `42 s`, `3 min 5 s`,
    `2 h 14 min`, `3 d 4 h` (milliseconds under a second; a negative duration reads as zero)."""
    seconds = max(0.0, seconds)
    if round(seconds * 1000) < 1000:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
