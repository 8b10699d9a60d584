"""The real ChatOpenAI/openai client path against a local OpenAI-compatible server, and kill -9 mid-loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentops.db import open_store
from agentops.engine.project import load_project
from agentops.engine.registry import find_flow
from agentops.engine.runner import create_run
from agentops.engine.worker import Worker
from tests.fakes.openai_server import ScriptedOpenAIServer, server_error, text_reply, tool_reply

FLOW = '''
from agentops import flow
from agentops.agents import Agent


@flow
def llm_incident(note: str = "web-app is at 95% CPU") -> dict:
    result = Agent(name="llm", prompt="incident", tools=["get_metrics", "scale_deployment", "send_email",
                                                        "slow_effect"]).run(note)
    return {"answer": result.answer, "model": result.model,
            "calls": [(o.name, o.status, o.content) for o in result.tool_calls]}
'''

SLOW_TOOL = '''
import os, pathlib, time
from langchain_core.tools import StructuredTool
from pydantic import BaseModel
from agentops.db import open_store
from agentops.engine.toolkit import idempotency_key

MARKS = pathlib.Path(os.environ["CRASH_MARKS"])


class Args(BaseModel):
    note: str


def slow_effect(note: str) -> dict:
    """Perform the effect, then block: a kill -9 here is after the effect but before the step is recorded."""
    message = {"idempotency_key": idempotency_key(), "sender": "a@example.com", "to": "b@example.com",
               "subject": note, "body": "", "created_at": time.time()}
    row, created = open_store().outbox_add(message)
    with open(MARKS / "effect", "a") as fh:
        fh.write(f"created={created}\\n")
    while not (MARKS / "release").exists():
        time.sleep(0.05)
    return {"created": created}


TOOLS = [StructuredTool.from_function(func=slow_effect, name="slow_effect", args_schema=Args,
                                      description="test effect", metadata={"side_effect": True})]
'''


@pytest.fixture
def llm_project(ops_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (ops_project / "flows" / "llm_incident.py").write_text(FLOW)
    (ops_project / "tools" / "slow_effect.py").write_text(SLOW_TOOL)
    (ops_project / "policies" / "slow_effect.yaml").write_text("tools:\n  slow_effect:\n    verdict: allow\n")
    monkeypatch.setenv("AGENTOPS_MODEL", "openai:gpt-4.1-mini")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-000")
    monkeypatch.setenv("CRASH_MARKS", str(ops_project))
    from agentops.settings import reset_settings

    reset_settings()
    load_project()
    return ops_project


def run_flow(note: str = "web-app is at 95% CPU") -> dict:
    store = open_store()
    run_id = create_run(find_flow("llm_incident"), {"note": note}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    run = store.get_run(run_id)
    assert run.state == "COMPLETED", run.error
    return {"run_id": run_id, **json.loads(run.result)}


def test_tool_calls_and_usage_through_the_real_openai_client(llm_project: Path, monkeypatch) -> None:
    with ScriptedOpenAIServer([tool_reply("get_metrics", {"name": "web-app"}, tokens=40),
                               text_reply("web-app is hot; no action taken", tokens=25)]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        out = run_flow()
    assert out["model"].startswith("gpt-4.1-mini") and out["calls"][0][:2] == ["get_metrics", "ok"]
    first = server.requests[0]["body"]
    assert first["model"] == "gpt-4.1-mini" and first["messages"][0]["role"] == "system"
    assert [t["function"]["name"] for t in first["tools"]] == ["get_metrics", "scale_deployment", "send_email",
                                                               "slow_effect"]
    assert server.requests[1]["body"]["messages"][-1]["role"] == "tool"
    steps = [s for s in open_store().steps_for_run(out["run_id"]) if s.kind == "model"]
    assert [s.tokens for s in steps] == [40, 25]
    meta = json.loads(steps[0].meta)
    assert meta["usage"]["total_tokens"] == 40 and meta["prompt_hash"] and meta["latency_ms"] > 0
    assert "sk-test-not-a-real-key" not in json.dumps([e.payload for e in open_store().search_ledger(limit=500)])


def test_unreachable_model_falls_back_to_the_playbook_labelled(llm_project: Path, monkeypatch) -> None:
    with ScriptedOpenAIServer([server_error()] * 12) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        store = open_store()
        run_id = create_run(find_flow("llm_incident"), {"note": "Check deployment web-app"}, store=store)
        Worker(store, poll_seconds=0.01).run(burst=True)
    steps = [json.loads(s.meta) for s in store.steps_for_run(run_id) if s.kind == "model"]
    assert steps[0]["fallback"] == "playbook" and steps[0]["model"] == "playbook"
    assert steps[0]["fallback_reason"].startswith("the model is unreachable: ") and "500" in steps[0]["fallback_reason"]
    assert store.get_run(run_id).state == "AWAITING_APPROVAL", "the playbook proposed scaling web-app to 12"


def test_kill_9_between_effect_and_record_runs_the_effect_once_and_never_recalls_the_model(
        llm_project: Path, monkeypatch) -> None:
    with ScriptedOpenAIServer([tool_reply("slow_effect", {"note": "restart"}), text_reply("done")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        store = open_store()
        run_id = create_run(find_flow("llm_incident"), {}, store=store)
        worker = subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker"], env=os.environ.copy(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while not (llm_project / "effect").exists():
                assert time.time() < deadline and worker.poll() is None
                time.sleep(0.05)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert server.completions == 1
        (llm_project / "release").write_text("go")
        time.sleep(0.6)
        rescuer = Worker(store, stale_after=0.5, poll_seconds=0.01)
        assert rescuer.recover_crashed() == [run_id]
        rescuer.run(burst=True)
    assert store.get_run(run_id).state == "COMPLETED"
    assert server.completions == 2, "the recorded model call was not sent again; only the final turn was"
    assert (llm_project / "effect").read_text().splitlines() == ["created=True", "created=False"]
    assert len([m for m in store.outbox_list() if m.subject == "restart"]) == 1
