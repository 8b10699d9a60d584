"""A run whose worker is killed with SIGKILL mid-step is marked CRASHED and finished by another worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentops.engine.project import load_project
from agentops.engine.registry import find_flow
from agentops.engine.runner import create_run
from agentops.engine.worker import Worker

CRASHY = '''
import os, time, pathlib
from agentops import flow, task

MARKS = pathlib.Path(os.environ["CRASH_MARKS"])


def note(name: str) -> None:
    with open(MARKS / name, "a") as fh:
        fh.write("ran\\n")


@task
def crash_first() -> str:
    note("first")
    return "first"


@task
def crash_slow() -> str:
    note("slow")
    while not (MARKS / "release").exists():
        time.sleep(0.05)
    return "slow"


@flow
def crashy() -> str:
    return crash_first() + "+" + crash_slow()
'''


def wait_for(path: Path, timeout: float = 30.0) -> None:
    """Until the mark holds a whole line: `open(..., "a")` creates the file before its line is written, and a
    process stopped in between would leave its pid after the next writer's."""
    deadline = time.time() + timeout
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigkilled_worker_run_is_recovered_and_completed_steps_run_once(project: Path, tmp_path: Path,
                                                                        monkeypatch) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("CRASH_MARKS", str(marks))
    (project / "flows" / "crashy.py").write_text(CRASHY)
    load_project()
    from agentops.db import open_store

    store = open_store()
    run_id = create_run(find_flow("crashy"), {}, store=store)
    worker = subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker"], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(marks / "slow")
        assert store.get_run(run_id).state == "RUNNING"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    (marks / "release").write_text("go")
    time.sleep(0.6)
    rescuer = Worker(store, stale_after=0.5, poll_seconds=0.01)
    assert rescuer.recover_crashed() == [run_id]
    assert store.get_run(run_id).state == "CRASHED"
    rescuer.run(burst=True)
    run = store.get_run(run_id)
    assert run.state == "COMPLETED" and run.result == '"first+slow"'
    assert (marks / "first").read_text().count("ran") == 1, "the completed step survived the crash"
    assert (marks / "slow").read_text().count("ran") == 2, "the in-flight step ran again after the crash"
    history = [e.payload for e in store.search_ledger(run_id=run_id, action="run.state", ascending=True)]
    assert any('"CRASHED"' in p for p in history)


FENCED = '''
import os, pathlib, time
from agentops import flow, task
from agentops.engine.toolkit import check_fence

MARKS = pathlib.Path(os.environ["FENCE_MARKS"])


def note(name: str) -> None:
    with open(MARKS / name, "a") as fh:
        fh.write(f"{os.getpid()}\\n")


@task
def fence_first() -> str:
    note("first")
    return "first"


@task
def fence_hold(mode: str) -> str:
    note("hold")
    if os.environ.get("FENCE_HOLD") == "1":
        while not (MARKS / "release").exists():
            time.sleep(0.02)
    if mode == "effect":
        check_fence()
        note("effect")
    return "held"


@task
def fence_effect() -> str:
    check_fence()
    note("effect")
    return "effect"


@flow
def fenced(mode: str) -> str:
    first = fence_first()
    held = fence_hold(mode)
    if mode == "step":
        fence_effect()
    return first + "+" + held
'''


def pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize("mode", ["step", "effect"])
def test_a_paused_worker_past_the_stale_interval_is_fenced_when_it_wakes(project: Path, tmp_path: Path,
                                                                         monkeypatch, mode: str) -> None:
    """SIGSTOP a worker mid-step; another recovers and finishes the run; SIGCONT the first. It must record no
    step, start no effect and write no final state ("step": its step ends after the takeover; "effect": it
    reaches a tool's fence check), and the ledger shows the lease it lost."""
    from agentops.core import serialization
    from agentops.db import open_store

    stale = 1.0
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("FENCE_MARKS", str(marks))
    (project / "flows" / "fenced.py").write_text(FENCED)
    load_project()
    store = open_store()
    run_id = create_run(find_flow("fenced"), {"mode": mode}, store=store)
    env = {**os.environ, "FENCE_HOLD": "1", "AGENTOPS_STALE_AFTER_SECONDS": str(stale)}
    paused = subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(marks / "hold")
        os.kill(paused.pid, signal.SIGSTOP)
        deadline = time.time() + 30
        while run_id not in [r.id for r in store.stale_runs(stale)]:
            assert time.time() < deadline, "the paused worker's heartbeat never went stale"
            time.sleep(0.05)
        rescuer = Worker(store, stale_after=stale, poll_seconds=0.01)
        rescuer.run(burst=True)
        done = store.get_run(run_id)
        assert done.state == "COMPLETED" and done.result == '"first+held"'
        before = (done, store.steps_for_run(run_id), store.logs_for_run(run_id))
        ledger_seq = store.search_ledger(limit=1)[0].seq

        (marks / "release").write_text("go")
        os.kill(paused.pid, signal.SIGCONT)
        deadline = time.time() + 30
        while not store.search_ledger(run_id=run_id, action="run.lease_lost"):
            assert time.time() < deadline, "the woken worker never noticed its lost lease"
            assert paused.poll() is None
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(paused.pid, signal.SIGCONT)
        paused.terminate()
        try:
            paused.wait(10)
        except subprocess.TimeoutExpired:
            paused.kill()
            paused.wait(10)

    assert (store.get_run(run_id), store.steps_for_run(run_id), store.logs_for_run(run_id)) == before
    assert pids(marks / "hold") == [paused.pid, os.getpid()]
    assert pids(marks / "effect") == [os.getpid()], "the effect happened once, by the worker that owns the run"
    assert pids(marks / "first") == [paused.pid], "the completed first step was replayed, not run again"
    new_events = store.search_ledger(run_id=run_id, ascending=True, after_seq=ledger_seq)
    assert [e.action for e in new_events] == ["run.lease_lost"]
    facts = serialization.loads(new_events[0].payload)
    assert str(paused.pid) in new_events[0].actor
    assert (facts["epoch"], facts["current_epoch"], facts["state"]) == (1, 3, "COMPLETED")
