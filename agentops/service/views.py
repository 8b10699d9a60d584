"""Read models for the app: what a page shows, shaped from the store. No writes happen here."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentops.core import serialization
from agentops.db import open_store
from agentops.db.records import StepRecord
from agentops.engine.project import project_root
from agentops.errors import SerializationError
from agentops.governance.mcp_pins import pinned_definition
from agentops.service.effects import Effect, ScaleEffect, duplicate_groups, effect_of
from agentops.service.formatting import approval_title, plain_reason

if TYPE_CHECKING:
    from agentops.db.schema import Approval


@dataclass(frozen=True)
class ApprovalView:
    """A pending or decided request as the inbox renders it."""

    approval: Approval
    args: dict[str, Any]
    rule: str | None
    verdict_reason: str | None
    conversation: list[dict[str, str]]
    decision: dict[str, Any] | None
    effect: Effect | None = None
    """What approving it would do now (agentops.service.effects); None shows the arguments as JSON."""
    alert_resolved_at: float | None = None
    """When Alertmanager said the alert behind the request's run resolved while the request was waiting."""
    mcp: dict[str, Any] | None = None
    """For an MCP tool's request: its server, tool, definition digest and the server's (untrusted) description and
    annotations; None for a local tool."""

    @property
    def title(self) -> str:
        """The request in words: `Send an email to ops@example.com`, `Scale web-app: 6 → 12`."""
        current = self.effect.current if isinstance(self.effect, ScaleEffect) else None
        return approval_title(self.approval.action, self.args, current)

    @property
    def reason(self) -> str | None:
        return plain_reason(self.approval.reason, self.approval.action)

    @property
    def expires_in(self) -> float | None:
        expires = self.approval.expires_at
        return None if expires is None else expires - time.time()


def approval_view(approval: Approval) -> ApprovalView:
    verdict = serialization.loads(approval.verdict, f"approval {approval.id} verdict") if approval.verdict else {}
    context = serialization.loads(approval.context, f"approval {approval.id} context") if approval.context else {}
    args = serialization.loads(approval.args, f"approval {approval.id} arguments") or {}
    decision = serialization.loads(approval.decision, f"approval {approval.id} decision") if approval.decision else None
    return ApprovalView(approval=approval, args=args,
                        rule=(verdict or {}).get("rule"), verdict_reason=(verdict or {}).get("reason"),
                        conversation=conversation_lines((context or {}).get("messages", [])),
                        decision=decision, effect=effect_of(approval.action, args),
                        alert_resolved_at=alert_resolved_at(approval), mcp=mcp_call_of(approval, args, verdict))


MCP_HINTS = {"destructiveHint": "destructive", "readOnlyHint": "read-only", "idempotentHint": "idempotent",
             "openWorldHint": "reaches the outside world"}


def mcp_hints(mcp: dict[str, Any]) -> list[str]:
    """The annotations a server claims for its tool, in words (`destructive`, `read-only`)."""
    annotations = mcp.get("annotations") or {}
    return [label for name, label in MCP_HINTS.items() if isinstance(annotations, dict)
            and annotations.get(name) is True]


def mcp_call_of(approval: Approval, args: dict[str, Any], verdict: Any) -> dict[str, Any] | None:
    """What the screening recorded of an MCP tool (server, tool, digest, the server's description, annotations),
    or None for a local tool. A `respond` request (a server's question) names its server by its action, and its
    description and annotations come from the trusted pin of the definition the call was screened on."""
    mcp = verdict.get("mcp") if isinstance(verdict, dict) else None
    if isinstance(mcp, dict):
        return mcp
    call = args.get("call")
    if approval.kind != "respond" or not isinstance(call, dict) or "." not in approval.action:
        return None
    server, _, tool = approval.action.partition(".")
    digest = str(call.get("_mcp_definition") or "")
    pinned = pinned_definition(open_store(), server, tool, digest) if digest else None
    shown: dict[str, Any] = {"server": server, "tool": tool, "digest": digest}
    if pinned is not None:
        shown.update(description_untrusted=pinned.get("description"), annotations=pinned.get("annotations"))
    return shown


def alert_resolved_at(approval: Approval) -> float | None:
    """The last time the alert that started the request's run was resolved while the request waited (None: never)."""
    if approval.run_id is None:
        return None
    rows = open_store().approval_events(approval.run_id, approval.id, "approval.alert_resolved")
    return float(rows[-1][1]) if rows else None


def pending_groups(approvals: list[Approval]) -> list[list[ApprovalView]]:
    """Pending requests as the inbox shows them: identical requests (same action, same arguments) together."""
    return [[approval_view(a) for a in group] for group in duplicate_groups(approvals)]


def conversation_lines(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """LangChain message dicts as (role, text) lines; tool calls shown as calls."""
    lines = []
    for message in messages:
        data = message.get("data", message)
        role = message.get("type", data.get("type", "?"))
        text = data.get("content") or ""
        if not isinstance(text, str):
            text = json.dumps(text)
        calls = data.get("tool_calls") or []
        if calls:
            text = (text + "\n" if text else "") + "\n".join(
                f"→ {c.get('name')}({json.dumps(c.get('args', {}), sort_keys=True)})" for c in calls)
        lines.append({"role": role, "text": text})
    return lines


def step_facts(step: StepRecord) -> dict[str, Any]:
    """A step's recorded facts, decoded: inputs, output, meta (model, usage, verdict...)."""
    return {"inputs": decoded(step.inputs), "output": decoded(step.output), "meta": decoded(step.meta) or {}}


def decoded(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return serialization.loads(text)
    except (SerializationError, ValueError, TypeError):
        return text


def chart_image(sha256: str) -> bytes | None:
    """A stored chart (charts are kept once, by content hash, under .agentops/charts/)."""
    from agentops.data.query import load_chart  # duckdb stays off the CLI's cold start

    return load_chart(sha256, project_root())


def attachments(mail: Any) -> list[dict[str, Any]]:
    return decoded(mail.attachments) or [] if mail.attachments else []


def outbox(limit: int = 100) -> list[Any]:
    return open_store().outbox_list(limit=limit)


def tickets() -> list[Any]:
    return open_store().tickets_list()


def cluster() -> dict[str, Any]:
    store = open_store()
    return {"deployments": store.deployments(), "scale_events": store.scale_events()}
