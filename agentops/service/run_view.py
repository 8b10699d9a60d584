"""One run as the Runs page shows it, in plain data: its conversation as chat lines, each governed tool call as
a card (verdict and rule, approval, result once), and a timeline whose waits are marked and shortened.

Built from the run's recorded steps, its approvals and its ledger events; nothing is written here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentops.core.model_prices import price_known
from agentops.core.states import State
from agentops.core.times import duration_text
from agentops.db.records import StepRecord
from agentops.service.links import approval_url
from agentops.service.outcomes import Outcome, outcome_of
from agentops.service.runs import RunDetail, run_detail
from agentops.service.views import decoded

if TYPE_CHECKING:
    from agentops.db.records import LogRecord, RunRecord
    from agentops.db.schema import Approval, LedgerEvent

ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}
AGENT_KINDS = ("model", "policy", "approval", "tool")


# -- the pieces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """A model turn's tokens and cost; cost None when the model's price is not known."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float | None

    @property
    def words(self) -> str:
        cost = "cost unknown" if self.cost_usd is None else money(self.cost_usd)
        return (f"{self.input_tokens:,} input · {self.output_tokens:,} output · {self.total_tokens:,} total tokens · "
                f"{cost}")


@dataclass(frozen=True)
class ModelTurn:
    step_no: int
    model: str
    usage: Usage
    latency_ms: float | None
    fallback: str | None = None
    """Why the playbook model stood in (the configured model was unreachable), or None."""

    @property
    def words(self) -> str:
        latency = f" · {self.latency_ms:,.0f} ms" if self.latency_ms is not None else ""
        return f"{self.model} · {self.usage.words}{latency}"


@dataclass(frozen=True)
class ChatLine:
    """One message of the conversation. An assistant's proposed calls are `cards` (indices into the view's
    tool cards); a tool message whose call has a card is not a line of its own (the card holds its result)."""

    role: str
    text: str
    turn: ModelTurn | None = None
    cards: tuple[int, ...] = ()
    name: str | None = None


@dataclass(frozen=True)
class Conversation:
    agent: str
    lines: list[ChatLine]

    @property
    def usage(self) -> Usage:
        turns = [line.turn for line in self.lines if line.turn is not None]
        costs = [t.usage.cost_usd for t in turns]
        return Usage(sum(t.usage.input_tokens for t in turns), sum(t.usage.output_tokens for t in turns),
                     sum(t.usage.total_tokens for t in turns),
                     None if any(c is None for c in costs) else sum(c or 0.0 for c in costs))


@dataclass(frozen=True)
class Verdict:
    """The policy's verdict on a call: allow, deny or require_approval, the rule that gave it, and whether the
    call was refused (denied, or it failed the whitelist or the schema before any rule)."""

    verdict: str
    rule: str | None
    reason: str | None
    refused: bool = False
    enforced: bool = True

    @property
    def label(self) -> str:
        rule = f" · {self.rule}" if self.rule else ""
        shadow = " (shadow: not enforced)" if not self.enforced else ""
        return f"{self.verdict}{rule}{shadow}"

    @property
    def colour(self) -> str:
        if self.refused or self.verdict == "deny":
            return "red"
        return {"allow": "green", "require_approval": "orange"}.get(self.verdict, "gray")


@dataclass(frozen=True)
class ApprovalLink:
    id: str
    action: str
    status: str
    """pending, approved, rejected, expired, ... as the request's row has it."""
    path: str
    """The app-relative link (`/approvals?request=ID`)."""
    url: str
    """The absolute link (AGENTOPS_APP_URL)."""
    kind: str | None = None
    """The decision: approve, edit, reject, respond, expired; None while pending."""
    decided_by: tuple[str, ...] = ()
    decided_at: float | None = None
    message: str | None = None
    expires_at: float | None = None

    @property
    def waiting(self) -> bool:
        return self.status == "pending"


