"""http_request: httpx with a host allowlist from the policy (enforced here as well as by the policy).

The URL is parsed once (agentops.governance.urls) and the rebuilt URL is what is sent; redirects are followed
here, at most MAX_REDIRECTS, and every hop is screened against the allowlist again before it is requested.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agentops.engine.toolkit import check_fence, idempotency_key
from agentops.governance.urls import Target, redirect_target, screen_url
from agentops.settings import get_settings

MAX_BODY = 20_000
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class HttpArgs(BaseModel):
    url: str = Field(description="Absolute http(s) URL on an allowed host.")
    method: Literal["GET", "POST"] = "GET"
    body: dict[str, Any] | None = None


def allowed_hosts() -> list[str]:
    from agentops.engine.project import project_root
    from agentops.governance.screening import project_policy

    configured = get_settings().http_allowed_hosts
    if configured:
        return [h.strip() for h in configured.split(",") if h.strip()]
    rule = project_policy(project_root()).rules.get("http_request")
    constraint = rule.constraints.get("url") if rule else None
    return list(constraint.hosts or []) if constraint else []


def _send(client: httpx.Client, method: str, target: Target, body: dict[str, Any] | None, hosts: list[str],
          **request: Any) -> tuple[httpx.Response, list[str]]:
    """The final response and the URLs of the redirects followed to it. A hop to a host or port outside the
    allowlist is refused before it is requested (PermissionError naming the hop)."""
    hops = [target.url]
    response = client.request(method, target.url, json=body, **request)
    while response.status_code in REDIRECTS and "location" in response.headers:
        location = response.headers["location"]
        if len(hops) > MAX_REDIRECTS:
            raise PermissionError(f"more than {MAX_REDIRECTS} redirects (followed: {' -> '.join(hops)})")
        try:
            target = redirect_target(target, location, hosts)
        except (ValueError, PermissionError) as exc:
            raise PermissionError(f"redirect from {hops[-1]} to {location[:300]!r} refused: {exc}") from None
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            method, body = "GET", None
        hops.append(target.url)
        response = client.request(method, target.url, json=body, **request)
    return response, hops[1:]


def http_request(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call an allowlisted HTTP endpoint, following allowlisted redirects only. A method that is not GET or HEAD
    carries an Idempotency-Key header from the step's idempotency key: the same on every retry and resume of the
    step, and on every redirect hop."""
    hosts = allowed_hosts()
    target = screen_url(url, hosts)
    headers = {} if method.upper() in ("GET", "HEAD") else {"Idempotency-Key": idempotency_key()}
    check_fence()
    with httpx.Client(timeout=15, follow_redirects=False) as client:
        response, redirects = _send(client, method, target, body, hosts, headers=headers)
    text = response.text
    return {"status_code": response.status_code, "body": text[:MAX_BODY], "truncated": len(text) > MAX_BODY,
            "redirects": redirects}


TOOLS = [StructuredTool.from_function(func=http_request, name="http_request", args_schema=HttpArgs,
                                      metadata={"side_effect": True},
                                      description="Make an HTTP GET or POST to an allowlisted internal host.")]
