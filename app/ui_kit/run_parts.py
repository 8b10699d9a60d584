"""How the Runs page draws one run's parts: chat messages, a governed call's card, the timeline."""

from __future__ import annotations

from typing import Any

import altair as alt
import streamlit as st

from agentops.service import run_view as rv
from ui_kit.render import md_text, when

AVATARS = {"system": ":material/settings:", "user": ":material/person:", "assistant": ":material/smart_toy:",
           "tool": ":material/build:"}
STATUS_COLOURS = {"ok": "green", "error": "red", "refused": "red", "rejected": "red", "expired": "gray",
                  "waiting for approval": "orange", "not run": "gray", "approved": "green"}
BAR_COLOURS = {"COMPLETED": "#4c9f70", "FAILED": "#d1495b", "CRASHED": "#8c1c13", "RUNNING": "#3a7ca5",
               "AWAITING_RETRY": "#edae49", "CANCELLED": "#999999", "waiting": "#c9c9d6"}


def approval_words(link: rv.ApprovalLink) -> str:
    """`[approval 1a2b3c4d…](/approvals?request=ID) · approved by ada at ...`, markdown."""
    head = f"[approval `{link.id[:12]}`]({link.path})"
    if link.waiting:
        expiry = f", expires {when(link.expires_at)}" if link.expires_at else ""
        return f"{head} · **waiting for a decision**{expiry}"
    verb = {"approve": "approved", "edit": "approved with edits", "reject": "rejected", "respond": "answered",
            "expired": "expired unanswered"}.get(link.kind or "", link.status)
    by = f" by {', '.join(link.decided_by)}" if link.decided_by else ""
    said = f' · "{md_text(link.message)}"' if link.message and link.kind != "expired" else ""
    return f"{head} · {verb}{by} at {when(link.decided_at)}{said}"


def tool_card(card: rv.ToolCard, key: str) -> None:
    with st.container(border=True, key=f"tool-card-{key}"):
        badges = [f"**{md_text(card.tool)}**"]
        if card.verdict is not None:
            badges.append(f":{card.verdict.colour}-badge[{md_text(card.verdict.label)}]")
        else:
            badges.append(":gray-badge[asked for by the flow]")
        badges.append(f":{STATUS_COLOURS.get(card.status, 'blue')}-badge[{md_text(card.status)}]")
        st.markdown(" ".join(badges))
        if card.verdict is not None and card.verdict.reason:
            st.caption(f"policy: {card.verdict.reason}")
        with st.expander("Arguments", expanded=False):
            st.code(card.args_json, language="json")
        if card.executed_args is not None:
            with st.expander("Ran with (a reviewer edited the arguments)"):
                st.code(rv.pretty(card.executed_args), language="json")
        for link in card.approvals:
            st.markdown(approval_words(link))
        if card.result_text is not None:
            with st.expander("Result", expanded=len(card.result_text) < 400):
                st.code(card.result_text, language="json" if not isinstance(card.result, str) else None,
                        wrap_lines=True)


def conversation(conv: rv.Conversation, cards: list[rv.ToolCard], key: str) -> None:
    st.markdown(f"**Conversation of `{conv.agent}`** · {conv.usage.words}")
    for i, line in enumerate(conv.lines):
        if line.role == "system":
            with st.expander("System prompt", icon=AVATARS["system"]):
                st.markdown(md_text(line.text))
            continue
        with st.chat_message(line.role, avatar=AVATARS.get(line.role)):
            if line.name:
                st.caption(f"tool {line.name}")
            if line.text:
                st.markdown(md_text(line.text))
            if line.turn is not None:
                fallback = f" · stood in for an unreachable model ({line.turn.fallback})" if line.turn.fallback \
                    else ""
                st.caption(f"step {line.turn.step_no} · {line.turn.words}{fallback}")
            for index in line.cards:
                tool_card(cards[index], f"{key}-{i}-{index}")


def timeline_chart(timeline: rv.Timeline) -> alt.LayerChart:
    rows: list[dict[str, Any]] = [
        {"row": b.row, "x0": b.x0, "x1": b.x1, "mid": (b.x0 + b.x1) / 2, "what": b.text,
         "shown": "waiting" if b.kind == "wait" else b.state, "kind": b.kind, "from": when(b.start),
         "to": when(b.end), "lasted": rv.duration_words(b.seconds)} for b in timeline.bars]
    title = "seconds from the first step" + (" (long waits drawn shorter; each is labelled with how long it "
                                             "lasted)" if timeline.shortened else "")
    y = alt.Y("row:N", sort=timeline.rows, title=None, axis=alt.Axis(labelLimit=0, labelOverlap=False))
    shown = sorted({r["shown"] for r in rows})
    colour = alt.Color("shown:N", title=None, scale=alt.Scale(domain=shown,
                                                              range=[BAR_COLOURS.get(s, "#777777") for s in shown]))
    base = alt.Chart(alt.Data(values=rows))
    bars = base.mark_bar(height=18).encode(
        x=alt.X("x0:Q", title=title), x2="x1:Q", y=y, color=colour,
        strokeDash=alt.condition(alt.datum.kind == "wait", alt.value([4, 2]), alt.value([1, 0])),
        stroke=alt.value("#555555"), tooltip=["row:N", "what:N", "from:N", "to:N", "lasted:N"])
    labels = base.transform_filter(alt.datum.kind == "wait").mark_text(align="center", fontSize=11).encode(
        x="mid:Q", y=y, text="what:N")
    return (bars + labels).properties(height=30 * len(timeline.rows) + 50)