@dataclass
class ToolCard:
    """One governed call: what was proposed, the verdict, its approvals and what the tool returned."""

    tool: str
    args: Any
    verdict: Verdict | None = None
    approvals: list[ApprovalLink] = field(default_factory=list)
    executed_args: Any = None
    """The arguments the tool ran with, when a reviewer edited them."""
    result: Any = None
    result_status: str | None = None
    """The tool step's status (ok, error, expired, ...); None when the tool has not run."""
    call_id: str | None = None
    step_nos: list[int] = field(default_factory=list)

    @property
    def status(self) -> str:
        """What became of the call, in a word or two."""
        if self.result_status is not None:
            return self.result_status
        if self.verdict is not None and self.verdict.refused:
            return "refused"
        for approval in self.approvals:
            if approval.waiting:
                return "waiting for approval"
            if approval.kind in ("reject", "expired"):
                return "rejected" if approval.kind == "reject" else "expired"
        if self.approvals and self.verdict is None:
            return "approved"  # a flow's own request: what the flow does with the decision is its next steps
        return "not run"

    @property
    def args_json(self) -> str:
        return pretty(self.args)

    @property
    def result_text(self) -> str | None:
        return None if self.result is None else self.result if isinstance(self.result, str) else pretty(self.result)


@dataclass(frozen=True)
class Bar:
    """One bar of the timeline: a step's work, or a wait (an approval, a retry's backoff, the run idle)."""

    row: str
    kind: str
    """work or wait."""
    state: str
    start: float
    end: float
    x0: float
    x1: float
    """Where the bar is drawn, in seconds from the run's first step on an axis whose long waits are shortened."""
    text: str

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Timeline:
    rows: list[str]
    bars: list[Bar]
    shortened: bool
    """Some wait is drawn shorter than it lasted (its length is written on it)."""


@dataclass(frozen=True)
class StepLine:
    """A step in the list of every step: its facts, and its inputs and output for plain tasks (the agent's steps
    are shown as the conversation and the cards)."""

    step: StepRecord
    label: str
    inputs: Any
    output: Any
    logs: list[LogRecord]

    @property
    def agent_step(self) -> bool:
        return self.step.kind in AGENT_KINDS


@dataclass(frozen=True)
class RunView:
    run: RunRecord
    outcome: Outcome
    parameters: Any
    result: Any
    waiting: list[ApprovalLink]
    conversations: list[Conversation]
    cards: list[ToolCard]
    loose_cards: list[int]
    """Cards no conversation line holds (a flow's own request_approval, a call after the last model turn)."""
    timeline: Timeline
    steps: list[StepLine]
    run_logs: list[LogRecord]
    """Lines logged between steps, by the flow's own code."""
    history: list[LedgerEvent]


# -- building the view -----------------------------------------------------------------------------


def run_view(run_id: str, *, now: float | None = None) -> RunView:
    return view_of(run_detail(run_id), now=now)


def view_of(detail: RunDetail, *, now: float | None = None) -> RunView:
    now = time.time() if now is None else now
    run = detail.run
    approvals = {a.step_no: approval_link(a) for a in detail.approvals if a.step_no is not None}
    cards = tool_cards(detail.steps, approvals)
    conversations, held = conversations_of(detail.steps, cards)
    outcome = outcome_of(run)
    waiting = [approvals[a.step_no] for a in detail.approvals
               if a.status == "pending" and a.step_no is not None and a.step_no in approvals]
    return RunView(
        run=run, outcome=outcome, parameters=decoded(run.parameters),
        result=decoded(run.result) if run.result is not None else None, waiting=waiting,
        conversations=conversations, cards=cards, loose_cards=[i for i in range(len(cards)) if i not in held],
        timeline=timeline(detail.steps, detail.history, approvals, now=now),
        steps=[step_line(s, detail.logs) for s in detail.steps],
        run_logs=[line for line in detail.logs if line.step_no is None], history=detail.history)


def approval_link(appr: Approval) -> ApprovalLink:
    decision = decoded(appr.decision) if appr.decision else None
    decision = decision if isinstance(decision, dict) else {}
    kind = decision.get("kind") or ("expired" if appr.status == "expired" else None)
    by = decision.get("decided_by") or ([p for p in (appr.decided_by or "").split(",") if p])
    return ApprovalLink(id=appr.id, action=appr.action, status=appr.status, path=f"/approvals?request={appr.id}",
                        url=approval_url(appr.id), kind=kind, decided_by=tuple(by), decided_at=appr.decided_at,
                        message=decision.get("message"), expires_at=appr.expires_at)


