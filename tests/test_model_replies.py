"""Garbage from a model never turns into actions, over the real OpenAI client path (langchain-openai and the
openai client, pointed at a fake server on 127.0.0.1 through OPENAI_BASE_URL), on SQLite and PostgreSQL.

An unusable reply is a recorded model error: the turn is sent again within AGENTOPS_MODEL_REPLY_RETRIES, each
failed attempt is on the step and in the ledger with its reason, and then the run fails saying why. Only an
unreachable model is replaced by the playbook, recorded as a fallback, and the policy's `fallback:` rule can
send every call the playbook proposes to a person.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentops.agents.models.factory import CLIENT_RETRIES
from agentops.agents.models.replies import REASON_CHARS
from agentops.db import open_store
from agentops.engine.project import load_project
from agentops.engine.registry import find_flow
from agentops.engine.runner import create_run
from agentops.engine.worker import Worker
from agentops.errors import ConfigError
from agentops.governance.approvals import decide
from agentops.governance.policy import load_project_policy, run_policy_cases
from agentops.governance.users import add_user
from agentops.settings import get_settings, reset_settings
from tests.fakes.openai_server import (
    ECHOED_SECRET,
    MALFORMED,
    ScriptedOpenAIServer,
    server_error,
    text_reply,
    tool_reply,
)

API_KEY = "sk-test-not-a-real-key-4242"

FLOW = '''
from agentops import flow
from agentops.agents import Agent


@flow
def replies(note: str = "web-app is at 95% CPU") -> dict:
    result = Agent(name="llm", prompt="incident",
                   tools=["get_metrics", "scale_deployment", "send_email", "create_ticket"]).run(note)
    return {"answer": result.answer, "model": result.model,
            "calls": [(o.name, o.status, o.content) for o in result.tool_calls]}
'''

REASONS = {
    "empty_choices": "IndexError",
    "null_message": "AttributeError",
    "non_utf8_body": "UnicodeDecodeError",
    "html_body": "Unexpected response type",
    "not_a_chat_completion": "null value for 'choices'",
    "tool_call_without_function": "TypeError",
    "arguments_not_json": "arguments are not a JSON object",
    "arguments_not_an_object": "validation error for AIMessage",
    "unknown_tool": "unknown tool 'rm_rf'",
    "truncated_body": "RemoteProtocolError",
}
"""What the recorded reason names, for each kind of garbage sent as a plain (not streamed) reply."""

STREAMED_REASONS = {
    "empty_choices": "No generation chunks were returned",
    "arguments_not_json": "streamed arguments are not a whole JSON object",
    "arguments_not_an_object": "streamed arguments are not a whole JSON object",
    "unknown_tool": "unknown tool 'rm_rf'",
    "truncated_stream": "no finish reason",
}
"""The same with AGENTOPS_MODEL_STREAMING=true. (LangChain reads a cut-off argument string from a stream as
partial JSON: `{"name": "web-app", "replicas": ` would become a call with the name alone.)"""

CASES = [(kind, False) for kind in REASONS] + [(kind, True) for kind in STREAMED_REASONS]

RETRIED_BY_THE_CLIENT = {"truncated_body"}
"""Garbage the openai client itself sees as a connection error and sends again CLIENT_RETRIES times."""


@pytest.fixture
def llm_project(ops_db_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (ops_db_project / "flows" / "replies.py").write_text(FLOW)
    monkeypatch.setenv("AGENTOPS_MODEL", "openai:gpt-4.1-mini")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    reset_settings()
    load_project()
    return ops_db_project


def start(note: str = "web-app is at 95% CPU") -> tuple[str, Any]:
    store = open_store()
    run_id = create_run(find_flow("replies"), {"note": note}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    return run_id, store.get_run(run_id)


def no_effects() -> None:
    store = open_store()
    assert store.outbox_list() == [] and store.scale_events() == []
    assert [t for t in store.tickets_list() if t.run_id is not None] == []
    assert store.list_approvals(status=None) == []


def step_events(run_id: str) -> list[dict[str, Any]]:
    """The run's step.state events, oldest first."""
    found = open_store().search_ledger(run_id=run_id, action="step.state", limit=500)
    return [json.loads(e.payload) for e in sorted(found, key=lambda e: e.seq)]


