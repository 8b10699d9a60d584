"""Links into the app, for faces that answer with somewhere a person can act (an MCP tool's result)."""

from __future__ import annotations

from agentops.settings import get_settings


def approval_url(request_id: str) -> str:
    """Where a person decides the approval `request_id` in the app."""
    return f"{get_settings().app_url.rstrip('/')}/approvals?request={request_id}"
