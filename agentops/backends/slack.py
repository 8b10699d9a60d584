"""A Slack-compatible incoming webhook: one JSON message POSTed to a secret URL, screened by the host allowlist.

The URL (AGENTOPS_SLACK_WEBHOOK_URL) is a secret: its path is the credential. It is parsed once
(agentops.governance.urls), its host and port must be on the allowlist the caller passes (an empty one refuses
it: fail closed), the rebuilt URL is what is sent, redirects are not followed, and no outcome this module reports
holds the URL or its path. Each message carries its idempotency id in the `Idempotency-Key` header (and the caller
puts it in the payload), so a receiver can count a repeat: delivery is at least once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from agentops.governance.urls import UrlError, parse_url, screen_url

SETTING = "AGENTOPS_SLACK_WEBHOOK_URL"


@dataclass(frozen=True)
class SendOutcome:
    delivered: bool
    detail: str
    """The receiver's reply (delivered) or the reason it was not; never the URL."""
    retryable: bool = False
    refused: bool = False
    """Screening refused the URL before any request was made."""
    uncertain: bool = False
    """The request went out and no reply came back: the message may have arrived."""


def post(url: str | None, allowed_hosts: Iterable[str], payload: dict[str, Any], *, idempotency_id: str,
         timeout: float) -> SendOutcome:
    """POST `payload` to the webhook once, if the allowlist names its host and port."""
    if not url:
        return SendOutcome(False, f"{SETTING} is not set", refused=True)
    hosts = list(allowed_hosts)
    try:
        target = screen_url(url, hosts)
    except UrlError:
        return SendOutcome(False, f"{SETTING} is not one plain http(s) URL", refused=True)
    except PermissionError:
        return SendOutcome(False, f"{SETTING} names host '{_host(url)}', which is not in the policy's "
                                     f"notifications.webhook_hosts ({', '.join(hosts) or 'empty'})", refused=True)
    headers = {"Idempotency-Key": idempotency_id, "X-Agentops-Notification": idempotency_id}
    sent = False
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            request = client.build_request("POST", target.url, json=payload, headers=headers)
            sent = True
            response = client.send(request)
    except httpx.TimeoutException as exc:
        if sent and not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return SendOutcome(False, f"no reply within {timeout:g} s ({type(exc).__name__}): the message may have "
                                         "arrived", retryable=True, uncertain=True)
        return SendOutcome(False, f"{type(exc).__name__}: the webhook's host did not answer", retryable=True)
    except httpx.HTTPError as exc:
        return SendOutcome(False, _scrub(f"{type(exc).__name__}: {exc}", url, target.path), retryable=True)
    reply = _scrub(f"{response.status_code} {response.text[:200]}".strip(), url, target.path)
    if 200 <= response.status_code < 300:
        return SendOutcome(True, reply)
    if 300 <= response.status_code < 400:
        return SendOutcome(False, f"{response.status_code}: the webhook redirected, and redirects are not followed")
    return SendOutcome(False, reply, retryable=response.status_code == 429 or response.status_code >= 500)


def _host(url: str) -> str:
    try:
        return parse_url(url).authority
    except UrlError:
        return "?"


def _scrub(text: str, url: str, path: str) -> str:
    for secret in (url, path):
        if len(secret) > 1:
            text = text.replace(secret, "[REDACTED]")
    return text