def tool_cards(steps: list[StepRecord], approvals: dict[int, ApprovalLink]) -> list[ToolCard]:
    """A card per governed call: its policy step opens it; the approval and tool steps after it fill it. An
    approval a flow asked for itself (no policy step before it) is a card of its own."""
    cards: list[ToolCard] = []
    open_card: ToolCard | None = None
    for step in steps:
        facts = _facts(step)
        if step.kind == "policy":
            open_card = _policy_card(step, facts)
            cards.append(open_card)
        elif step.kind == "approval":
            action = step.name.removeprefix("approval:")
            if open_card is None or open_card.tool != action:
                open_card = ToolCard(tool=action, args=facts["inputs"])
                cards.append(open_card)
            open_card.step_nos.append(step.step_no)
            if step.step_no in approvals:
                open_card.approvals.append(approvals[step.step_no])
        elif step.kind == "tool" and open_card is not None and step.name.endswith(f":{open_card.tool}"):
            _fill_result(open_card, step, facts)
    return cards


def _policy_card(step: StepRecord, facts: dict[str, Any]) -> ToolCard:
    inputs, output = facts["inputs"] or {}, facts["output"] or {}
    raw = output.get("verdict") if isinstance(output, dict) else None
    status = output.get("status") if isinstance(output, dict) else None
    reason = output.get("reason") if isinstance(output, dict) else None
    if isinstance(raw, dict):
        verdict = Verdict(str(raw.get("verdict")), raw.get("rule"), raw.get("reason") or reason,
                          refused=status == "refused", enforced=bool(raw.get("enforced", True)))
    else:
        verdict = Verdict("refused" if status == "refused" else str(status or "?"), None, reason,
                          refused=status == "refused")
    args = output.get("args") if isinstance(output, dict) and output.get("args") is not None \
        else inputs.get("proposed")
    return ToolCard(tool=str(inputs.get("tool_name", step.name)), args=args, verdict=verdict,
                    call_id=inputs.get("call_id"), step_nos=[step.step_no])


def _fill_result(card: ToolCard, step: StepRecord, facts: dict[str, Any]) -> None:
    card.step_nos.append(step.step_no)
    inputs, output = facts["inputs"] or {}, facts["output"]
    ran_with = inputs.get("tool_args")
    if ran_with is not None and ran_with != card.args:
        card.executed_args = ran_with
    if step.state != State.COMPLETED or not isinstance(output, dict):
        card.result_status = step.state.lower() if step.state != State.COMPLETED else "error"
        card.result = step.error
        return
    card.result_status = str(output.get("status", "ok"))
    structured = output.get("result")
    card.result = structured if isinstance(structured, dict | list) else output.get("content")


def conversations_of(steps: list[StepRecord], cards: list[ToolCard]) -> tuple[list[Conversation], set[int]]:
    """Per agent, its last model step's conversation and reply; each assistant line carries its model turn
    (the n-th assistant message is the n-th model step that replied) and the cards of the calls it proposed."""
    by_call = {c.call_id: i for i, c in enumerate(cards) if c.call_id}
    held: set[int] = set()
    conversations = []
    for agent, model_steps in _model_steps_by_agent(steps).items():
        replied = [(s, f) for s, f in model_steps if isinstance(f["output"], dict) and "message" in f["output"]]
        if not replied:
            continue
        facts = replied[-1][1]
        earlier = facts["meta"].get("messages_in")
        messages = [m for m in [*(earlier if isinstance(earlier, list) else []), facts["output"]["message"]]
                    if isinstance(m, dict)]
        turns = iter(_turn(s, f) for s, f in replied)
        lines = []
        for message in messages:
            line = _line(message, turns, by_call)
            if line is not None:
                held.update(line.cards)
                lines.append(line)
        conversations.append(Conversation(agent, lines))
    return conversations, held


