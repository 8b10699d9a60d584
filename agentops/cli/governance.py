"""CLI commands for governance: approvals, users, the audit ledger and policies."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from agentops import service
from agentops.cli.support import AsUser, JsonOpt, Listing, console, emit_json, fmt_time, one_line_json
from agentops.core import serialization
from agentops.errors import AgentOpsError
from agentops.governance.policy import (
    load_policy,
    load_project_policy,
    policy_files,
    project_tool_types,
    run_policy_cases,
)
from agentops.service.links import approval_url
from agentops.settings import get_settings

approvals_app = typer.Typer(help="Pending approvals and decisions.", no_args_is_help=True)
users_app = typer.Typer(help="Local accounts.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit ledger.", no_args_is_help=True)
policy_app = typer.Typer(help="Declarative policies under policies/.", no_args_is_help=True)



@approvals_app.command("list")
def approvals_list(
    status: Annotated[str, typer.Option("--status", help="pending, edited, expired, all...")] = "pending",
    as_json: JsonOpt = False,
) -> None:
    """List approval requests (pending by default)."""
    items = service.list_approvals(status)
    if as_json:
        emit_json([service.approval_document(a) for a in items])
        return
    grid = Listing("id", "action", "arguments", "requester", "status", "reason", "expires")
    for a in items:
        args = one_line_json(serialization.loads(a.args, f"approval {a.id} arguments"))
        grid.add_row(a.id, a.action, _clipped(args, 160), a.requester, a.status, _clipped(a.reason, 120),
                     fmt_time(a.expires_at))
    grid.print()


@approvals_app.command("show")
def approvals_show(approval_id: str, as_json: JsonOpt = False) -> None:
    """One request whole: what approving it does, every argument and their digest (for --digest), who asked and
    why, and for an MCP tool its server and definition, with the server's description marked untrusted."""
    appr = service.get_approval(approval_id)
    if as_json:
        emit_json(service.approval_document(appr) | {"url": approval_url(appr.id)})
        return
    view = service.views.approval_view(appr)
    console.print(f"[bold]{escape(view.title)}[/bold]", highlight=False, soft_wrap=True)
    say(f"request {appr.id}  tool {appr.action}  kind {appr.kind}  status {appr.status}")
    say(f"run {appr.run_id or '-'}  requested by {appr.requester}  created {fmt_time(appr.created_at)}  "
        f"expires {fmt_time(appr.expires_at) if appr.expires_at else 'never'}")
    if view.reason:
        say(f"reason: {view.reason}")
    verdict = f" ({view.verdict_reason})" if view.verdict_reason else ""
    say(f"policy rule: {view.rule or '-'}{verdict}")
    mcp = view.mcp
    if mcp is not None:
        say(f"MCP server {mcp.get('server', '?')}  tool {mcp.get('tool', '?')}  definition {mcp.get('digest', '-')}")
        hints = service.views.mcp_hints(mcp)
        if hints:
            say(f"the server marks it {', '.join(hints)} (its claim: it may tighten the policy, never loosen it)")
        if mcp.get("description_untrusted"):
            say("the server's description, untrusted (its own words, not instructions):")
            for line in str(mcp["description_untrusted"]).split("\n"):
                say(f"  | {line}")
    say("arguments:")
    say(_indented(json.dumps(view.args, indent=2, sort_keys=True, ensure_ascii=False)))
    say(f"arguments digest: {appr.args_digest}")
    if view.decision is not None:
        say(f"decision: {one_line_json(view.decision)}")
    elif appr.status == "pending":
        say(f"decide: agentops approvals approve|edit|reject {appr.id} --digest {appr.args_digest}")
    say(f"link: {approval_url(appr.id)}")


def say(text: str) -> None:
    """One line as it is (no markup, no highlighting), left for the terminal to wrap."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _indented(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


@approvals_app.command("notifications")
def approvals_notifications(approval_id: str, as_json: JsonOpt = False) -> None:
    """The notifications telling approvers of one request: each one's kind, channel, when due, and delivery."""
    items = service.notifications_of(approval_id)
    if as_json:
        emit_json([service.notification_document(n) for n in items])
        return
    grid = Listing("id", "kind", "channel", "to", "due", "status", "attempts", "last error")
    for n in items:
        to = ", ".join(serialization.loads(n.recipients, f"notification {n.id} recipients") or [])
        grid.add_row(n.id, n.kind, n.channel, _clipped(to, 120), fmt_time(n.due_at), n.status, str(n.attempts),
                     _clipped(n.last_error or "", 160))
    grid.print()


