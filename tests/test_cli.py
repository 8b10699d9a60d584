"""The CLI as a user meets it: run, runs list/show/resume/cancel, flows list, worker; one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FLOWS = '''
from agentops import flow, task


@task
def cli_add(a: int, b: int) -> int:
    return a + b


@flow
def adder(a: int, b: int = 1, label: str = "sum") -> dict:
    """Add two numbers."""
    return {"label": label, "total": cli_add(a, b)}
'''


@pytest.fixture
def cli_project(sqlite_project: Path) -> Path:
    (sqlite_project / "flows" / "adder.py").write_text(FLOWS)
    return sqlite_project


def agentops(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentops.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), input=stdin, timeout=120)


def test_run_executes_now_and_runs_show_reports_steps(cli_project: Path) -> None:
    done = agentops("run", "adder", "-p", "a=2", "-p", "b=5", "-p", "label=007", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "COMPLETED" and result["result"] == {"label": "007", "total": 7}
    shown = json.loads(agentops("runs", "show", result["run_id"], "--json").stdout)
    assert [(s["name"], s["state"], s["attempts"]) for s in shown["steps"]] == [("cli_add", "COMPLETED", 1)]
    assert [h["payload"]["state"] for h in shown["history"]] == [
        "PENDING", "RUNNING", "RUNNING", "COMPLETED", "COMPLETED"]


@pytest.mark.parametrize(("args", "message"), [
    (["run", "nosuch"], "error: unknown flow 'nosuch' (known flows: adder"),
    (["run", "adder", "-p", "a=two"], "error: flow 'adder': parameter 'a': Input should be a valid integer"),
    (["run", "adder"], "error: flow 'adder': parameter 'a' is required"),
    (["run", "adder", "-p", "a"], "error: bad parameter 'a': use -p key=value"),
    (["runs", "show", "ffffffffffff"], "error: no run with id 'ffffffffffff'"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(cli_project: Path, args: list[str],
                                                             message: str) -> None:
    done = agentops(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(message), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    listed = json.loads(agentops("runs", "list", "--json").stdout)
    assert listed == []


def test_queue_then_worker_burst_drains_and_runs_list_filters(cli_project: Path) -> None:
    for a in (1, 2, 3):
        assert agentops("run", "adder", "-p", f"a={a}", "--queue").returncode == 0
    pending = json.loads(agentops("runs", "list", "--state", "PENDING", "--json").stdout)
    assert len(pending) == 3
    worker = agentops("worker", "--burst")
    assert worker.returncode == 0 and "stopped after 3 runs" in worker.stdout
    completed = json.loads(agentops("runs", "list", "--state", "completed", "--flow", "adder", "--json").stdout)
    assert sorted(r["result"]["total"] for r in completed) == [2, 3, 4]


def test_cancel_and_resume(cli_project: Path) -> None:
    queued = json.loads(agentops("run", "adder", "-p", "a=1", "--queue", "--json").stdout)["run_id"]
    assert agentops("runs", "resume", queued[:10]).returncode == 0
    again = agentops("runs", "resume", queued)
    assert again.returncode == 2 and "is COMPLETED" in again.stderr
    other = json.loads(agentops("run", "adder", "-p", "a=1", "--queue", "--json").stdout)["run_id"]
    assert agentops("runs", "cancel", other).returncode == 0
    shown = json.loads(agentops("runs", "show", other, "--json").stdout)
    assert shown["run"]["state"] == "CANCELLED"


def test_flows_list_shows_docstring_and_parameters(cli_project: Path) -> None:
    flows = json.loads(agentops("flows", "list", "--json").stdout)
    adder = next(f for f in flows if f["name"] == "adder")
    assert adder["description"] == "Add two numbers."
    assert adder["parameters"]["required"] == ["a"]
