"""Links into the app, for messages that leave agentops (notifications)."""

from __future__ import annotations

from agentops.settings import get_settings


def approval_url(request_id: str) -> str:
    """The app's page for one approval request. Opening it never decides anything: that needs a logged-in approver."""
    base = get_settings().app_url.rstrip("/")
    return f"{base}/approvals?request={request_id}"
