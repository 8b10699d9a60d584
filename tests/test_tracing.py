"""OpenTelemetry traces reach an OTLP/HTTP receiver on loopback: one trace per run, whichever workers executed it,
with a span per run, execution, step, model call and tool call, GenAI attributes, the policy verdict and the
approval, and no secret anywhere in what was sent."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from agentops import flow, task
from agentops.agents import Agent
from agentops.agents.models.scripted import ScriptedChatModel
from agentops.db import open_store
from agentops.engine import tracing
from agentops.engine.runner import create_run
from agentops.engine.worker import Worker
from agentops.governance.approvals import decide
from agentops.governance.users import add_user
from tests.conftest import ROOT, _reset_process_state, make_project
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.redis_server import RedisServer
from tests.test_scale_out import STALE_AFTER, Cluster

SECRET = "hunter2-trace-secret-value"
SECRET_LOOKING = "sk-live-abcdefghijklmnop1234"

# The scripted model proposes the scale (the default policy asks for approval above 10 replicas), then answers
# once it sees the tool's result: a worker that replays the first turn gets the second reply from its own copy.
AGENT_FLOWS = '''
from langchain_core.messages import AIMessage
from agentops import flow
from agentops.agents import Agent
from agentops.agents.models.scripted import ScriptedChatModel


def reply(messages):
    if any(m.type == "tool" for m in messages):
        return AIMessage(content="scaled web-app")
    return AIMessage(content="cpu is high", tool_calls=[{"name": "scale_deployment", "id": "call-1",
                     "type": "tool_call", "args": {"name": "web-app", "replicas": 12}}])


@flow
def traced_incident(note: str) -> str:
    model = ScriptedChatModel(replies=[reply] * 4)
    return Agent(name="ops", prompt="incident", tools=["get_metrics", "scale_deployment"], model=model).run(note).answer
'''


def _scale_call(replicas: int = 12) -> AIMessage:
    return AIMessage(content="cpu is high", tool_calls=[{"name": "scale_deployment", "id": "call-1",
                                                         "type": "tool_call",
                                                         "args": {"name": "web-app", "replicas": replicas}}])


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    found = OtlpReceiver()
    found.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", found.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "agentops-test")
    monkeypatch.setenv("SERVICE_PASSWORD", SECRET)  # a secret-looking variable: its value is redacted everywhere
    tracing.shutdown()
    yield found
    tracing.shutdown()
    found.close()


def _by_name(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    named: dict[str, list[ReceivedSpan]] = collections.defaultdict(list)
    for s in spans:
        named[s.name].append(s)
    return named


def _assert_one_tree(spans: list[ReceivedSpan], trace_id: str) -> ReceivedSpan:
    """Every span is in the run's trace, one root, and every parent was sent."""
    assert spans and {s.trace_id for s in spans} == {trace_id}
    roots = [s for s in spans if not s.parent_span_id]
    assert len(roots) == 1, [s.name for s in roots]
    ids = {s.span_id for s in spans}
    assert len(ids) == len(spans), "no span sent twice"
    orphans = [s.name for s in spans if s.parent_span_id and s.parent_span_id not in ids]
    assert not orphans, orphans
    return roots[0]


def _assert_no_secret(receiver: OtlpReceiver) -> None:
    for body in receiver.bodies:
        assert SECRET.encode() not in body and SECRET_LOOKING.encode() not in body
    for s in receiver.spans:
        shown = f"{s.name} {s.attributes} {s.status_message}"
        assert SECRET not in shown and SECRET_LOOKING not in shown


