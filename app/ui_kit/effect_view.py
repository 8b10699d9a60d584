"""An approval's effect as the reviewer should judge it: replicas now → proposed, the mail as it would be sent,
the ticket as it would be created, the HTTP call as `curl`. The JSON stays one click away."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from agentops.service import effects, formatting
from agentops.service.views import chart_image, mcp_hints
from ui_kit.render import md_text, pretty


def show_effect(effect: effects.Effect | None, args: dict[str, Any], key: str,
                marks: list[effects.Provenance] | None = None) -> None:
    """The effect, then each argument value that came from data the agent read (`marks`, bound when the request
    was opened), then the arguments as JSON."""
    marks = marks or []
    if isinstance(effect, effects.ScaleEffect):
        _scale(effect)
    elif isinstance(effect, effects.EmailEffect):
        _email(effect, key, {m.value.casefold() for m in marks})
    elif isinstance(effect, effects.TicketEffect):
        _ticket(effect)
    elif isinstance(effect, effects.HttpEffect):
        st.code(effect.curl, language="bash", wrap_lines=True)
    _provenance(marks)
    if effect is None:
        st.code(pretty(args), language="json")
    else:
        with st.expander("Arguments (JSON)"):
            st.code(pretty(args), language="json")


DEFINITION_KEY = "_mcp_definition"


def show_mcp_call(mcp: dict[str, Any], args: dict[str, Any], key: str, *, asks: dict[str, Any] | None = None,
                  marks: list[effects.Provenance] | None = None) -> None:
    """An MCP tool call as an approver should judge it: which server and tool, the arguments as a list (the
    definition digest apart), the server's annotations, and its description shown as the server's unverified
    words, never as text of ours. `asks`: the question a server asked during the call (a `respond` request)."""
    call = {k: v for k, v in args.items() if k != DEFINITION_KEY}
    digest = str(mcp.get("digest") or args.get(DEFINITION_KEY) or "")
    with st.container(border=True, key=f"mcp-call-{key}"):
        server, tool = md_text(str(mcp.get("server", "?"))), md_text(str(mcp.get("tool", "?")))
        st.markdown(f"MCP server **{server}** · tool **{tool}**" + (f" · definition `{digest[:12]}`" if digest else ""),
                    help="the tool definition this call was screened on (its digest); it runs only against it")
        hints = mcp_hints(mcp)
        if hints:
            st.caption("the server marks it " + ", ".join(hints) + " (its claim: it may tighten the policy, never "
                       "loosen it)")
        if asks is not None:
            st.markdown("**During this call, with these arguments:**")
        lines = [f"- **{md_text(name)}**: {md_text(_value(value))}" for name, value in sorted(call.items())]
        st.markdown("\n".join(lines) if lines else "no arguments")
        description = mcp.get("description_untrusted")
        if description:
            with st.container(key=f"mcp-description-{key}"):
                st.warning("**The server's description, untrusted:** the server's own words, not verified by "
                           "agentops; read them as a claim, never as instructions.", icon=":material/gpp_maybe:")
                st.text(str(description))
    _provenance(marks or [])
    with st.expander("Arguments (JSON)"):
        st.code(pretty({**(asks or {}), "call": args} if asks is not None else args), language="json")


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return formatting.clip(text)


def _scale(effect: effects.ScaleEffect) -> None:
    if effect.current is None:
        st.markdown(f"Scale **{md_text(effect.deployment)}** to **{effect.proposed}** replicas")
        if effect.problem:
            st.warning(f"Kubernetes: {md_text(effect.problem)}", icon=":material/cloud_off:")
        else:
            st.warning(f"The cluster has no deployment named {md_text(effect.deployment)}.", icon=":material/help:")
        return
    st.markdown(f"Scale **{md_text(effect.deployment)}**: **{effect.current} → {effect.proposed}** replicas",
                help=f"current replicas → proposed, read from the {effect.source} cluster now")
    if effect.metrics:
        cpu, errors, p95 = (effect.metrics[k] for k in ("cpu_percent", "error_rate", "p95_latency_ms"))
        st.caption(f"now: CPU {cpu:.0f}% · error rate {errors:.2%} · p95 {p95:,.0f} ms")
    if effect.changes_nothing:
        st.info(f"{md_text(effect.deployment)} already runs {effect.current} replicas: approving this changes nothing "
                "(it is recorded as a no-op).", icon=":material/block:")
    _dry_run(effect.dry_run)


def _dry_run(dry_run: effects.DryRun | None) -> None:
    if dry_run is None:
        return
    if dry_run.outcome == "accepted":
        would = f" and would set {dry_run.replicas} replicas" if dry_run.replicas is not None else ""
        st.success(f"Kubernetes dry run (dryRun=All): the API server accepts the patch{would}.",
                   icon=":material/check:")
    elif dry_run.outcome == "refused":
        st.error(f"Kubernetes dry run (dryRun=All) refused: {md_text(dry_run.message)}. "
                 "Approving would fail the same way.",
                 icon=":material/gpp_bad:")
    else:
        st.warning(f"Kubernetes dry run not made: {md_text(dry_run.message)}", icon=":material/cloud_off:")


def _provenance(marks: list[effects.Provenance]) -> None:
    if not marks:
        return
    lines = [f"- {md_text(m.path)}: {md_text(formatting.clip(m.value))} · from {md_text(m.source)}" for m in marks]
    st.warning("**From data the agent read, not from a person:**\n" + "\n".join(lines), icon=":material/input:")


def _addresses(recipients: list[effects.Recipient], from_data: set[str]) -> str:
    return ", ".join(md_text(r.text) + (" ⚠" if r.problem else "")
                     + (" ⚑ from data" if any(v in r.text.casefold() for v in from_data) else "")
                     for r in recipients) or "-"


def _email(effect: effects.EmailEffect, key: str, from_data: set[str]) -> None:
    with st.container(border=True, key=f"email-{key}"):
        st.markdown(f"**From:** {md_text(effect.sender)}  \n**To:** {_addresses(effect.to, from_data)}  \n"
                    + (f"**Cc:** {_addresses(effect.cc, from_data)}  \n" if effect.cc else "")
                    + f"**Subject:** {md_text(effect.subject)}")
        for recipient in [*effect.to, *effect.cc]:
            if recipient.problem:
                st.warning(f"{recipient.text}: {recipient.problem}")
        head, rest = formatting.split_body(effect.body)
        st.text(head)
        if rest:
            with st.expander(f"The rest of the message ({len(rest.splitlines())} more lines)"):
                st.text(rest)
        for attachment in effect.attachments:
            st.caption(f"attachment {md_text(attachment.name)} · {effects.size_text(attachment.size)} · "
                       f"{md_text(attachment.mime)}")
            png = chart_image(attachment.chart) if attachment.chart else None
            if png:
                st.image(png, width=360)


def _ticket(effect: effects.TicketEffect) -> None:
    with st.container(border=True):
        if effect.creates:
            st.markdown(f"New ticket · **{effect.fields['priority']}** · {effect.fields['status']}  \n"
                        f"**{md_text(effect.title or '')}**")
            if effect.fields["description"]:
                st.text(effect.fields["description"])
            return
        st.markdown(f"Ticket #{effect.ticket_id}: **{md_text(effect.title or 'not found')}**")
        for name, (now, after) in effect.fields.items():
            st.markdown(f"- {name}: {md_text(str(now)) if now is not None else '-'} → **{md_text(str(after))}**")
