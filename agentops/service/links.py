"""Links into the app that open one approval or one run (after a login, when there is none). A link only
opens the page: deciding is always a person's click on the card."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from agentops.settings import get_settings


def page_url(page: str, **query: str) -> str:
    """AGENTOPS_APP_URL joined with one of the app's pages and its query."""
    base = get_settings().app_url.rstrip("/")
    tail = f"?{urlencode(query, quote_via=quote)}" if query else ""
    return f"{base}/{page.strip('/')}{tail}"


def approval_url(request_id: str) -> str:
    return page_url("approvals", request=request_id)


def run_url(run_id: str) -> str:
    return page_url("runs", run=run_id)
