"""service.run_view: a run as people read it, built from real runs on a temp database."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from agentops import flow, request_approval, service, task
from agentops.agents.loop import Agent
from agentops.agents.models.scripted import ScriptedChatModel
from agentops.db import open_store
from agentops.db.records import StepRecord
from agentops.engine.runner import create_run
from agentops.engine.worker import Worker
from agentops.governance.approvals import decide
from agentops.service import run_view as rv
from tests import app_fixtures

scripted: list[ScriptedChatModel] = []


def call(name: str, args: dict, call_id: str, text: str = "") -> AIMessage:
    return AIMessage(content=text, tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


@flow
def run_view_scripted_agent() -> str:
    return Agent(name="ops", prompt="incident", tools=["get_metrics", "scale_deployment"], model=scripted[-1]).run(
        "web-app is hot").answer


backoff_tries: list[int] = []


@task(retries=1, retry_delay_seconds=0.3)
def run_view_flaky() -> str:
    backoff_tries.append(1)
    if len(backoff_tries) == 1:
        raise RuntimeError("the first try fails")
    return "steady"


@task
def run_view_plain(n: int) -> int:
    return n + 1


@flow
def run_view_retrying() -> str:
    return f"{run_view_plain(1)} {run_view_flaky()}"


@flow
def run_view_asks_itself(n: int) -> int:
    decision = request_approval("run_view_release", {"n": n}, reason="a person releases it", requester="user:maker")
    return run_view_plain(n) if decision.approved else 0


def burst() -> None:
    Worker(open_store(), poll_seconds=0.01).run(burst=True)


@pytest.fixture
def app_project(ops_project: Path) -> Path:
    return app_fixtures.app_project(ops_project)


def test_a_waiting_run_reads_as_a_conversation_with_cards_and_its_approval_linked(app_project: Path) -> None:
    incident = app_fixtures.pending_incident()
    view = rv.run_view(incident.run_id)
    [conv] = view.conversations
    assert conv.agent == "incident"
    assert [line.role for line in conv.lines] == ["system", "user", "assistant", "assistant"], \
        "the tool message is the get_metrics card, not a line of its own"
    first, second = conv.lines[2], conv.lines[3]
    assert first.turn is not None and first.turn.model == "playbook" and first.turn.step_no == 1
    assert first.turn.usage.words == "0 input · 0 output · 0 total tokens · $0.00"
    assert "{" not in first.turn.words, "no Python repr of the usage dict"
    metrics, scale = (view.cards[i] for i in (*first.cards, *second.cards))
    assert metrics.tool == "get_metrics" and metrics.verdict is not None
    assert (metrics.verdict.label, metrics.verdict.colour, metrics.status) == ("allow · tools.get_metrics", "green",
                                                                               "ok")
    assert json.loads(metrics.result_text or "")["deployments"][0]["name"] == "web-app"
    assert scale.verdict is not None and scale.verdict.label == "require_approval · tools.scale_deployment.when[0]"
    assert scale.status == "waiting for approval" and scale.result_text is None
    assert json.loads(scale.args_json) == {"name": "web-app", "replicas": 12}
    [link] = scale.approvals
    assert link.id == incident.approval_id and link.waiting
    assert link.path == f"/approvals?request={incident.approval_id}" and link.url.endswith(link.path)
    assert view.waiting == [link], "the result's place shows the approval it waits for"
    assert view.loose_cards == []
    assert [row.strip().split(" ", 1)[1] for row in view.timeline.rows] == [
        s.name for s in service.run_steps(incident.run_id)], "every step has its row and its label"
    waits = [b for b in view.timeline.bars if b.kind == "wait"]
    assert len(waits) == 1 and waits[0].text.startswith("waited ") and waits[0].text.endswith("so far for approval")


def test_once_approved_the_card_says_who_decided_and_shows_the_result_once(app_project: Path) -> None:
    incident = app_fixtures.pending_incident()
    decide(open_store(), incident.approval_id, "approve", user="ada")
    burst()
    view = rv.run_view(incident.run_id)
    assert view.run.state == "COMPLETED" and view.waiting == []
    scale = next(c for c in view.cards if c.tool == "scale_deployment")
    [link] = scale.approvals
    assert (link.kind, link.decided_by, link.waiting) == ("approve", ("ada",), False) and link.decided_at
    assert scale.status == "ok" and scale.result_text and "12" in scale.result_text
    [conv] = view.conversations
    shown = [line.text for line in conv.lines]
    assert not any(scale.result_text in text for text in shown), "the result is on the card, not repeated"
    assert all(line.role != "tool" for line in conv.lines)
    assert sum(len(line.cards) for line in conv.lines) == len(view.cards)
    waits = [b for b in view.timeline.bars if b.kind == "wait"]
    assert len(waits) == 1 and "so far" not in waits[0].text


def test_refused_and_rejected_calls_are_named_on_their_cards_in_the_outcome_and_the_list(ops_project: Path) -> None:
    app_fixtures.add_users()
    scripted.append(ScriptedChatModel(replies=[
        call("scale_deployment", {"name": "web-app", "replicas": 50}, "c1", "doubling twice"),
        call("scale_deployment", {"name": "web-app", "replicas": 12}, "c2", "then 12"),
        AIMessage(content="left as it was")]))
    run_id = create_run(run_view_scripted_agent, {}, store=open_store())
    burst()
    [pending] = service.pending_approvals_for(run_id)
    decide(open_store(), pending.id, "reject", user="ada", message="not at night")
    burst()
    view = rv.run_view(run_id)
    refused, rejected = view.cards
    assert refused.verdict is not None and refused.verdict.refused and refused.verdict.colour == "red"
    assert refused.status == "refused" and refused.verdict.rule == "tools.scale_deployment.constraints.replicas"
    assert rejected.status == "rejected" and rejected.approvals[0].message == "not at night"
    assert view.outcome.note == "1 refused call, 1 rejected call"
    assert service.run_notes([view.run]) == {run_id: "1 refused call, 1 rejected call"}
    turns = [line.turn for line in view.conversations[0].lines if line.turn is not None]
    assert [t.model for t in turns] == ["scripted"] * 3
    assert turns[0].usage.words == "10 input · 5 output · 15 total tokens · cost unknown"
    assert view.conversations[0].usage.words == "30 input · 15 output · 45 total tokens · cost unknown"
    tool_lines = [line for line in view.conversations[0].lines if line.role == "tool"]
    assert tool_lines == [], "both tool messages are held by their cards"


def test_a_retry_backoff_is_a_wait_and_every_step_has_its_label(sqlite_project: Path) -> None:
    backoff_tries.clear()
    run_id = create_run(run_view_retrying, {}, store=open_store())
    burst()
    view = rv.run_view(run_id)
    assert view.run.state == "COMPLETED"
    assert [r.strip() for r in view.timeline.rows] == ["1 run_view_plain", "2 run_view_flaky"]
    [wait] = [b for b in view.timeline.bars if b.kind == "wait"]
    assert wait.row.strip() == "2 run_view_flaky" and wait.text == "retry backoff 300 ms"
    flaky = [b for b in view.timeline.bars if b.row == wait.row]
    assert [b.kind for b in flaky] == ["work", "wait", "work"], "the step's work is drawn around its backoff"
    plain = next(s for s in view.steps if s.step.name == "run_view_plain")
    assert (plain.agent_step, plain.inputs, plain.output) == (False, {"n": 1}, 2)


def test_a_wait_of_hours_is_drawn_short_with_its_length_written_on_it(app_project: Path) -> None:
    incident = app_fixtures.pending_incident()
    decide(open_store(), incident.approval_id, "approve", user="ada")
    burst()
    detail = service.run_detail(incident.run_id)
    hours = 3 * 3600.0
    waited = next(s for s in detail.steps if s.kind == "approval")
    late = [dataclasses.replace(s, started_at=(s.started_at or 0) + hours, ended_at=(s.ended_at or 0) + hours)
            if s.step_no > waited.step_no else s for s in detail.steps]
    late = [dataclasses.replace(s, ended_at=(s.ended_at or 0) + hours) if s.step_no == waited.step_no else s
            for s in late]
    approvals = {a.step_no: dataclasses.replace(rv.approval_link(a), decided_at=(a.decided_at or 0) + hours)
                 for a in detail.approvals if a.step_no is not None}
    drawn = rv.timeline(late, detail.history, approvals, now=max(s.ended_at or 0 for s in late))
    [wait] = [b for b in drawn.bars if b.kind == "wait"]
    assert wait.text.startswith("waited 3 h 0 min for approval") and drawn.shortened
    assert wait.x1 - wait.x0 < 1.01, "drawn at the cap (1 s here: the steps worked for well under 5 s)"
    assert max(b.x1 for b in drawn.bars) < 10, "the steps after the wait are not pushed off the chart"
    work = [b for b in drawn.bars if b.kind == "work"]
    assert all(abs((b.x1 - b.x0) - b.seconds) < 1e-6 for b in work), "work is drawn at its real length"
    assert len(drawn.rows) == len(detail.steps) and len(set(drawn.rows)) == len(drawn.rows)


def test_a_flows_own_request_is_a_card_of_its_own_linked_where_the_result_will_be(ops_project: Path) -> None:
    app_fixtures.add_users()
    run_id = create_run(run_view_asks_itself, {"n": 4}, store=open_store())
    burst()
    view = rv.run_view(run_id)
    assert view.conversations == [] and view.loose_cards == [0]
    [card] = view.cards
    assert (card.tool, card.verdict, card.status, card.args) == ("run_view_release", None, "waiting for approval",
                                                                  {"n": 4})
    assert view.waiting == card.approvals and view.result is None
    decide(open_store(), card.approvals[0].id, "approve", user="ada")
    burst()
    view = rv.run_view(run_id)
    assert view.cards[0].status == "approved" and view.cards[0].approvals[0].decided_by == ("ada",)
    assert view.waiting == [] and view.result == 5


def test_a_step_with_unreadable_records_is_shown_not_raised() -> None:
    broken = [StepRecord("r", 1, "ops.model", "COMPLETED", kind="model", output="not json", meta="{",
                         started_at=1.0, ended_at=2.0),
              StepRecord("r", 2, "ops.policy", "COMPLETED", kind="policy", inputs="[1]", output='"x"',
                         started_at=2.0, ended_at=2.5),
              StepRecord("r", 3, "approval:x", "AWAITING_APPROVAL", kind="approval", started_at=3.0)]
    cards = rv.tool_cards(broken, {})
    assert [c.tool for c in cards] == ["ops.policy", "x"] and cards[1].status == "not run"
    assert rv.conversations_of(broken, cards) == ([], set())
    drawn = rv.timeline(broken, [], {}, now=4.0)
    assert len(drawn.rows) == 3 and any(b.text == "waited 1.0 s so far for approval" for b in drawn.bars)


def test_a_priced_models_turn_costs_dollars_and_an_unpriced_one_says_cost_unknown() -> None:
    def turn(model: str, cost: float) -> StepRecord:
        usage = {"input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500}
        reply = {"type": "ai", "data": {"type": "ai", "content": "done", "tool_calls": []}}
        return StepRecord("r", 1, "ops.model", "COMPLETED", kind="model", cost=cost,
                          output=json.dumps({"message": reply, "model": model, "usage": usage}),
                          meta=json.dumps({"model": model, "usage": usage, "messages_in": [
                              {"type": "human", "data": {"type": "human", "content": "hi"}}]}))

    [priced], _ = rv.conversations_of([turn("openai:gpt-4.1-mini", 0.00096)], [])
    assert [line.role for line in priced.lines] == ["user", "assistant"]
    assert priced.lines[1].turn is not None
    assert priced.lines[1].turn.usage.words == "1,200 input · 300 output · 1,500 total tokens · $0.0010"
    [unpriced], _ = rv.conversations_of([turn("ollama:llama3", 0.0)], [])
    assert unpriced.usage.words.endswith("cost unknown")


def test_a_stretch_where_no_step_ran_is_an_idle_wait_drawn_short() -> None:
    steps = [StepRecord("r", 1, "first", "COMPLETED", started_at=100.0, ended_at=102.0),
             StepRecord("r", 2, "second", "COMPLETED", started_at=702.0, ended_at=705.0)]
    drawn = rv.timeline(steps, [], {}, now=800.0)
    assert drawn.rows == ["  1 first", "  2 second", "idle"] and drawn.shortened
    [idle] = [b for b in drawn.bars if b.kind == "wait"]
    assert idle.text == "idle 10 min 0 s (no step ran)" and idle.x1 - idle.x0 == pytest.approx(1.0)
    second = next(b for b in drawn.bars if b.row == "  2 second")
    assert (second.x0, second.x1) == (pytest.approx(3.0), pytest.approx(6.0)), "after the wait, at its real length"


@pytest.mark.parametrize(("seconds", "words"), [(0.004, "4 ms"), (0.3, "300 ms"), (0.9996, "1.0 s"), (1.44, "1.4 s"),
                                                (-2, "0 ms"), (42, "42 s"), (185, "3 min 5 s"),
                                                (3 * 3600 + 60, "3 h 1 min"), (2 * 86400 + 7200, "2 d 2 h")])
def test_durations_read_as_people_say_them(seconds: float, words: str) -> None:
    assert rv.duration_words(seconds) == words


def test_money_and_token_counts_are_formatted() -> None:
    assert rv.Usage(12345, 678, 13023, 0.01234).words == "12,345 input · 678 output · 13,023 total tokens · $0.0123"
    assert rv.Usage(1, 2, 3, 12.5).words.endswith("$12.50")


def test_step_values_read_without_float_noise_and_keep_their_digits() -> None:
    from agentops.service.run_view import pretty

    shown = json.loads(pretty({"revenue": 355965.85000000015, "rows": [{"p95": 0.1 + 0.2}], "exact": 1234.5678901234,
                               "big": 1e300, "count": 3}))
    assert shown == {"revenue": 355965.85, "rows": [{"p95": 0.3}], "exact": 1234.5678901234, "big": 1e300,
                     "count": 3}
