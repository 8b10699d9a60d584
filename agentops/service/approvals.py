"""Approvals for every face: list, look up by id or prefix, decide."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentops.db import open_store
from agentops.errors import NotFoundError
from agentops.governance import approvals

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
