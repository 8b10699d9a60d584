"""What an approval would do, as a reviewer judges it: a scale as current → proposed replicas, a mail as the
message that would be sent, a ticket as it would be created or changed, an HTTP call as a `curl` line.

Each effect is read from the request's arguments and the embedded backends as they are now; an action with no
reading here is shown by the app as its JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from agentops.backends import kubernetes, prometheus
from agentops.backends.kubernetes import DryRun
from agentops.backends.mail import SENDER
from agentops.db import open_store
from agentops.errors import AgentOpsError
from agentops.governance.addresses import AddressError, parse_address

if TYPE_CHECKING:
    from agentops.db.schema import Approval

DRY_RUN_TIMEOUT = 5.0
"""Seconds a card waits for the Kubernetes API server (the inbox redraws every 3 s)."""


@dataclass(frozen=True)
class ScaleEffect:
    deployment: str
    proposed: int
    current: int | None
    """None when the cluster has no deployment of that name."""
    metrics: dict[str, float] = field(default_factory=dict)
    dry_run: DryRun | None = None
    """With the Kubernetes backend, the API server's answer to the patch run with `dryRun=All` (None: the
    simulated cluster, or a no-op, which changes nothing)."""
    source: str = "simulated"
    """simulated | kubernetes"""
    problem: str | None = None
    """Why the current replicas could not be read (the Kubernetes API server refused or was unreachable)."""

    @property
    def changes_nothing(self) -> bool:
        return self.current == self.proposed


@dataclass(frozen=True)
class Recipient:
    text: str
    problem: str | None = None
    """Why it is not one plain address (the tool would refuse the mail), or None."""


@dataclass(frozen=True)
class Attachment:
    name: str
    size: int | None
    """Bytes, or None when the content cannot be read (an unknown chart, bad base64)."""
    mime: str
    chart: str | None = None
    """The sha256 of a stored chart, for a preview."""


@dataclass(frozen=True)
class EmailEffect:
    sender: str
    to: list[Recipient]
    cc: list[Recipient]
    subject: str
    body: str
    attachments: list[Attachment]


@dataclass(frozen=True)
class TicketEffect:
    creates: bool
    title: str | None
    fields: dict[str, Any]
    """Create: description and priority. Update: the fields that would change, each as (now, after)."""
    ticket_id: int | None = None


@dataclass(frozen=True)
class HttpEffect:
    method: str
    url: str
    curl: str


Effect = ScaleEffect | EmailEffect | TicketEffect | HttpEffect


def effect_of(action: str, args: dict[str, Any]) -> Effect | None:
    """The effect of calling `action` with `args` now; None for an action with no reading (or odd arguments)."""
    try:
        reader = READERS.get(action)
        return reader(args) if reader else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _scale(args: dict[str, Any]) -> ScaleEffect:
    name, proposed = str(args["name"]), int(args["replicas"])
    if kubernetes.configured():
        return _kubernetes_scale(name, proposed)
    deployment = open_store().deployment(name)
    if deployment is None:
        return ScaleEffect(name, proposed, None)
    return ScaleEffect(name, proposed, deployment.replicas,
                       {"cpu_percent": deployment.cpu_percent, "error_rate": deployment.error_rate,
                        "p95_latency_ms": deployment.p95_latency_ms})


def _kubernetes_scale(name: str, proposed: int) -> ScaleEffect:
    """Current replicas from the scale subresource, then the patch as a server-side dry run (nothing changes)."""
    try:
        api = kubernetes.client(timeout=DRY_RUN_TIMEOUT)
        assert api is not None
        with api:
            current = kubernetes.replicas(api, name)
            dry_run = None if current == proposed else kubernetes.dry_run(api, name, proposed)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, KeyError, TypeError) as exc:
        return ScaleEffect(name, proposed, None, source="kubernetes", problem=_read_problem(exc))
    return ScaleEffect(name, proposed, current, _prometheus_metrics(name), dry_run, "kubernetes")


def _read_problem(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the API server answered {exc.response.status_code} for the deployment's scale"
    return f"the deployment's replicas could not be read: {type(exc).__name__}: {exc}"


def _prometheus_metrics(name: str) -> dict[str, float]:
    metrics = prometheus.configured()
    if metrics is None:
        return {}
    try:
        now = metrics.current(name)
    except (AgentOpsError, httpx.HTTPError, httpx.InvalidURL):
        return {}
    return {k: now[k] for k in ("cpu_percent", "error_rate", "p95_latency_ms")}


def _recipients(values: Any) -> list[Recipient]:
    found = []
    for value in values or []:
        try:
            found.append(Recipient(str(parse_address(value))))
        except AddressError as exc:
            found.append(Recipient(str(value), str(exc)))
    return found


def _attachment(item: dict[str, Any]) -> Attachment:
    name = str(item.get("name", "attachment"))
    if "chart" in item:
        from agentops.service.views import chart_image

        png = chart_image(str(item["chart"]))
        return Attachment(name, len(png) if png is not None else None, "image/png", chart=str(item["chart"]))
    try:
        size: int | None = len(base64.b64decode(str(item.get("content_base64", "")), validate=True))
    except (binascii.Error, ValueError):
        size = None
    return Attachment(name, size, str(item.get("mime", "application/octet-stream")))


def _email(args: dict[str, Any]) -> EmailEffect:
    return EmailEffect(SENDER, _recipients(args.get("to")), _recipients(args.get("cc")), str(args["subject"]),
                       str(args.get("body", "")), [_attachment(a) for a in args.get("attachments") or []])


def _create_ticket(args: dict[str, Any]) -> TicketEffect:
    return TicketEffect(True, str(args["title"]), {"description": str(args.get("description", "")),
                                                   "priority": str(args.get("priority", "P3")), "status": "open"})


def _update_ticket(args: dict[str, Any]) -> TicketEffect:
    ticket_id = int(args["ticket_id"])
    ticket = open_store().ticket(ticket_id)
    changes: dict[str, Any] = {}
    for key in ("status", "priority"):
        if args.get(key) is not None:
            changes[key] = (getattr(ticket, key, None), args[key])
    if args.get("comment"):
        changes["comment"] = (None, str(args["comment"]))
    return TicketEffect(False, ticket.title if ticket else None, changes, ticket_id)


def _http(args: dict[str, Any]) -> HttpEffect:
    method, url = str(args.get("method", "GET")).upper(), str(args["url"])
    parts = ["curl", "-X", method, url]
    if args.get("body") is not None:
        parts += ["-H", "Content-Type: application/json", "--data", json.dumps(args["body"], sort_keys=True)]
    return HttpEffect(method, url, " ".join(shlex.quote(p) for p in parts))


READERS: dict[str, Callable[[dict[str, Any]], Effect]] = {
    "scale_deployment": _scale, "send_email": _email, "create_ticket": _create_ticket,
    "update_ticket": _update_ticket, "http_request": _http}


@dataclass(frozen=True)
class Provenance:
    """An argument value (or a piece of it) that came from data the run read, not from a person."""

    path: str
    """`to[0]`, `body`, `attachments[1].name`"""
    value: str
    source: str
    """`list_tickets output`, `the alert that started the run`, `data`"""


def provenance_of(approval: Approval) -> list[Provenance]:
    """The marks recorded when the request was opened (its context, or its `approval.requested` event when the
    context was too large to keep whole); never worked out again from data that may have changed since."""
    context = _json_object(approval.context)
    marks = context.get("provenance")
    if marks is None and context.get("truncated") and approval.run_id:
        rows = open_store().approval_events(approval.run_id, approval.id, "approval.requested")
        marks = _json_object(rows[0][7] if rows else None).get("provenance")
    if not isinstance(marks, dict):
        return []
    return [Provenance(str(path), str(mark.get("value", "")), str(mark.get("source") or "data"))
            for path, mark in marks.items() if isinstance(mark, dict)]


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def size_text(size: int | None) -> str:
    if size is None:
        return "unreadable"
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


CONVERGENT = frozenset({"scale_deployment", "update_ticket"})
"""Actions that set a target's state: two requests with different arguments contradict each other (12 replicas
and 14 cannot both be approved), so their group offers "approve the latest, reject the others"."""


def target_of(action: str, args: dict[str, Any]) -> str | None:
    """What a request acts on, as the effect reader sees it: a deployment, the recipients of a mail, a ticket.
    None: only identical requests are grouped."""
    try:
        if action == "scale_deployment":
            return f"deployment {args['name']}"
        if action == "update_ticket":
            return f"ticket #{int(args['ticket_id'])}"
        if action == "send_email":
            people = sorted({r.text.casefold() for r in _recipients([*(args.get("to") or []),
                                                                      *(args.get("cc") or [])])})
            return "mail to " + ", ".join(people) if people else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return None


def _args(approval: Approval) -> dict[str, Any]:
    return _json_object(approval.args)


def group_key(approval: Approval) -> tuple[str, str]:
    """Requests with one key are one group: the same action on the same target, or identical arguments."""
    target = target_of(approval.action, _args(approval)) if approval.kind == "approve" else None
    return (approval.action, f"target:{target}" if target else f"digest:{approval.args_digest}")


def duplicate_groups(approvals: list[Approval]) -> list[list[Approval]]:
    """Pending requests grouped by action and target (the same deployment, the same recipients, the same
    ticket), or by identical arguments for an action with no target; oldest first in each group, groups in the
    order of their first request."""
    groups: dict[tuple[str, str], list[Approval]] = {}
    for approval in sorted(approvals, key=lambda a: a.created_at):
        groups.setdefault(group_key(approval), []).append(approval)
    return list(groups.values())


@dataclass(frozen=True)
class GroupSummary:
    """What a group's members share and where they differ, and which group decisions are safe."""

    action: str
    target: str | None
    identical: bool
    differing: dict[str, dict[str, Any]]
    """Per request id, the arguments in which the members differ (empty when identical)."""
    latest: str
    """The id of the newest request."""

    @property
    def contradictory(self) -> bool:
        """Approving every member would ask for two different states of one target."""
        return not self.identical and self.action in CONVERGENT

    @property
    def choices(self) -> tuple[str, ...]:
        if self.contradictory:
            return ("approve_latest", "reject_all")
        return ("approve_all", "reject_all")


def summarize_group(group: list[Approval]) -> GroupSummary:
    args = {a.id: _args(a) for a in group}
    keys = sorted({k for values in args.values() for k in values})
    varying = [k for k in keys if len({json.dumps(v.get(k), sort_keys=True) for v in args.values()}) > 1]
    first = group[0]
    return GroupSummary(first.action, target_of(first.action, args[first.id]),
                        len({a.args_digest for a in group}) == 1,
                        {i: {k: v.get(k) for k in varying} for i, v in args.items()} if varying else {},
                        max(group, key=lambda a: (a.created_at, a.id)).id)
