"""http_request: httpx with a host allowlist from the policy (enforced here as well as by the policy)."""

from __future__ import annotations

import os
from typing import Any, Literal
from urllib.parse import urlparse

import httpx
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agentops.engine.toolkit import idempotency_key

MAX_BODY = 20_000


class HttpArgs(BaseModel):
    url: str = Field(description="Absolute http(s) URL on an allowed host.")
    method: Literal["GET", "POST"] = "GET"
    body: dict[str, Any] | None = None


def allowed_hosts() -> list[str]:
    from agentops.engine.project import project_root
    from agentops.governance.screening import project_policy

    env = os.environ.get("AGENTOPS_HTTP_ALLOWED_HOSTS")
    if env:
        return [h.strip() for h in env.split(",") if h.strip()]
    rule = project_policy(project_root()).rules.get("http_request")
    constraint = rule.constraints.get("url") if rule else None
    return list(constraint.hosts or []) if constraint else []


def http_request(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call an allowlisted HTTP endpoint; redirects are not followed. A method that is not GET or HEAD carries an
    Idempotency-Key header from the step's idempotency key: the same on every retry and resume of the step."""
    host = urlparse(url).hostname or ""
    hosts = allowed_hosts()
    if host not in hosts:
        raise PermissionError(f"host '{host}' is not in the allowlist ({', '.join(hosts) or 'empty'})")
    headers = {} if method.upper() in ("GET", "HEAD") else {"Idempotency-Key": idempotency_key()}
    with httpx.Client(timeout=15, follow_redirects=False) as client:
        response = client.request(method, url, json=body, headers=headers)
    text = response.text
    return {"status_code": response.status_code, "body": text[:MAX_BODY], "truncated": len(text) > MAX_BODY}


TOOLS = [StructuredTool.from_function(func=http_request, name="http_request", args_schema=HttpArgs,
                                      metadata={"side_effect": True},
                                      description="Make an HTTP GET or POST to an allowlisted internal host.")]
