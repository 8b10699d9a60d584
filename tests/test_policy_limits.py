"""Rate limits and per-run budgets hold when many workers, processes and threads ask at the same moment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentops import flow, task
from agentops.agents import Agent
from agentops.agents.models.scripted import ScriptedChatModel
from agentops.db import open_store
from agentops.engine.project import load_project
from agentops.engine.registry import find_flow
from agentops.engine.runner import create_run
from agentops.errors import BudgetExceeded, RunFailed
from tests.conftest import ROOT, _reset_process_state, make_project

SCALE_FLOW = '''
import os, pathlib, time
from agentops import flow
from agentops.agents import Agent


@flow
def scale_once(n: int) -> dict:
    """Wait for the starting gun, then ask to scale web-app (allowed by the policy, 3 an hour)."""
    gun = pathlib.Path(os.environ["RACE_GUN"])
    while not gun.exists():
        time.sleep(0.01)
    outcome = Agent(name="ops", prompt="incident", tools=["scale_deployment"]).use(
        "scale_deployment", name="web-app", replicas=2 + n % 5)
    return {"status": outcome.status, "rule": (outcome.verdict or {}).get("rule")}
'''


@pytest.fixture
def governed(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This repository's tools, prompts and policies with the embedded backends seeded, on SQLite and PostgreSQL."""
    root = make_project(tmp_path, db_url, monkeypatch)
    for folder in ("tools", "prompts", "policies"):
        shutil.copytree(ROOT / folder, root / folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    from agentops.service.setup import init_project

    list(init_project())
    yield root
    _reset_process_state()


@pytest.mark.timeout(600)
def test_three_an_hour_lets_exactly_three_through_from_three_worker_processes(governed: Path, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    gun = tmp_path / "go"
    monkeypatch.setenv("RACE_GUN", str(gun))
    (governed / "flows" / "scale_once.py").write_text(SCALE_FLOW)
    load_project()
    store = open_store()
    runs = [create_run(find_flow("scale_once"), {"n": n}, store=store) for n in range(20)]
    workers = [subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker", "--burst", "-c", "4"],
                                env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for _ in range(3)]
    try:
        deadline = time.time() + 120
        while sum(1 for r in runs if store.get_run(r).state == "RUNNING") < 8:
            assert time.time() < deadline, "the workers never claimed the runs"
            assert all(w.poll() is None for w in workers), "a worker exited early"
            time.sleep(0.05)
        gun.write_text("go")
        for w in workers:
            _, err = w.communicate(timeout=180)
            assert w.returncode == 0, err.decode()[-2000:]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    outcomes = [json.loads(store.get_run(r).result or "null") for r in runs]
    assert [store.get_run(r).state for r in runs] == ["COMPLETED"] * 20
    assert sum(1 for o in outcomes if o["status"] == "ok") == 3
    assert sorted({o["rule"] for o in outcomes if o["status"] != "ok"}) == ["tools.scale_deployment.rate_limit"]
    assert len(store.scale_events()) == 3, "exactly three scale actions reached the cluster"
    denials = [json.loads(e.payload)["reason"] for e in store.search_ledger(action="policy.verdict", limit=100)
               if json.loads(e.payload)["status"] == "refused"]
    assert len(denials) == 17 and all("3 of 3 scale_deployment calls" in d for d in denials)


def test_threads_taking_one_rate_window_never_overfill_it(store) -> None:  # type: ignore[no-untyped-def]
    results: list[bool] = []
    start = threading.Barrier(16)

    def take(i: int) -> None:
        start.wait()
        results.append(store.take_rate("race:key", 5, 3600, use_id=f"run:{i}")[0])

    threads = [threading.Thread(target=take, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 5 and results.count(False) == 11


def test_a_step_run_again_keeps_its_slot_and_is_not_counted_twice(store) -> None:  # type: ignore[no-untyped-def]
    assert store.take_rate("k", 2, 60, now=100.0, use_id="run-a:3") == (True, 0)
    assert store.take_rate("k", 2, 60, now=101.0, use_id="run-a:3") == (True, 0), "the same step again"
    assert store.take_rate("k", 2, 60, now=102.0, use_id="run-b:3") == (True, 1)
    assert store.take_rate("k", 2, 60, now=103.0, use_id="run-c:3") == (False, 2)
    assert store.take_rate("k", 2, 60, now=161.5, use_id="run-d:3") == (True, 1), "the first use left the window"


def test_the_window_uses_the_database_clock_when_no_time_is_given(store) -> None:  # type: ignore[no-untyped-def]
    assert store.take_rate("clock", 1, 3600) == (True, 0)
    assert store.take_rate("clock", 1, 3600) == (False, 1)
    assert store.take_rate("clock", 1, 3600, now=time.time() + 3601) == (True, 0)


# -- per-run budgets under concurrency -------------------------------------------------------------


def _set_budget(root: Path, field: str, value: int) -> None:
    policy = root / "policies" / "default.yaml"
    text = policy.read_text()
    start = text.index(f"  {field}:")
    end = text.index("\n", start)
    policy.write_text(text[:start] + f"  {field}: {value}" + text[end:])


def test_parallel_tool_calls_of_one_run_never_pass_the_tool_call_budget(governed: Path) -> None:
    _set_budget(governed, "max_tool_calls", 5)
    agent = Agent(name="ops", prompt="incident", tools=["get_metrics"])
    gate = threading.Barrier(12, timeout=30)

    @task
    def probe(i: int) -> str:
        gate.wait()
        try:
            return agent.use("get_metrics", name="web-app").status
        except BudgetExceeded:
            return "over budget"

    @flow(name="parallel_probes")
    def parallel_probes() -> list[str]:
        return [f.result() for f in probe.map(range(12))]

    statuses = parallel_probes()
    assert statuses.count("ok") == 5 and statuses.count("over budget") == 7
    run = open_store().list_runs()[0]
    tool_steps = [s for s in open_store().steps_for_run(run.id) if s.kind == "tool"]
    assert len(tool_steps) == 5
    assert len(open_store().search_ledger(run_id=run.id, action="budget.exceeded")) == 7


def test_parallel_agents_of_one_run_never_pass_the_model_call_budget(governed: Path) -> None:
    from langchain_core.messages import AIMessage

    _set_budget(governed, "max_model_calls", 3)
    gate = threading.Barrier(8, timeout=30)

    @task
    def ask(i: int) -> str:
        gate.wait()
        model = ScriptedChatModel(replies=[AIMessage(content=f"answer {i}")])
        try:
            return Agent(name=f"a{i}", prompt="incident", tools=["get_metrics"], model=model).run("hi").answer
        except BudgetExceeded:
            return "over budget"

    @flow(name="parallel_agents")
    def parallel_agents() -> list[str]:
        return [f.result() for f in ask.map(range(8))]

    answers = parallel_agents()
    assert answers.count("over budget") == 5 and len({a for a in answers if a != "over budget"}) == 3
    run = open_store().list_runs()[0]
    models = [s for s in open_store().steps_for_run(run.id) if s.kind == "model" and s.state == "COMPLETED"]
    assert len(models) == 3


def test_a_resumed_run_does_not_count_its_replayed_calls_against_the_budget(governed: Path) -> None:
    """The run used its last model call before pausing for approval; on resume the replayed calls are not new
    uses, so the approved call runs (a check of recorded usage before replaying would stop the run)."""
    from langchain_core.messages import AIMessage

    from agentops.engine.worker import Worker
    from agentops.governance.approvals import decide
    from agentops.governance.users import add_user

    _set_budget(governed, "max_model_calls", 1)
    store = open_store()
    add_user(store, "ada", "approver", "correct horse battery")
    model = ScriptedChatModel(replies=[AIMessage(content="scaling", tool_calls=[
        {"name": "scale_deployment", "args": {"name": "web-app", "replicas": 12}, "id": "c1", "type": "tool_call"}])])

    @flow(name="one_call_then_approval")
    def one_call_then_approval() -> list[str]:
        agent = Agent(name="ops", prompt="incident", tools=["scale_deployment"], model=model)
        try:
            agent.run("web-app is hot")
        except BudgetExceeded as exc:
            return ["stopped", str(exc)]
        return ["finished"]

    run_id = create_run(one_call_then_approval, {}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    [appr] = store.list_approvals(run_id=run_id)
    decide(store, appr.id, "approve", user="ada")
    Worker(store, poll_seconds=0.01).run(burst=True)
    assert json.loads(store.get_run(run_id).result) == [
        "stopped", "agent 'ops' stopped: budget exhausted: 1 model calls used of 1 allowed for this run"]
    assert store.deployment("web-app").replicas == 12, "the approved call ran on resume"
    assert len(model.calls) == 1


def test_budget_exhaustion_in_a_direct_flow_call_fails_the_run(governed: Path) -> None:
    _set_budget(governed, "max_tool_calls", 1)

    @flow(name="two_uses")
    def two_uses() -> None:
        agent = Agent(name="ops", prompt="incident", tools=["get_metrics"])
        agent.use("get_metrics")
        agent.use("get_metrics")

    with pytest.raises(RunFailed, match="budget exhausted: 1 tool calls used of 1 allowed"):
        two_uses()