def _assert_genai(spans: list[ReceivedSpan], *, model_calls: int) -> ReceivedSpan:
    named = _by_name(spans)
    chats = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert len(chats) == model_calls
    for chat in chats:
        assert chat.attributes["gen_ai.request.model"] == "ScriptedChatModel"
        assert chat.attributes["gen_ai.response.model"] == "scripted"
        assert chat.attributes["gen_ai.usage.input_tokens"] == 10
        assert chat.attributes["gen_ai.usage.output_tokens"] == 5
        assert chat.parent_span_id in {s.span_id for s in named["step ops.model"]}, "a model call inside its step"
    tools = [s for s in spans if s.attributes.get("gen_ai.tool.name") == "scale_deployment"]
    assert tools and all(t.attributes["gen_ai.operation.name"] == "execute_tool" for t in tools)
    assert {t.attributes["agentops.policy.verdict"] for t in tools} == {"require_approval"}
    [executed] = [t for t in tools if t.attributes.get("agentops.tool.status") == "ok"]
    assert executed.attributes["agentops.approval.decision"] == "approve"
    assert executed.attributes["agentops.approval.decided_by"] == "ada"
    steps = {s.attributes["agentops.task.name"] for s in spans if s.name.startswith("step ")}
    assert {"ops.model", "ops.policy", "ops.tool:scale_deployment"} <= steps
    return executed


def _wait_for(receiver: OtlpReceiver, check, message: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while not check():
        tracing.flush()
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}; received: {[s.name for s in receiver.spans]}")
        time.sleep(0.1)


