"""Times as shown: each names its zone, a local time is followed by the same instant in UTC, JSON is ISO 8601."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from agentops.core.times import format_time, iso_time, iso_times


def at(text: str, zone: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(("local", "zone", "shown"), [
    ("2026-12-03 09:00", "Europe/Berlin", "2026-12-03 09:00:00 Europe/Berlin / 08:00:00 UTC"),
    ("2026-07-03 09:00", "Europe/Berlin", "2026-07-03 09:00:00 Europe/Berlin / 07:00:00 UTC"),
    ("2026-12-03 00:30", "Europe/Berlin", "2026-12-03 00:30:00 Europe/Berlin / 2026-12-02 23:30:00 UTC"),
    ("2026-12-03 20:00", "America/New_York", "2026-12-03 20:00:00 America/New_York / 2026-12-04 01:00:00 UTC"),
    ("2026-12-03 08:00", "UTC", "2026-12-03 08:00:00 UTC"),
])
def test_a_local_time_names_its_zone_and_the_utc_instant(local: str, zone: str, shown: str) -> None:
    assert format_time(at(local, zone), zone) == shown


def test_no_zone_or_an_unknown_one_is_utc_and_labelled_so() -> None:
    ts = at("2026-12-03 08:00", "UTC")
    assert format_time(ts) == format_time(ts, "Not/AZone") == "2026-12-03 08:00:00 UTC"
    assert format_time(None) == "-"


def test_json_times_are_iso_8601_with_offset_and_other_numbers_stay() -> None:
    ts = at("2026-12-03 08:00:00.250", "UTC")
    doc = iso_times({"created_at": ts, "ts": ts, "attempts": 3, "ended_at": None, "flag_at": True,
                     "steps": [{"started_at": ts, "duration_ms": 1.5}]})
    assert doc == {"created_at": "2026-12-03T08:00:00.250000+00:00", "ts": "2026-12-03T08:00:00.250000+00:00",
                   "attempts": 3, "ended_at": None, "flag_at": True,
                   "steps": [{"started_at": "2026-12-03T08:00:00.250000+00:00", "duration_ms": 1.5}]}
    assert datetime.fromisoformat(iso_time(ts) or "") == datetime.fromtimestamp(ts, UTC)
