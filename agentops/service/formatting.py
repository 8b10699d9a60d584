"""Words for what pages and the CLI list: how long a run took or has waited, an approval's title."""

from __future__ import annotations

import time
from typing import Any

from agentops.core.states import State
from agentops.core.times import duration_text
from agentops.db.records import RunRecord

WAITING = {State.AWAITING_APPROVAL.value: "waiting", State.AWAITING_RETRY.value: "retry in"}


def run_duration(run: RunRecord, now: float | None = None) -> str:
    """`12 ms`, `3 min 5 s` for a finished run; `running 4 s`, `waiting 3 min 5 s`, `queued 2 s` for one that is not
    (waiting counted from its last state change); "" for a run with no start to count from."""
    now = time.time() if now is None else now
    if run.ended_at is not None and run.started_at is not None:
        return duration_text(run.ended_at - run.started_at)
    if run.state == State.AWAITING_RETRY.value and run.wake_at is not None:
        return f"retry in {duration_text(run.wake_at - now)}"
    if run.state in WAITING:
        return f"waiting {duration_text(now - run.updated_at)}"
    if run.state == State.RUNNING.value and run.started_at is not None:
        return f"running {duration_text(now - run.started_at)}"
    if run.state in (State.PENDING.value, State.SCHEDULED.value):
        return f"queued {duration_text(now - run.created_at)}"
    return ""


def approval_title(action: str, args: dict[str, Any], current_replicas: int | None = None) -> str:
    """A request's title in words: `Send an email to ops@example.com`, `Scale web-app: 6 → 12`,
    `Create ticket "checkout returns 500s"`; the tool's name for a tool with no words here."""
    try:
        return _TITLES[action](args, current_replicas) if action in _TITLES else _generic(action)
    except (KeyError, TypeError, ValueError, AttributeError):
        return _generic(action)


def _generic(action: str) -> str:
    words = action.replace("_", " ").replace(".", " ").strip()
    return (words[:1].upper() + words[1:]) if words else action


def _people(values: Any) -> str:
    names = [str(v) for v in (values or [])]
    if not names:
        return "nobody"
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _clip(text: Any, width: int = 60) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[:width - 1] + "…"


def _email_title(args: dict[str, Any], _: int | None) -> str:
    return f"Send an email to {_people(args.get('to'))}"


def _scale_title(args: dict[str, Any], current: int | None) -> str:
    name, replicas = args["name"], int(args["replicas"])
    return f"Scale {name}: {current} → {replicas}" if current is not None else f"Scale {name} to {replicas} replicas"


def _create_ticket_title(args: dict[str, Any], _: int | None) -> str:
    return f"Open a ticket: {_clip(args['title'])}"


def _update_ticket_title(args: dict[str, Any], _: int | None) -> str:
    changes = [f"{k} → {args[k]}" for k in ("status", "priority") if args.get(k) is not None]
    if args.get("comment"):
        changes.append("a comment")
    return f"Update ticket #{int(args['ticket_id'])}" + (f": {', '.join(changes)}" if changes else "")


def _http_title(args: dict[str, Any], _: int | None) -> str:
    return f"{str(args.get('method', 'GET')).upper()} {_clip(args['url'], 80)}"


def _start_flow_title(args: dict[str, Any], _: int | None) -> str:
    return f"Start the flow {args['flow']}"


_TITLES = {"send_email": _email_title, "scale_deployment": _scale_title, "create_ticket": _create_ticket_title,
           "update_ticket": _update_ticket_title, "http_request": _http_title, "start_flow": _start_flow_title}


def plain_reason(reason: str | None, action: str) -> str | None:
    """The request's reason; the stock words for a call with no reason given (`the flow called send_email`)
    say who asked instead, since the title names the tool already."""
    stock = (reason or "").strip()
    if stock == f"the flow called {action}":
        return "the flow's code asks for this call (no model chose it)"
    if stock == f"the agent proposed {action}":
        return "the agent's model proposed this call and gave no reason"
    return reason or None


BODY_LINES = 15
"""Lines of a mail's body a card shows before the rest goes into an expander."""


def split_body(text: str, keep: int = BODY_LINES) -> tuple[str, str]:
    """The first `keep` lines of `text`, and the rest ("" when it is short enough to show whole: a rest of one
    or two lines is shown rather than hidden)."""
    lines = text.splitlines()
    if len(lines) <= keep + 2:
        return text, ""
    return "\n".join(lines[:keep]), "\n".join(lines[keep:])


def clip(text: str, width: int = 120) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis and the number of characters left out."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    return f"{line[:width - 1]}… ({len(line) - width + 1:,} more characters)"