def _model_steps_by_agent(steps: list[StepRecord]) -> dict[str, list[tuple[StepRecord, dict[str, Any]]]]:
    found: dict[str, list[tuple[StepRecord, dict[str, Any]]]] = {}
    for step in steps:
        if step.kind == "model" and step.state == State.COMPLETED:
            found.setdefault(step.name.removesuffix(".model"), []).append((step, _facts(step)))
    return found


def _line(message: dict[str, Any], turns: Any, by_call: dict[str, int]) -> ChatLine | None:
    data = message.get("data", message)
    data = data if isinstance(data, dict) else {}
    role = ROLES.get(str(message.get("type") or data.get("type")), str(message.get("type", "?")))
    text = message_text(data.get("content"))
    if role == "tool":
        if data.get("tool_call_id") in by_call:
            return None
        return ChatLine("tool", text, name=data.get("name"))
    if role == "assistant":
        calls = [c.get("id") for c in data.get("tool_calls") or []]
        cards = tuple(by_call[c] for c in calls if c in by_call)
        proposed = [c for c in data.get("tool_calls") or [] if c.get("id") not in by_call]
        if proposed:
            text = (text + "\n\n" if text else "") + "\n".join(
                f"proposed {c.get('name')}({json.dumps(c.get('args', {}), sort_keys=True)})" for c in proposed)
        return ChatLine("assistant", text, turn=next(turns, None), cards=cards)
    return ChatLine(role, text)


def _turn(step: StepRecord, facts: dict[str, Any]) -> ModelTurn:
    meta, output = facts["meta"] or {}, facts["output"] or {}
    model = str(meta.get("model") or output.get("model") or "?")
    usage = meta.get("usage") or output.get("usage") or {}
    tokens = {k: _int(usage.get(k)) for k in ("input_tokens", "output_tokens", "total_tokens")}
    if not tokens["total_tokens"]:
        tokens["total_tokens"] = tokens["input_tokens"] + tokens["output_tokens"]
    cost = step.cost if step.cost else output.get("cost_usd") or 0.0
    known = price_known(model)
    return ModelTurn(step.step_no, model, Usage(**tokens, cost_usd=float(cost) if known or cost else None),
                     meta.get("latency_ms"), meta.get("fallback"))


def step_line(step: StepRecord, logs: list[LogRecord]) -> StepLine:
    facts = _facts(step)
    return StepLine(step, f"{step.step_no}. {step.name}", facts["inputs"], facts["output"],
                    [line for line in logs if line.step_no == step.step_no])


# -- the timeline ----------------------------------------------------------------------------------


def timeline(steps: list[StepRecord], history: list[LedgerEvent], approvals: dict[int, ApprovalLink], *,
             now: float) -> Timeline:
    """Every step on a row of its own; its waits (the approval it waited for, each retry's backoff) drawn as
    waits on its row, and stretches when no step ran as `idle`. A wait longer than the cap (a fifth of the time
    the steps worked, at least 1 s) is drawn at the cap, with its length written on it."""
    pieces: list[tuple[str, str, str, float, float, str]] = []
    rows: list[str] = []
    backoffs = _backoffs(history)
    for step in steps:
        if step.started_at is None:
            continue
        row = f"{step.step_no:>3} {step.name}"
        rows.append(row)
        end = step.ended_at or now
        waits = _waits_of(step, approvals.get(step.step_no), backoffs.get(step.step_no, []), now=end)
        cursor = step.started_at
        for w_start, w_end, label in waits:
            if w_start > cursor:
                pieces.append((row, "work", step.state, cursor, w_start, duration_words(w_start - cursor)))
            pieces.append((row, "wait", step.state, w_start, w_end, label))
            cursor = max(cursor, w_end)
        if end > cursor or not waits:
            pieces.append((row, "work", step.state, cursor, max(end, cursor + 0.001), duration_words(end - cursor)))
    idle = _idle(pieces)
    if idle:
        rows.append("idle")
        pieces += [("idle", "wait", "IDLE", a, b, f"idle {duration_words(b - a)} (no step ran)") for a, b in idle]
    if not pieces:
        return Timeline([], [], False)
    shorten, shortened = _shortener(pieces)
    bars = [Bar(row, kind, state, a, b, shorten(a), shorten(b), text) for row, kind, state, a, b, text in pieces]
    return Timeline(rows, bars, shortened)


