"""Kubernetes' scale subresource over httpx (AGENTOPS_KUBERNETES_URL): read a deployment's replicas, patch them,
or ask the API server what it would do with the patch, changing nothing (a server-side dry run, `dryRun=All`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from agentops.settings import get_settings

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?")
"""A deployment name (an RFC 1123 subdomain without dots): nothing in it can leave its path segment."""
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


@dataclass(frozen=True)
class DryRun:
    """What the API server said of the patch, run with `dryRun=All` (admission webhooks and quotas included)."""

    outcome: Literal["accepted", "refused", "unavailable"]
    """refused: the server answered with an error status; unavailable: it could not be asked."""
    message: str
    replicas: int | None = None
    """The replicas the server would set (accepted only)."""


def configured() -> bool:
    return bool(get_settings().kubernetes_url)


def client(timeout: float = 30) -> httpx.Client | None:
    """A client of the configured API server, or None when the simulated cluster is in use."""
    s = get_settings()
    if not s.kubernetes_url:
        return None
    headers = {"Authorization": f"Bearer {s.kubernetes_token.get_secret_value()}"} if s.kubernetes_token else {}
    return httpx.Client(base_url=s.kubernetes_url.rstrip("/"), headers=headers, timeout=timeout)


def scale_path(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a Kubernetes deployment name")
    return f"/apis/apps/v1/namespaces/{get_settings().kubernetes_namespace}/deployments/{name}/scale"


def replicas(api: httpx.Client, name: str) -> int:
    """The deployment's desired replicas (spec.replicas of its scale subresource)."""
    response = api.get(scale_path(name))
    response.raise_for_status()
    return int(response.json()["spec"]["replicas"])


def patch_replicas(api: httpx.Client, name: str, count: int) -> None:
    response = api.patch(scale_path(name), json={"spec": {"replicas": count}}, headers=MERGE_PATCH)
    response.raise_for_status()


def dry_run(api: httpx.Client, name: str, count: int) -> DryRun:
    """The patch as the API server would take it, with `dryRun=All`: nothing is changed or stored."""
    try:
        response = api.patch(scale_path(name), params={"dryRun": "All"}, json={"spec": {"replicas": count}},
                             headers=MERGE_PATCH)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return DryRun("unavailable", f"the API server could not be asked: {type(exc).__name__}: {exc}")
    body = _json(response)
    if response.is_success:
        would = (body.get("spec") or {}).get("replicas") if isinstance(body, dict) else None
        return DryRun("accepted", "the API server would accept the patch",
                      int(would) if isinstance(would, int) else None)
    return DryRun("refused", _status_text(response.status_code, body))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _status_text(code: int, body: Any) -> str:
    """A Kubernetes Status (`{"kind": "Status", "reason": ..., "message": ...}`) as one line."""
    if isinstance(body, dict):
        head = f"{code} {body['reason']}" if body.get("reason") else str(code)
        return f"{head}: {body['message']}" if body.get("message") else head
    return f"{code} (no Status in the reply)"