def test_a_run_paused_for_approval_and_resumed_is_one_trace(ops_project: Path, receiver: OtlpReceiver) -> None:
    store = open_store()
    add_user(store, "ada", "approver", "correct horse battery")
    model = ScriptedChatModel(replies=[_scale_call(), AIMessage(content="scaled web-app")])

    @flow(name="traced_approval_flow")
    def traced_approval_flow(note: str) -> str:
        return Agent(name="ops", prompt="incident", tools=["get_metrics", "scale_deployment"],
                     model=model).run(note).answer

    run_id = create_run(traced_approval_flow, {"note": f"web-app is hot, key {SECRET_LOOKING}"}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    [appr] = store.list_approvals(run_id=run_id)
    decide(store, appr.id, "approve", user="ada")
    Worker(store, poll_seconds=0.01).run(burst=True)
    assert store.get_run(run_id).state == "COMPLETED"  # type: ignore[union-attr]
    trace_id = tracing.traceparent(run_id).split("-")[1]
    assert trace_id == run_id, "a run's trace id is its id"
    _wait_for(receiver, lambda: any(not s.parent_span_id for s in receiver.trace(trace_id)), "the root span came")
    spans = receiver.trace(trace_id)
    root = _assert_one_tree(spans, trace_id)
    assert root.name == "run traced_approval_flow" and root.attributes["agentops.run.state"] == "COMPLETED"
    executions = _by_name(spans)["execute traced_approval_flow"]
    assert len(executions) == 2 and {e.parent_span_id for e in executions} == {root.span_id}
    assert root.start_ns <= min(e.start_ns for e in executions) and root.end_ns >= max(e.end_ns for e in executions)
    assert [e.attributes["agentops.run.state"] for e in sorted(executions, key=lambda e: e.start_ns)] == [
        "AWAITING_APPROVAL", "COMPLETED"]
    _assert_genai(spans, model_calls=2)
    assert root.resource["service.name"] == "agentops-test"
    _assert_no_secret(receiver)


def test_an_error_naming_a_secret_reaches_no_span(sqlite_project: Path, receiver: OtlpReceiver) -> None:
    @task
    def log_in(note: str) -> str:
        raise PermissionError(f"login with {os.environ['SERVICE_PASSWORD']} refused ({note})")

    @flow(name="traced_leaky_flow")
    def traced_leaky_flow(note: str) -> str:
        return log_in(note)

    store = open_store()
    run_id = create_run(traced_leaky_flow, {"note": SECRET_LOOKING}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    assert store.get_run(run_id).state == "FAILED"  # type: ignore[union-attr]
    _wait_for(receiver, lambda: any(not s.parent_span_id for s in receiver.trace(run_id)), "the root span came")
    spans = receiver.trace(run_id)
    root = _assert_one_tree(spans, run_id)
    [step] = _by_name(spans)["step log_in"]
    assert step.attributes["error.type"] == "PermissionError" and step.status_code == 2  # ERROR
    assert "[REDACTED]" in step.status_message and "[REDACTED]" in root.status_message
    _assert_no_secret(receiver)


def test_a_bad_otel_setting_is_one_line_and_no_run(sqlite_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    (sqlite_project / "flows" / "plain.py").write_text(
        "from agentops import flow\n\n\n@flow\ndef plain() -> int:\n    return 1\n")
    for name, value, said in [("OTEL_TRACES_EXPORTER", "zipkin", "OTEL_TRACES_EXPORTER=zipkin"),
                              ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTLP/HTTP only")]:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", name: value}
        done = subprocess.run([sys.executable, "-m", "agentops.cli", "run", "plain"], capture_output=True,
                              text=True, env=env, cwd=sqlite_project, timeout=120)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and said in lines[0], done.stderr
    assert open_store().list_runs(flow="plain") == []


# -- across two Celery workers --------------------------------------------------------------------


@pytest.fixture
def traced_cluster(tmp_path: Path, pg_server, receiver: OtlpReceiver,  # type: ignore[no-untyped-def]
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    broker = RedisServer()
    broker.start()
    url = pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    root = make_project(tmp_path, url, monkeypatch)
    for folder in ("tools", "prompts", "policies"):
        shutil.copytree(ROOT / folder, root / folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "flows" / "traced.py").write_text(AGENT_FLOWS)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("SCALE_MARKS", str(marks))
    monkeypatch.setenv("AGENTOPS_BROKER_URL", broker.url)
    monkeypatch.setenv("AGENTOPS_STALE_AFTER_SECONDS", str(STALE_AFTER))
    _reset_process_state()
    from agentops.service.setup import init_project

    list(init_project())
    found = Cluster(root, marks, broker)
    yield found
    found.close()
    broker.close()
    _reset_process_state()


def test_one_trace_per_run_across_two_celery_workers(traced_cluster: Cluster, receiver: OtlpReceiver) -> None:
    from agentops import service

    cluster = traced_cluster
    add_user(cluster.store, "ada", "approver", "correct horse battery")
    first = cluster.start_worker(concurrency=1)
    run_id = service.start_run("traced_incident", {"note": f"web-app at 95%, key {SECRET_LOOKING}"})
    cluster.wait(lambda: cluster.state(run_id) == "AWAITING_APPROVAL", "the run paused for approval")
    _wait_for(receiver, lambda: bool(receiver.where(lambda s: s.name == "execute traced_incident")),
              "the first worker exported its execution")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    [appr] = cluster.store.list_approvals(run_id=run_id)
    decide(cluster.store, appr.id, "approve", user="ada")  # sent with the run's traceparent; nobody takes it yet
    cluster.start_worker(concurrency=1)
    cluster.wait_completed(run_id)
    _wait_for(receiver, lambda: any(not s.parent_span_id for s in receiver.trace(run_id)), "the root span came")

    spans = receiver.trace(run_id)
    root = _assert_one_tree(spans, run_id)
    assert root.name == "run traced_incident" and root.attributes["agentops.run.state"] == "COMPLETED"
    executions = sorted(_by_name(spans)["execute traced_incident"], key=lambda e: e.start_ns)
    assert len(executions) == 2 and {e.parent_span_id for e in executions} == {root.span_id}
    workers = [e.attributes["agentops.worker.id"] for e in executions]
    pids = [e.resource["process.pid"] for e in executions]
    assert workers[0] != workers[1] and pids[0] != pids[1], "two worker processes executed the run"
    executed = _assert_genai(spans, model_calls=2)
    assert executed.resource["process.pid"] == pids[1], "the second worker made the approved call"
    assert all(s.resource["service.name"] == "agentops-test" for s in spans)
    _assert_no_secret(receiver)
