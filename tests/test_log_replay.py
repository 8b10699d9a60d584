"""Replays do not repeat log lines: a resumed run executes its flow from the top, and the lines its own code logs
again are stored once; lines of steps that really run again (a retry, a step cut short by kill -9) are kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentops import flow, get_run_logger, request_approval, service, task
from agentops.core.states import State
from agentops.db import open_store
from agentops.engine.project import load_project
from agentops.engine.registry import find_flow
from agentops.engine.runner import create_run, resume_run
from agentops.engine.worker import Worker
from agentops.governance.approvals import decide
from agentops.governance.users import add_user

tries: list[int] = []


@task
def log_replay_measure(value: int) -> int:
    get_run_logger().info("measuring %s", value)
    return value * 2


@task(retries=1, retry_delay_seconds=0)
def log_replay_flaky() -> str:
    tries.append(1)
    get_run_logger().warning("try %s", len(tries))
    if len(tries) == 1:
        raise RuntimeError("first try fails")
    return "steady"


@flow
def log_replay_two_waits() -> str:
    log = get_run_logger()
    log.info("before the first approval")
    doubled = log_replay_measure(21)
    first = request_approval("log_replay_action", {"n": 1}, reason="first")
    log.info("after the first approval: %s", first.kind)
    second = request_approval("log_replay_action", {"n": 2}, reason="second")
    log.info("after the second approval: %s", second.kind)
    log.info("done with %s", doubled)
    return log_replay_flaky()


def burst(store) -> None:  # type: ignore[no-untyped-def]
    Worker(store, poll_seconds=0.01).run(burst=True)


def messages(store, run_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [line.message for line in store.logs_for_run(run_id)]


def test_a_run_resumed_after_two_approvals_and_once_while_waiting_has_each_line_once(store, project: Path) -> None:
    tries.clear()
    add_user(store, "alice", "approver", "correct horse battery")
    run_id = create_run(log_replay_two_waits, {}, store=store)
    burst(store)
    [first] = store.list_approvals(run_id=run_id)
    from agentops.service import runs

    assert runs.resume(run_id).state == "AWAITING_APPROVAL", "resumed while the request still waits"
    decide(store, first.id, "approve", user="alice")
    burst(store)
    second = next(a for a in store.list_approvals(run_id=run_id) if a.id != first.id)
    decide(store, second.id, "approve", user="alice")
    burst(store)
    assert store.get_run(run_id).state == "COMPLETED"
    assert messages(store, run_id) == [
        "before the first approval", "measuring 21", "after the first approval: approve",
        "after the second approval: approve", "done with 42", "try 1", "try 2"], \
        "each line once, in order; both tries of the retried step are kept"
    steps = {line.message: line.step_no for line in store.logs_for_run(run_id)}
    assert steps["before the first approval"] is None and steps["measuring 21"] == 1


def test_a_line_stored_with_the_same_place_twice_is_kept_once(store, project: Path) -> None:
    run_id = create_run(log_replay_two_waits, {}, store=store)
    line = {"run_id": run_id, "step_no": None, "ts": time.time(), "level": "INFO", "message": "x",
            "line_key": "f0.0"}
    store.add_logs([line, {**line, "message": "y"}])
    store.add_logs([line])
    store.add_logs([{**line, "line_key": None}, {**line, "line_key": None}])
    assert messages(store, run_id) == ["x", "x", "x"], "lines without a place (stored before 0015) are all kept"


KILLED = '''
import os, pathlib, time
from agentops import flow, task, get_run_logger

MARKS = pathlib.Path(os.environ["LOG_REPLAY_MARKS"])


@task
def log_replay_first() -> int:
    get_run_logger().info("inside the first step")
    return 1


@task
def log_replay_slow() -> int:
    get_run_logger().info("inside the slow step")
    with open(MARKS / "slow", "a") as fh:
        fh.write("ran\\n")
    while not (MARKS / "release").exists():
        time.sleep(0.05)
    return 2


@flow
def log_replay_killed() -> int:
    log = get_run_logger()
    log.info("start")
    one = log_replay_first()
    log.info("between")
    two = log_replay_slow()
    log.info("end")
    return one + two
'''


def test_a_run_recovered_after_kill_9_has_each_of_its_flows_lines_once(store, project: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("LOG_REPLAY_MARKS", str(marks))
    (project / "flows" / "log_replay_killed.py").write_text(KILLED)
    load_project()
    run_id = create_run(find_flow("log_replay_killed"), {}, store=store)
    worker = subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker"], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (marks / "slow").exists():
            assert time.time() < deadline and worker.poll() is None, "the slow step never started"
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    assert messages(store, run_id) == ["start", "inside the first step"], "stored with the first step's row"
    (marks / "release").write_text("go")
    time.sleep(0.6)
    rescuer = Worker(store, stale_after=0.5, poll_seconds=0.01)
    assert rescuer.recover_crashed() == [run_id]
    rescuer.run(burst=True)
    assert store.get_run(run_id).state == "COMPLETED"
    assert messages(store, run_id) == ["start", "inside the first step", "between", "inside the slow step", "end"]


# A failed run resumed: what its flow logged before the failing step was stored by the first execution.
fails = {"left": 0}


@task
def replay_logs_fetch() -> int:
    get_run_logger().info("fetching")
    return 2


@task
def replay_logs_fragile(n: int) -> int:
    if fails["left"]:
        fails["left"] -= 1
        raise RuntimeError("downstream unavailable")
    return n * 21


@flow
def replay_logs_failing() -> int:
    log = get_run_logger()
    log.info("begin")
    n = replay_logs_fetch()
    log.info("between %s", n)
    answer = replay_logs_fragile(n)
    log.info("end %s", answer)
    return answer


def lines(run_id: str) -> list[tuple[int | None, str]]:
    return [(line.step_no, line.message) for line in open_store().logs_for_run(run_id)]


def drain() -> None:
    Worker(open_store(), poll_seconds=0.01).run(burst=True)


def test_a_failed_run_resumed_twice_stores_each_line_once(ops_project: Path) -> None:
    fails["left"] = 2
    run_id = service.start_run("replay_logs_failing", {})
    drain()
    assert service.get_run(run_id).state == State.FAILED
    assert lines(run_id) == [(None, "begin"), (1, "fetching"), (None, "between 2")]
    assert resume_run(run_id, store=open_store()).state == State.FAILED
    assert lines(run_id) == [(None, "begin"), (1, "fetching"), (None, "between 2")], "nothing new was reached"
    assert resume_run(run_id, store=open_store()).result == 42
    assert lines(run_id) == [(None, "begin"), (1, "fetching"), (None, "between 2"), (None, "end 42")]


# A different line at the same place on the resume: the except branch logged on the first try, success on the next.
outage = {"left": 0}


@task
def replay_logs_deploy() -> int:
    if outage["left"]:
        outage["left"] -= 1
        raise RuntimeError("API server 503")
    return 12


@flow
def replay_logs_branching() -> int:
    log = get_run_logger()
    log.info("deploying")
    log.info("deploying")
    try:
        out = replay_logs_deploy()
    except RuntimeError as exc:
        log.error("deploy failed: %s", exc)
        raise
    log.warning("deploy scaled web-app to %s replicas", out)
    log.info("deploying")
    return out


def test_a_different_line_logged_at_the_same_place_on_a_resume_is_kept(ops_project: Path) -> None:
    outage["left"] = 1
    run_id = service.start_run("replay_logs_branching", {})
    drain()
    assert service.get_run(run_id).state == State.FAILED
    first = [(None, "deploying"), (None, "deploying"), (None, "deploy failed: API server 503")]
    assert lines(run_id) == first
    assert resume_run(run_id, store=open_store()).result == 12
    assert lines(run_id) == [*first, (None, "deploy scaled web-app to 12 replicas"), (None, "deploying")], (
        "the resume's repeated lines are stored once, the new ones kept")
    keys = [line.line_key or "" for line in open_store().logs_for_run(run_id)]
    assert len(set(keys)) == 5 and all(len(k) <= 64 for k in keys)
