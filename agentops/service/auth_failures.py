"""Refused authentications at the HTTP faces, in the ledger without the credential, at most once a minute each.

A refusal is counted under its kind (`api_token`, `hook`), its subject (a known token's or hook's name, never
what the client sent) and its reason. The first of each minute is an `auth.failed` event; the rest of that minute
become one `auth.failed_repeats` event with their count, written with the next minute's first refusal. A flood
therefore adds at most two events a minute per (kind, subject, reason), and the subjects come from the database.
"""

from __future__ import annotations

import hashlib
import time

from agentops.core.ledger import Event
from agentops.core.times import iso_time
from agentops.db import open_store

ACTOR = "system:api"


def record_auth_failure(kind: str, reason: str, *, subject: str = "", client: str = "",
                        detail: str = "") -> None:
    """Count one refused authentication (and tell the ledger, if it is the first of its minute)."""
    now = time.time()
    minute = int(now // 60)
    key = hashlib.sha256(f"{kind}\0{subject}\0{reason}".encode()).hexdigest()
    first = Event(actor=ACTOR, action="auth.failed", ts=now, payload={
        "kind": kind, "subject": subject, "reason": reason, "client": client[:100], "detail": detail[:300],
        "note": "the first of its minute; later ones in that minute are counted in auth.failed_repeats"})

    def summary(kind: str, subject: str, reason: str, at_minute: int, count: int) -> Event:
        return Event(actor=ACTOR, action="auth.failed_repeats", payload={
            "kind": kind, "subject": subject, "reason": reason, "minute": iso_time(at_minute * 60.0),
            "count": count})

    open_store().count_auth_failure(key, minute, kind=kind, subject=subject[:200], reason=reason, now=now,
                                    first=first, summary=summary)


def auth_failure_counts() -> list[tuple[str, str, int]]:
    """(kind, reason, refusals) over the last week, for /metrics."""
    return open_store().auth_failure_counts()
