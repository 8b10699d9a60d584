"""Which notifications a request for approval owes its approvers, from the tool's policy rule.

A rule with `notify: [slack, email]` tells `notify_to` at once, reminds them `remind_before` its expiry, and, with
`escalate_after` and `escalate_to`, tells the second group when nobody decided in that time. Each is one row per
channel, written with the request in its transaction (agentops.db.notifications) and delivered by the periodic
work (agentops.service.notifications). Being told of a request gives nobody the right to decide it: deciding
needs the approver or admin role, as every decision does (agentops.governance.approvals).
"""

from __future__ import annotations

import uuid
from typing import Any

from agentops.core import serialization
from agentops.governance.policy import Policy, ToolRule

REQUESTED, REMINDER, ESCALATION = "requested", "reminder", "escalation"


def members(policy: Policy, names: list[str]) -> list[str]:
    """Groups expanded into their members, in order, each once."""
    groups = policy.data.notifications.groups
    out: list[str] = []
    for name in names:
        for member in groups.get(name, [name]):
            if member not in out:
                out.append(member)
    return out


def planned(policy: Policy, action: str, *, approval_id: str, run_id: str | None, now: float,
            expires_at: float | None) -> list[dict[str, Any]]:
    """The notification rows a request for `action` opened at `now` owes (none when its rule names no channel)."""
    rule: ToolRule | None = policy.rules.get(action)
    if rule is None or not rule.notify:
        return []
    first = members(policy, rule.notify_to)
    second = members(policy, rule.escalate_to)
    escalate_at = now + rule.escalate_after if rule.escalate_after else None
    if escalate_at is not None and expires_at is not None and escalate_at >= expires_at:
        escalate_at = None  # expired (failed closed) before anyone would be escalated to
    due: list[tuple[str, float, list[str]]] = [(REQUESTED, now, first)]
    if rule.remind_before and expires_at is not None and expires_at - rule.remind_before > now:
        remind_at = expires_at - rule.remind_before
        escalated = escalate_at is not None and escalate_at <= remind_at
        due.append((REMINDER, remind_at, first + [m for m in second if m not in first] if escalated else first))
    if escalate_at is not None:
        due.append((ESCALATION, escalate_at, second))
    return [{"id": uuid.uuid4().hex, "approval_id": approval_id, "run_id": run_id, "kind": kind, "channel": channel,
             "recipients": serialization.dumps(who), "due_at": at, "next_at": at, "status": "queued", "attempts": 0,
             "lease_until": None, "last_error": None, "created_at": now, "updated_at": now, "delivered_at": None}
            for kind, at, who in due for channel in rule.notify]
