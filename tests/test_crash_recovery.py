"""A run whose worker is killed with SIGKILL mid-step is marked CRASHED and finished by another worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    deadline = time.time() + timeout
    while not path.exists():
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
