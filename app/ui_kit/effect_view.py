"""An approval's effect as the reviewer should judge it: replicas now → proposed, the mail as it would be sent,
the ticket as it would be created, the HTTP call as `curl`. The JSON stays one click away."""

from __future__ import annotations

from typing import Any

import streamlit as st

from agentops.service import effects
from agentops.service.views import chart_image
from ui_kit.render import md_text, pretty


def show_effect(effect: effects.Effect | None, args: dict[str, Any], key: str) -> None:
    if isinstance(effect, effects.ScaleEffect):
        _scale(effect)
    elif isinstance(effect, effects.EmailEffect):
        _email(effect, key)
    elif isinstance(effect, effects.TicketEffect):
        _ticket(effect)
    elif isinstance(effect, effects.HttpEffect):
        st.code(effect.curl, language="bash", wrap_lines=True)
    if effect is None:
        st.code(pretty(args), language="json")
    else:
        with st.expander("Arguments (JSON)"):
            st.code(pretty(args), language="json")


def _scale(effect: effects.ScaleEffect) -> None:
    if effect.current is None:
        st.markdown(f"Scale **{md_text(effect.deployment)}** to **{effect.proposed}** replicas")
        st.warning(f"The cluster has no deployment named {effect.deployment}.", icon=":material/help:")
        return
    st.markdown(f"Scale **{md_text(effect.deployment)}**: **{effect.current} → {effect.proposed}** replicas",
                help="current replicas → proposed, read from the cluster now")
    if effect.metrics:
        cpu, errors, p95 = (effect.metrics[k] for k in ("cpu_percent", "error_rate", "p95_latency_ms"))
        st.caption(f"now: CPU {cpu:.0f}% · error rate {errors:.2%} · p95 {p95:,.0f} ms")
    if effect.changes_nothing:
        st.info(f"{effect.deployment} already runs {effect.current} replicas: approving this changes nothing.",
                icon=":material/block:")


def _addresses(recipients: list[effects.Recipient]) -> str:
    return ", ".join(md_text(r.text) + (" ⚠" if r.problem else "") for r in recipients) or "-"


def _email(effect: effects.EmailEffect, key: str) -> None:
    with st.container(border=True, key=f"email-{key}"):
        st.markdown(f"**From:** {md_text(effect.sender)}  \n**To:** {_addresses(effect.to)}  \n"
                    + (f"**Cc:** {_addresses(effect.cc)}  \n" if effect.cc else "")
                    + f"**Subject:** {md_text(effect.subject)}")
        for recipient in [*effect.to, *effect.cc]:
            if recipient.problem:
                st.warning(f"{recipient.text}: {recipient.problem}")
        st.text(effect.body)
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