@pytest.mark.parametrize(("kind", "streamed"), CASES, ids=[f"{k}{'-streamed' if s else ''}" for k, s in CASES])
def test_garbage_is_a_model_error_retried_then_fatal_and_never_an_action(
        llm_project: Path, monkeypatch: pytest.MonkeyPatch, kind: str, streamed: bool) -> None:
    monkeypatch.setenv("AGENTOPS_MODEL_STREAMING", str(streamed).lower())
    reset_settings()
    attempts = get_settings().model_reply_retries + 1
    per_attempt = 1 + CLIENT_RETRIES if kind in RETRIED_BY_THE_CLIENT and not streamed else 1
    with ScriptedOpenAIServer([MALFORMED[kind]] * (attempts * per_attempt)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        run_id, run = start()
    reason = (STREAMED_REASONS if streamed else REASONS)[kind]
    assert server.completions == attempts * per_attempt, "every attempt reached the server, none more"
    assert all(bool(r["body"].get("stream")) == streamed for r in server.requests)

    assert run.state == "FAILED"
    assert f"gave no usable reply in {attempts} attempts" in run.error and reason in run.error
    no_effects()
    [step] = open_store().steps_for_run(run_id)
    assert (step.kind, step.state, step.attempts) == ("model", "FAILED", attempts)
    failed = [e for e in step_events(run_id) if e.get("error")]
    assert [e["state"] for e in failed] == ["AWAITING_RETRY"] * (attempts - 1) + ["FAILED"]
    assert all(reason in e["error"] and len(e["error"]) < 4 * REASON_CHARS for e in failed)

    everything = json.dumps([run.error, step.error, failed, [e.payload for e in open_store().search_ledger(limit=500)]])
    assert API_KEY not in everything and ECHOED_SECRET.decode() not in everything
    assert len(everything) < 50_000, "no reply body is stored whole (the HTML page alone is over 100 kB)"


def test_a_bad_reply_then_a_good_one_and_the_run_goes_on(llm_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [MALFORMED["tool_call_without_function"], tool_reply("get_metrics", {"name": "web-app"}),
               MALFORMED["unknown_tool"], text_reply("web-app is busy; nothing else to do")]
    with ScriptedOpenAIServer(replies) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        run_id, run = start()
    assert run.state == "COMPLETED", run.error
    result = json.loads(run.result)
    assert result["answer"] == "web-app is busy; nothing else to do" and result["model"].startswith("gpt-4.1-mini")
    assert [c[:2] for c in result["calls"]] == [["get_metrics", "ok"]]
    assert server.completions == 4
    steps = open_store().steps_for_run(run_id)
    assert [(s.kind, s.attempts) for s in steps] == [("model", 2), ("policy", 1), ("tool", 1), ("model", 2)]
    retried = [e["error"] for e in step_events(run_id) if e.get("state") == "AWAITING_RETRY"]
    assert len(retried) == 2 and "TypeError" in retried[0] and "unknown tool 'rm_rf'" in retried[1]
    assert all(json.loads(s.meta).get("fallback") is None for s in steps if s.kind == "model")
    no_effects()


@pytest.mark.parametrize("choice", ["approve", "reject"])
def test_with_model_on_error_ask_a_person_decides_whether_the_turn_is_sent_again(
        llm_project: Path, monkeypatch: pytest.MonkeyPatch, choice: str) -> None:
    monkeypatch.setenv("AGENTOPS_MODEL_ON_ERROR", "ask")
    reset_settings()
    store = open_store()
    add_user(store, "ada", "approver", "correct horse battery")
    attempts = get_settings().model_reply_retries + 1
    replies = [MALFORMED["null_message"]] * attempts + [tool_reply("get_metrics", {"name": "web-app"}),
                                                        text_reply("web-app is busy")]
    with ScriptedOpenAIServer(replies) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        run_id, run = start()
        assert run.state == "AWAITING_APPROVAL", run.error
        assert server.completions == attempts
        [appr] = store.list_approvals(run_id=run_id)
        assert appr.action == "model.retry" and "AttributeError" in json.loads(appr.args)["reason"]
        [unusable] = [json.loads(e.payload) for e in store.search_ledger(run_id=run_id, action="model.unusable")]
        assert unusable["attempts"] == attempts and "AttributeError" in unusable["unusable"]
        assert [s.kind for s in store.steps_for_run(run_id)] == ["model", "approval"]
        decide(store, appr.id, choice, user="ada", message="the proxy is fixed" if choice == "approve" else "stop")
        Worker(store, poll_seconds=0.01).run(burst=True)
    run = store.get_run(run_id)
    if choice == "approve":
        assert run.state == "COMPLETED", run.error
        assert [c[:2] for c in json.loads(run.result)["calls"]] == [["get_metrics", "ok"]]
        assert server.completions == attempts + 2
    else:
        assert run.state == "FAILED" and "the request to try again was rejected: stop" in run.error
        assert server.completions == attempts
        assert [s.kind for s in store.steps_for_run(run_id)] == ["model", "approval"]
    assert store.outbox_list() == [] and store.scale_events() == []


@pytest.mark.parametrize("status", [400, 401])
def test_a_refused_request_is_a_model_error_not_a_reason_to_fall_back(
        llm_project: Path, monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    attempts = get_settings().model_reply_retries + 1
    with ScriptedOpenAIServer([server_error(status)] * attempts) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        run_id, run = start()
    assert run.state == "FAILED" and str(status) in run.error and "gave no usable reply" in run.error
    assert server.completions == attempts, "the client does not resend a 4xx; the turn is sent again per attempt"
    assert [s.kind for s in open_store().steps_for_run(run_id)] == ["model"]
    no_effects()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_model_falls_back_to_the_playbook_recorded_on_the_step(
        llm_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port()}/v1")
    run_id, run = start("Check deployment checkout")
    assert run.state == "COMPLETED", run.error
    store = open_store()
    models = [s for s in store.steps_for_run(run_id) if s.kind == "model"]
    for step in models:
        meta = json.loads(step.meta)
        assert meta["fallback"] == "playbook" and meta["model"] == "playbook"
        assert meta["fallback_reason"].startswith("the model is unreachable: ") and "Connection refused" in \
            meta["fallback_reason"]
    events = [json.loads(e.payload) for e in store.search_ledger(run_id=run_id, action="model.call")]
    assert len(events) == len(models) and all(e["fallback"] == "playbook" and e["fallback_reason"] for e in events)
    assert [m.to for m in store.outbox_list()] == ["oncall@example.com"], "the default policy allows this mail"

    shown = subprocess.run([sys.executable, "-m", "agentops.cli", "runs", "show", run_id], capture_output=True,
                           text=True, env=os.environ.copy(), timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("was answered by the playbook model; the model is unreachable") == len(models)
    assert API_KEY not in shown.stdout


FALLBACK_RULES = {
    "top-level": ("fallback: require_approval", None, "fallback", "get_metrics"),
    "per-tool": ("", "send_email", "tools.send_email.fallback", "send_email"),
}


def _policy_with_fallback(root: Path, top: str, tool: str | None) -> None:
    policy = root / "policies" / "default.yaml"
    text = policy.read_text()
    assert "\nfallback: policy\n" in text
    text = text.replace("\nfallback: policy\n", f"\n{top or 'fallback: policy'}\n", 1)
    if tool is not None:
        text = text.replace(f"  {tool}:\n", f"  {tool}:\n    fallback: require_approval\n", 1)
    policy.write_text(text)


@pytest.mark.parametrize("where", list(FALLBACK_RULES))
def test_fallback_require_approval_sends_what_the_playbook_proposes_to_a_person(
        llm_project: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    top, tool, rule, first_gated = FALLBACK_RULES[where]
    _policy_with_fallback(llm_project, top, tool)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port()}/v1")
    run_id, run = start("Check deployment checkout")
    assert run.state == "AWAITING_APPROVAL", run.error
    store = open_store()
    [approval] = store.list_approvals(run_id=run_id)
    assert approval.action == first_gated
    verdict = json.loads(approval.verdict)
    assert verdict["rule"] == rule and "playbook model standing in" in verdict["reason"]
    assert store.outbox_list() == [], "the mail waits for a person instead of going out"
    screened = [json.loads(e.payload) for e in store.search_ledger(run_id=run_id, action="policy.verdict")]
    assert screened[0]["fallback"] == "playbook" and screened[0]["status"] == "require_approval"


def test_fallback_rule_leaves_calls_from_the_configured_model_alone(
        llm_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _policy_with_fallback(llm_project, "fallback: require_approval", None)
    mail = {"to": ["oncall@example.com"], "subject": "checkout latency", "body": "p95 over 2 s"}
    with ScriptedOpenAIServer([tool_reply("send_email", mail), text_reply("mailed on-call")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        run_id, run = start("Check deployment checkout")
    assert run.state == "COMPLETED", run.error
    assert [m.subject for m in open_store().outbox_list()] == ["checkout latency"]
    [screened] = [json.loads(e.payload) for e in open_store().search_ledger(run_id=run_id, action="policy.verdict")]
    assert (screened["fallback"], screened["status"]) == (None, "allow")
    assert screened["verdict"]["rule"] == "tools.send_email.when[0]"


# -- the `fallback:` key in policy files -------------------------------------------------------------


TOOLS = {"send_email": {}, "get_metrics": {}}


def _load(root: Path, *texts: str) -> Any:
    folder = root / "policies"
    for old in folder.glob("*.yaml"):
        old.unlink()
    for i, text in enumerate(texts):
        (folder / f"{i}.yaml").write_text(text)
    return load_project_policy(root, tools=TOOLS)


def test_policy_files_accept_fallback_and_the_strictest_file_wins(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    policy = _load(tmp_path, "fallback: require_approval\ntools:\n  get_metrics: {verdict: allow}\n",
                   "tools:\n  send_email:\n    verdict: allow\n    fallback: deny\n")
    assert policy.evaluate("get_metrics", {}).verdict == "allow"
    gated = policy.evaluate("get_metrics", {}, fallback=True)
    assert (gated.verdict, gated.rule) == ("require_approval", "fallback")
    denied = policy.evaluate("send_email", {}, fallback=True)
    assert (denied.verdict, denied.rule) == ("deny", "tools.send_email.fallback")
    assert _load(tmp_path, "fallback: deny\n", "fallback: require_approval\n").data.fallback == "deny"
    assert _load(tmp_path, "fallback: require_approval\n", "fallback: policy\n").data.fallback == "require_approval"


def test_policy_cases_can_screen_a_call_as_proposed_by_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    policy = _load(tmp_path, "tools:\n  get_metrics: {verdict: allow, fallback: require_approval}\n")
    cases = tmp_path / "policies" / "x.cases.yaml"
    cases.write_text("- {action: get_metrics, expect: allow}\n"
                     "- {action: get_metrics, fallback: true, expect: require_approval,\n"
                     "   rule: tools.get_metrics.fallback}\n")
    assert [r.passed for r in run_policy_cases(policy, cases)] == [True, True]


@pytest.mark.parametrize(("text", "line", "where"), [
    ("version: 1\nfallback: ask_someone\ntools: {}\n", 2, "fallback"),
    ("tools:\n  get_metrics:\n    verdict: allow\n    fallback: true\n", 4, "tools.get_metrics.fallback"),
    ("tools:\n  get_metrics:\n    verdict: allow\n    fallbak: deny\n", 4, "tools.get_metrics.fallbak: unknown key"),
])
def test_a_bad_fallback_value_fails_closed_naming_file_and_line(tmp_path: Path, text: str, line: int,
                                                                where: str) -> None:
    (tmp_path / "policies").mkdir()
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert str(err.value).startswith(f"policies/0.yaml:{line}: {where}")
