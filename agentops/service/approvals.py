"""Approvals for every face: list, look up by id or prefix, decide one, decide a group."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agentops.db import open_store
from agentops.errors import AgentOpsError, ApprovalError, NotFoundError
from agentops.governance import approvals
from agentops.service import effects

if TYPE_CHECKING:
    from agentops.db.schema import Approval


def list_approvals(status: str | None = "pending", limit: int = 200) -> list[Approval]:
    return open_store().list_approvals(status=status if status != "all" else None, limit=limit)


def get_approval(approval_id: str) -> Approval:
    st = open_store()
    appr = st.get_approval(approval_id)
    if appr is None and len(approval_id) >= 6:
        matches = [a for a in st.list_approvals(status=None, limit=100_000) if a.id.startswith(approval_id)]
        appr = matches[0] if len(matches) == 1 else None
    if appr is None:
        raise NotFoundError(f"no approval with id '{approval_id}'")
    return appr


def decide(approval_id: str, kind: str, *, user: str | None, args_digest: str | None = None,
           edited_args: dict[str, Any] | None = None, message: str | None = None,
           response: dict[str, Any] | None = None) -> approvals.Decision | None:
    """One decision by `user` (the CLI's --as, the app's logged-in user); every check is in approvals.decide."""
    appr = get_approval(approval_id)
    return approvals.decide(open_store(), appr.id, kind, user=user, args_digest=args_digest, edited_args=edited_args,
                            message=message, response=response)


GroupChoice = Literal["approve_all", "reject_all", "approve_latest"]


@dataclass(frozen=True)
class GroupOutcome:
    """One group decision: each request decided on its own (its own digest, its own `approval.decided`)."""

    decided: list[tuple[str, str]] = field(default_factory=list)
    """(approval id, decision kind) for each request decided."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(approval id, why) for each request the decision was refused on; the others stand."""


def decide_group(members: list[tuple[str, str]], choice: GroupChoice, *, user: str | None,
                 latest: str | None = None, message: str | None = None) -> GroupOutcome:
    """Decide the requests of a group as the reviewer saw them: `members` are (id, args digest) pairs as drawn,
    so a request that joined the group since is left pending. Approving all of a group whose members ask for
    different states of one target (scale web-app to 12 and to 14) is refused: `approve_latest` approves
    `latest`, the newest as drawn, and only then rejects the others; it is refused when a newer request for the
    target has arrived since. A reviewer's own superseded requests are withdrawn (maker-checker guards approvals,
    not taking one's own request back)."""
    group = _drawn_group(members)
    digests = dict(members)
    summary = effects.summarize_group(group)
    if choice not in summary.choices:
        if choice == "approve_all" and summary.contradictory:
            raise ApprovalError(f"these {len(group)} requests ask for different states of {summary.target} "
                                f"({', '.join(sorted({k for d in summary.differing.values() for k in d}))}); "
                                "approve the latest and reject the others, or decide them one by one")
        raise ApprovalError(f"unknown group decision '{choice}' (choose one of: {', '.join(summary.choices)})")
    outcome = GroupOutcome()
    withdrawal = False
    if choice == "approve_latest":
        newest = _checked_latest(group, summary.latest, latest)
        if not _decide_one(outcome, newest, "approve", user, digests[newest.id], None):
            return outcome
        chosen = ", ".join(f"{k}={json.dumps(v)}" for k, v in summary.differing.get(newest.id, {}).items())
        message = message or f"superseded by the later request {newest.id[:12]} ({chosen}) for {summary.target}"
        rest, kind, withdrawal = [a for a in group if a.id != newest.id], "reject", True
    else:
        rest, kind = group, ("approve" if choice == "approve_all" else "reject")
        if kind == "reject":
            message = message or "rejected with its group"
    for appr in rest:
        _decide_one(outcome, appr, kind, user, digests[appr.id], message if kind == "reject" else None,
                    withdrawal=withdrawal)
    return outcome


def _drawn_group(members: list[tuple[str, str]]) -> list[Approval]:
    """The members' requests, refused unless they are one group, each named once with the digest it was drawn
    with."""
    if not members:
        raise ApprovalError("a group decision needs the requests it decides, each with the digest it was "
                            "reviewed on; none were given")
    ids = [approval_id for approval_id, _ in members]
    unbound = [approval_id for approval_id, digest in members if not isinstance(digest, str) or not digest]
    if unbound or len(set(ids)) != len(ids):
        why = f"no digest for {', '.join(i[:12] for i in unbound)}" if unbound else "a request is named twice"
        raise ApprovalError(f"a group decision needs each request once, with the digest it was reviewed on: {why}; "
                            "nothing was decided")
    group = [get_approval(approval_id) for approval_id in ids]
    keys = {effects.group_key(a) for a in group}
    if len(keys) != 1:
        raise ApprovalError(f"these {len(group)} requests are not one group (they differ in action or target: "
                            f"{'; '.join(sorted(_group_name(key) for key in keys))}); decide them one by one; "
                            "nothing was decided")
    return group


def _group_name(key: tuple[str, str]) -> str:
    action, on = key
    return f"{action} on {on.removeprefix('target:')}" if on.startswith("target:") else f"{action} {on[:19]}"


def _checked_latest(group: list[Approval], newest: str, latest: str | None) -> Approval:
    """The request the reviewer saw as the latest, refused unless it still is the latest for its target."""
    if latest is None:
        raise ApprovalError("approving the latest needs the id of the request shown as the latest; "
                            "nothing was decided")
    if latest != newest:
        raise ApprovalError(f"request {latest[:12]} is not the latest of these requests ({newest[:12]} is); "
                            "nothing was decided")
    chosen = next(a for a in group if a.id == newest)
    key, drawn = effects.group_key(chosen), {a.id for a in group}
    later = [a for a in open_store().list_approvals(status="pending", limit=100_000)
             if a.id not in drawn and (a.created_at, a.id) > (chosen.created_at, chosen.id)
             and effects.group_key(a) == key]
    if later:
        raise ApprovalError(f"a later request {later[0].id[:12]} for the same target arrived after these were "
                            f"shown, so {newest[:12]} is no longer the latest; nothing was decided; look again")
    return chosen


def _decide_one(outcome: GroupOutcome, appr: Approval, kind: str, user: str | None, digest: str,
                message: str | None, *, withdrawal: bool = False) -> bool:
    try:
        approvals.decide(open_store(), appr.id, kind, user=user, args_digest=digest, message=message,
                         withdrawal=withdrawal)
    except AgentOpsError as exc:
        outcome.failed.append((appr.id, str(exc)))
        return False
    outcome.decided.append((appr.id, kind))
    return True