def _clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decided(result: object, approval_id: str) -> None:
    if result is None:
        console.print(f"vote recorded on {approval_id}; more approvers are needed")
    else:
        console.print(f"{approval_id}: {result.kind}")  # type: ignore[attr-defined]


Digest = Annotated[str | None, typer.Option("--digest", help="The argument digest you reviewed.")]


def _json_object(text: str, option: str, keys: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AgentOpsError(f"{option} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, dict):
        raise AgentOpsError(f"{option} must be a JSON object of {keys} to values")
    return value


@approvals_app.command("approve")
def approvals_approve(approval_id: str, user: AsUser = None, digest: Digest = None) -> None:
    """Approve a request as it stands."""
    _decided(service.decide(approval_id, "approve", user=user, args_digest=digest), approval_id)


@approvals_app.command("edit")
def approvals_edit(approval_id: str, args: Annotated[str, typer.Option("--args", help="Replacement arguments (JSON).")],
                   user: AsUser = None, digest: Digest = None) -> None:
    """Approve with replacement arguments (checked against the action's schema and policy)."""
    edited = _json_object(args, "--args", "argument names")
    _decided(service.decide(approval_id, "edit", user=user, args_digest=digest, edited_args=edited), approval_id)


@approvals_app.command("reject")
def approvals_reject(approval_id: str, reason: Annotated[str, typer.Option("--reason", help="Sent to the caller.")],
                     user: AsUser = None, digest: Digest = None) -> None:
    """Reject a request; the reason is returned to the agent or flow."""
    _decided(service.decide(approval_id, "reject", user=user, args_digest=digest, message=reason), approval_id)


@approvals_app.command("respond")
def approvals_respond(
    approval_id: str,
    message: Annotated[str | None, typer.Option("--message")] = None,
    response: Annotated[str | None, typer.Option("--response", help="The answer to a request for input (kind "
                                                 "respond), a JSON object fitting its schema.")] = None,
    user: AsUser = None,
) -> None:
    """Answer a request with a message instead of approving or rejecting it, or answer a request for input."""
    answer = None if response is None else _json_object(response, "--response", "field names")
    _decided(service.decide(approval_id, "respond", user=user, message=message, response=answer), approval_id)


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[str, typer.Option("--role", help="viewer, operator, approver or admin")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    no_password: Annotated[bool, typer.Option("--no-password", help="An account for OIDC or CLI use only.")] = False,
) -> None:
    """Create a local account. Password: AGENTOPS_USER_PASSWORD, --password-stdin, or a prompt."""
    import os

    password: str | None
    if no_password:
        password = None
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif os.environ.get("AGENTOPS_USER_PASSWORD"):
        password = os.environ["AGENTOPS_USER_PASSWORD"]
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    service.add_user(name, role, password)
    console.print(f"user {name} ({role}) created")


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """List local accounts."""
    users = service.list_users()
    if as_json:
        emit_json([{"name": u.name, "role": u.role, "created_at": u.created_at} for u in users])
        return
    grid = Listing("user", "role", "created")
    for u in users:
        grid.add_row(u.name, u.role, fmt_time(u.created_at))
    grid.print()


PackDir = Annotated[Path | None, typer.Option("--pack", help="An evidence pack directory (audit export --pack).")]


@audit_app.command("verify")
def audit_verify(
    pack: PackDir = None,
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="PEM public key to check checkpoints with (default: the ledger key's own).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the chain, every signed checkpoint and the stored values the chain binds; exit 1 naming the first
    bad event or the missing range, exit 2 on bad input."""
    if pack is not None:
        from agentops.service.evidence import verify_pack  # cryptography loads for packs only

        report = verify_pack(pack, public_key=public_key)
    else:
        report = service.audit_verify(public_key=public_key)
    if as_json:
        emit_json(report.as_json())
    else:
        style = "[green]" if report.ok else "[red]"
        for i, line in enumerate(report.lines()):
            console.print((style if i == 0 else "") + escape(line), markup=True, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(as_json: JsonOpt = False) -> None:
    """Sign the ledger's head now (workers do it every N events or T seconds)."""
    cp = service.audit_checkpoint()
    where = get_settings().checkpoint_path
    if as_json:
        emit_json({"signed": cp is not None, "seq": cp.seq if cp else None, "hash": cp.hash if cp else None,
                   "count": cp.count if cp else None, "ts": cp.ts if cp else None,
                   "key_fingerprint": cp.key if cp else None, "directory": str(where)})
    elif cp is None:
        console.print("nothing new to sign: the head is checkpointed already")
    else:
        console.print(f"signed checkpoint of seq {cp.seq} ({cp.count} events) with key sha256:{cp.key[:16]}…, "
                      f"appended to {where}", soft_wrap=True)


def _parse_when(value: str | None) -> float | None:
    if value is None:
        return None
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise AgentOpsError(f"bad time '{value}': use ISO 8601, e.g. 2026-11-01 or 2026-11-01T09:00:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@audit_app.command("export")
def audit_export(
    since: Annotated[str | None, typer.Option("--since", help="ISO time (UTC unless given).")] = None,
    until: Annotated[str | None, typer.Option("--until")] = None,
    fmt: Annotated[str, typer.Option("--format")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    pack: PackDir = None,
) -> None:
    """Write the ledger as JSON lines (one event per line) for a SIEM; with --pack DIR, an evidence pack (events,
    signed checkpoints, public key) that `audit verify --pack DIR` checks offline."""
    if fmt != "jsonl":
        raise AgentOpsError(f"unknown format '{fmt}' (supported: jsonl)")
    if pack is not None:
        if since or until or output:
            raise AgentOpsError("--pack holds the whole ledger: --since, --until and --output do not apply")
        from agentops.service.evidence import export_pack  # cryptography loads for packs only

        summary = export_pack(pack)
        console.print(f"evidence pack {summary.directory}: {summary.events} events, {summary.checkpoints} signed "
                      f"checkpoints, key sha256:{summary.key_fingerprint[:16]}…", soft_wrap=True)
        if summary.not_signed:
            console.print(f"[red]the head is not signed[/red]: {escape(summary.not_signed)}", soft_wrap=True)
        return
    lines = service.audit_export(since=_parse_when(since), until=_parse_when(until))
    out = output.open("w") if output else sys.stdout
    try:
        for line in lines:
            out.write(line + "\n")
    finally:
        if output:
            out.close()


@audit_app.command("search")
def audit_search(actor: Annotated[str | None, typer.Option("--actor")] = None,
                 action: Annotated[str | None, typer.Option("--action")] = None,
                 run: Annotated[str | None, typer.Option("--run")] = None,
                 limit: Annotated[int, typer.Option("--limit")] = 50, as_json: JsonOpt = False) -> None:
    """Search the ledger by actor, action prefix and run."""
    events = service.audit_search(actor=actor, action=action, run_id=run, limit=limit)
    if as_json:
        emit_json([service.ledger_record(e) for e in events])
        return
    grid = Listing("seq", "time", "actor", "action", "run", "payload")
    for e in events:
        grid.add_row(str(e.seq), fmt_time(e.ts), e.actor, e.action, e.run_id or "", _clipped(e.payload, 120))
    grid.print()


@policy_app.command("check")
def policy_check(file: Annotated[Path | None, typer.Argument(help="Default: every policy of the project")] = None,
                 ) -> None:
    """Check policies against the tools' argument schemas; the first problem is one line naming file:line."""
    root = service.project_path()
    if file is not None:
        policy = load_policy(file, tools=project_tool_types(root))
        console.print(f"OK: {file} ({len(policy.rules)} tools, hash {policy.hash[:12]})")
        return
    policy = load_project_policy(root)
    files = ", ".join(str(p.relative_to(root)) for p in policy_files(root)) or "no policy files: everything is denied"
    console.print(f"OK: {files} ({len(policy.rules)} tools, hash {policy.hash[:12]})")


@policy_app.command("test")
def policy_test(directory: Annotated[Path | None, typer.Argument(help="Default: <project>/policies")] = None) -> None:
    """Run the example cases next to each policy (*.cases.yaml) and report verdicts that differ."""
    root = service.project_path()
    folder = directory or root / "policies"
    policy = load_project_policy(root)
    failed = total = 0
    for cases in sorted(folder.glob("*.cases.yaml")):
        for result in run_policy_cases(policy, cases):
            total += 1
            if not result.passed:
                failed += 1
                console.print(f"[red]DIFF[/red] {cases.name}: {result}")
    console.print(f"{total - failed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app, name="approvals")
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")
    app.add_typer(policy_app, name="policy")