def _backoffs(history: list[LedgerEvent]) -> dict[int, list[tuple[float, float]]]:
    found: dict[int, list[tuple[float, float]]] = {}
    for event in history:
        if event.action != "step.state" or event.step_no is None:
            continue
        payload = decoded(event.payload)
        if isinstance(payload, dict) and payload.get("state") == State.AWAITING_RETRY:
            delay = float(payload.get("retry_in_seconds") or 0.0)
            if delay > 0:
                found.setdefault(event.step_no, []).append((event.ts, event.ts + delay))
    return found


def _waits_of(step: StepRecord, approval: ApprovalLink | None, backoffs: list[tuple[float, float]], *,
              now: float) -> list[tuple[float, float, str]]:
    waits = []
    assert step.started_at is not None
    if step.kind == "approval":
        decided = approval.decided_at if approval is not None and approval.decided_at else None
        end = min(decided or now, now)
        so_far = " so far" if decided is None else ""
        waits.append((step.started_at, max(end, step.started_at),
                      f"waited {duration_words(end - step.started_at)}{so_far} for approval"))
    waits += [(a, min(b, now), f"retry backoff {duration_words(b - a)}") for a, b in backoffs if a < now]
    return sorted(waits)


def _idle(pieces: list[tuple[str, str, str, float, float, str]], least: float = 1.0) -> list[tuple[float, float]]:
    """Stretches of at least `least` seconds covered by no bar (the run queued, paused or being recovered)."""
    spans = sorted((a, b) for _, _, _, a, b, _ in pieces)
    gaps = []
    if spans:
        reach = spans[0][1]
        for a, b in spans[1:]:
            if a - reach >= least:
                gaps.append((reach, a))
            reach = max(reach, b)
    return gaps


def _shortener(pieces: list[tuple[str, str, str, float, float, str]]) -> tuple[Any, bool]:
    """A map from a time to its place on the drawn axis: stretches where only waits happen, longer than the cap,
    are drawn at the cap."""
    start = min(a for _, _, _, a, _, _ in pieces)
    work = _union([(a, b) for _, kind, _, a, b, _ in pieces if kind == "work"])
    waits = _union([(a, b) for _, kind, _, a, b, _ in pieces if kind == "wait"])
    cap = max(1.0, 0.2 * sum(b - a for a, b in work))
    squeezed = [(a, b) for a, b in _minus(waits, work) if b - a > cap]

    def shorten(t: float) -> float:
        x = t - start
        for a, b in squeezed:
            if t > a:
                inside = min(t, b) - a
                x -= inside - cap * inside / (b - a)
        return x

    return shorten, bool(squeezed)


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _minus(spans: list[tuple[float, float]], holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for a, b in spans:
        pieces = [(a, b)]
        for h0, h1 in holes:
            pieces = [p for x0, x1 in pieces for p in ((x0, min(x1, h0)), (max(x0, h1), x1)) if p[1] > p[0]]
        out += pieces
    return out


# -- words and values ------------------------------------------------------------------------------


def duration_words(seconds: float) -> str:
    """`12 ms`, `1.4 s`, `3 min 5 s`, `2 h 14 min`, `3 d 4 h`: the one duration formatter (core.times)."""
    return duration_text(seconds)


def money(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 1 or usd == 0 else f"${usd:,.4f}"


def message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else json.dumps(content, default=str)


def pretty(value: Any) -> str:
    """A step's value as indented JSON, floats without their binary noise (355965.85, not 355965.85000000015)."""
    return json.dumps(_without_float_noise(value), indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _without_float_noise(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.15g}")
    if isinstance(value, dict):
        return {k: _without_float_noise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_float_noise(v) for v in value]
    return value


def _facts(step: StepRecord) -> dict[str, Any]:
    """The step's inputs, output and meta decoded; inputs and meta that are not JSON objects read as empty."""
    inputs, meta = decoded(step.inputs), decoded(step.meta)
    return {"inputs": inputs if isinstance(inputs, dict) else {}, "output": decoded(step.output),
            "meta": meta if isinstance(meta, dict) else {}}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
