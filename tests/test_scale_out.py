"""Celery workers on a Redis broker, PostgreSQL as the one source of truth: real servers on loopback, workers as
subprocesses. Every scenario checks that every run completes, that no completed step runs again and that each
keyed effect happens once, whatever the broker or the workers did."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentops.core import serialization
from tests.app_fixtures import copy_tools
from tests.conftest import _reset_process_state, make_project
from tests.redis_server import RedisServer

STALE_AFTER = 2.0

FLOWS = '''
import os, pathlib, time
from agentops import flow, request_approval, task
from agentops.engine.toolkit import check_fence, idempotency_key

MARKS = pathlib.Path(os.environ["SCALE_MARKS"])


def note(line: str) -> None:
    with open(MARKS / "log", "a") as fh:
        fh.write(line + "\\n")


@task
def first(tag: str) -> str:
    note(f"first {tag}")
    return tag


@task
def hold(tag: str) -> str:
    note(f"hold {tag}")
    while (MARKS / f"hold-{tag}").exists():
        time.sleep(0.05)
    return tag


@task
def effect(tag: str) -> str:
    key = idempotency_key()
    check_fence()
    note(f"effect {tag} {key}")
    return key


@flow
def scaled(tag: str) -> str:
    first(tag)
    hold(tag)
    return effect(tag)


@flow(queue="reports")
def scale_routed(tag: str) -> str:
    first(tag)
    return effect(tag)


@flow
def celery_gated(tag: str) -> str:
    first(tag)
    decision = request_approval("scale_deployment", {"name": "web-app", "replicas": 3}, reason="test",
                                requester="user:maker")
    return effect(tag) if decision.approved else "rejected"
'''

POLICY = """
tools:
  scale_deployment:
    verdict: require_approval
"""


@pytest.fixture
def broker() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def cluster(tmp_path: Path, pg_server, broker: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    url = pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    root = make_project(tmp_path, url, monkeypatch)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("SCALE_MARKS", str(marks))
    monkeypatch.setenv("AGENTOPS_BROKER_URL", broker.url)
    monkeypatch.setenv("AGENTOPS_STALE_AFTER_SECONDS", str(STALE_AFTER))
    _reset_process_state()
    (root / "flows" / "scale.py").write_text(FLOWS)
    copy_tools(root)
    (root / "policies").mkdir(exist_ok=True)
    (root / "policies" / "scale.yaml").write_text(POLICY)
    found = Cluster(root, marks, broker)
    yield found
    found.close()
    _reset_process_state()


class Cluster:
    """The test's project, its Celery workers (each its own process group) and the marks its steps leave."""

    def __init__(self, root: Path, marks: Path, broker: RedisServer) -> None:
        from agentops.db import open_store
        from agentops.engine.project import load_project

        self.root, self.marks, self.broker = root, marks, broker
        load_project()
        self.store = open_store()
        self.workers: list[subprocess.Popen[bytes]] = []
        self._sweeping: tuple[threading.Event, threading.Thread] | None = None

    def start_worker(self, concurrency: int = 2, *, queues: tuple[str, ...] = (),
                     celery: bool = True) -> subprocess.Popen[bytes]:
        log = open(self.marks / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115 (the process owns it)
        kind = ["--celery"] if celery else []
        worker = subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker", *kind, "-c", str(concurrency),
                                   *(arg for q in queues for arg in ("-Q", q))],
                                  cwd=self.root, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.workers.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        """SIGKILL to the worker's whole process group: its main process and every pool process."""
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)

    def start_sweeper(self) -> None:
        """The scheduler holding the lease, with a sweeper that re-sends quickly (tests cannot wait 10 s)."""
        from agentops.engine.sweeper import Sweeper
        from agentops.scheduling.scheduler import Scheduler

        stop = threading.Event()
        scheduler = Scheduler(self.store, tick_seconds=0.1, sweeper=Sweeper(self.store, resend_after=1.0,
                                                                           every=0.2))
        thread = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
        thread.start()
        self._sweeping = (stop, thread)

    def queue(self, flow: str, tag: str, *, hold: bool = False) -> str:
        from agentops import service

        if hold:
            (self.marks / f"hold-{tag}").write_text("held")
        return service.start_run(flow, {"tag": tag})

    def release(self, tag: str) -> None:
        (self.marks / f"hold-{tag}").unlink()

    def lines(self) -> list[str]:
        path = self.marks / "log"
        return path.read_text().splitlines() if path.exists() else []

    def wait(self, what: Callable[[], bool], message: str, timeout: float = 90.0) -> None:
        deadline = time.time() + timeout
        while not what():
            if time.time() > deadline:
                logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in self.marks.glob("worker-*.log"))
                raise AssertionError(f"{message} within {timeout}s; worker logs:\n{logs}")
            time.sleep(0.1)

    def state(self, run_id: str) -> str:
        run = self.store.get_run(run_id)
        assert run is not None
        return run.state

    def wait_completed(self, *run_ids: str) -> None:
        self.wait(lambda: all(self.state(r) == "COMPLETED" for r in run_ids), f"runs {run_ids} completed")

    def check_once(self, *tags: str) -> None:
        """Each completed step ran once per run (`hold` may run again: it was cut off mid-step), each keyed effect
        happened once."""
        counts = collections.Counter(self.lines())
        for tag in tags:
            assert counts[f"first {tag}"] == 1, f"step 'first' of {tag} ran {counts[f'first {tag}']} times"
            effects = [line for line in counts if line.startswith(f"effect {tag} ")]
            assert len(effects) == 1 and counts[effects[0]] == 1, f"the effect of {tag}: {effects}"

    def dropped(self, run_id: str) -> list[str]:
        return [serialization.loads(e.payload)["reason"]
                for e in self.store.search_ledger(run_id=run_id, action="run.delivery_dropped", ascending=True)]

    def close(self) -> None:
        if self._sweeping is not None:
            stop, thread = self._sweeping
            stop.set()
            thread.join(30)
        for worker in self.workers:
            self.kill(worker)


def test_a_queued_run_is_sent_and_executed_by_a_celery_worker(cluster: Cluster) -> None:
    cluster.start_worker()
    run_ids = [cluster.queue("scaled", f"q{i}") for i in range(3)]
    cluster.wait_completed(*run_ids)
    cluster.check_once("q0", "q1", "q2")
    for run_id in run_ids:
        claims = [serialization.loads(e.payload) for e in cluster.store.search_ledger(
            run_id=run_id, action="run.state", ascending=True) if '"RUNNING"' in e.payload]
        assert len(claims) == 1 and claims[0]["delivery"], "claimed once, by a broker delivery"


def test_a_worker_killed_mid_step_loses_its_run_to_another_after_the_sweeper_recovers_it(cluster: Cluster) -> None:
    cluster.start_sweeper()
    doomed = cluster.start_worker(concurrency=1)
    run_id = cluster.queue("scaled", "k", hold=True)
    cluster.wait(lambda: "hold k" in cluster.lines(), "the run reached its held step")
    cluster.kill(doomed)
    cluster.release("k")  # the next execution goes through the step the dead one never finished
    cluster.start_worker(concurrency=1)
    cluster.wait_completed(run_id)
    cluster.check_once("k")
    states = [serialization.loads(e.payload)["state"]
              for e in cluster.store.search_ledger(run_id=run_id, action="run.state", ascending=True)]
    assert states == ["PENDING", "RUNNING", "CRASHED", "RUNNING", "COMPLETED"]
    assert cluster.lines().count("hold k") == 2


def test_a_duplicate_delivery_is_dropped_and_recorded(cluster: Cluster) -> None:
    from agentops.engine.celery_app import send

    cluster.start_worker(concurrency=2)
    run_id = cluster.queue("scaled", "d", hold=True)
    cluster.wait(lambda: "hold d" in cluster.lines(), "the run reached its held step")
    send(run_id)  # a second message while the first delivery executes the run
    cluster.wait(lambda: bool(cluster.dropped(run_id)), "the duplicate was dropped")
    cluster.release("d")
    cluster.wait_completed(run_id)
    send(run_id)  # and one after it finished
    cluster.wait(lambda: len(cluster.dropped(run_id)) == 2, "the late duplicate was dropped")
    assert cluster.dropped(run_id) == ["running elsewhere with a fresh heartbeat", "already COMPLETED"]
    cluster.check_once("d")
    assert cluster.lines().count("hold d") == 1


def test_an_approval_decided_while_no_worker_runs_is_resumed_by_the_next_worker(cluster: Cluster) -> None:
    from agentops.governance.approvals import decide
    from agentops.governance.users import add_user

    for name in ("maker", "alice"):
        add_user(cluster.store, name, "approver", "correct horse battery")
    first_worker = cluster.start_worker()
    run_id = cluster.queue("celery_gated", "a")
    cluster.wait(lambda: cluster.state(run_id) == "AWAITING_APPROVAL", "the run paused for approval")
    assert cluster.broker.command("LLEN", "agentops") == ":0", "the paused run's message was acknowledged"
    cluster.kill(first_worker)
    [appr] = cluster.store.list_approvals(run_id=run_id)
    decide(cluster.store, appr.id, "approve", user="alice")  # its commit sends the run; nobody takes it yet
    assert cluster.state(run_id) == "PENDING"
    assert cluster.broker.command("LLEN", "agentops") == ":1"
    cluster.start_worker()
    cluster.wait_completed(run_id)
    cluster.check_once("a")


def test_queued_messages_lost_in_a_broker_restart_are_sent_again_by_the_sweeper(cluster: Cluster) -> None:
    run_ids = [cluster.queue("scaled", f"r{i}") for i in range(3)]
    assert cluster.broker.command("LLEN", "agentops") == ":3"
    cluster.broker.restart()
    assert cluster.broker.command("LLEN", "agentops") == ":0", "persistence is off: the queue is gone"
    cluster.start_worker()
    cluster.start_sweeper()
    cluster.wait_completed(*run_ids)
    cluster.check_once("r0", "r1", "r2")


def test_a_killed_pool_process_gives_its_message_back_and_its_run_is_recovered(cluster: Cluster) -> None:
    cluster.start_sweeper()
    worker = cluster.start_worker(concurrency=1)
    run_id = cluster.queue("scaled", "p", hold=True)
    cluster.wait(lambda: "hold p" in cluster.lines(), "the run reached its held step")
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGKILL)  # the pool process only: the worker's main process forks another
    cluster.release("p")
    cluster.wait_completed(run_id)
    cluster.check_once("p")
    assert worker.poll() is None, "the worker itself lived on"
    states = [serialization.loads(e.payload)["state"]
              for e in cluster.store.search_ledger(run_id=run_id, action="run.state", ascending=True)]
    assert states == ["PENDING", "RUNNING", "CRASHED", "RUNNING", "COMPLETED"]
    cluster.wait(lambda: bool(cluster.dropped(run_id)), "the message given back for the lost process was dropped")


def test_a_run_queued_while_the_broker_is_down_is_committed_and_sent_later(cluster: Cluster) -> None:
    cluster.broker.stop()
    run_id = cluster.queue("scaled", "down")  # the send fails after the commit; the caller still gets its run
    assert cluster.state(run_id) == "PENDING"
    cluster.broker.start()
    cluster.start_worker()
    cluster.start_sweeper()
    cluster.wait_completed(run_id)
    cluster.check_once("down")


def test_a_worker_paused_past_the_stale_interval_is_fenced_when_it_wakes(cluster: Cluster) -> None:
    cluster.start_sweeper()
    paused = cluster.start_worker(concurrency=1)
    run_id = cluster.queue("scaled", "s", hold=True)
    cluster.wait(lambda: "hold s" in cluster.lines(), "the run reached its held step")
    os.killpg(paused.pid, signal.SIGSTOP)
    try:
        cluster.wait(lambda: cluster.state(run_id) != "RUNNING", "the sweeper recovered the paused worker's run")
        cluster.release("s")
        cluster.start_worker(concurrency=1)
        cluster.wait_completed(run_id)
    finally:
        os.killpg(paused.pid, signal.SIGCONT)
    cluster.wait(lambda: bool(cluster.store.search_ledger(run_id=run_id, action="run.lease_lost")),
                 "the woken worker found its lease gone")
    cluster.check_once("s")
    run = cluster.store.get_run(run_id)
    [lost] = cluster.store.search_ledger(run_id=run_id, action="run.lease_lost")
    fenced = serialization.loads(lost.payload)
    assert run is not None and run.state == "COMPLETED"
    assert fenced["epoch"] < fenced["current_epoch"] == run.epoch, "the woken worker held an old epoch"
    assert cluster.lines().count("hold s") == 2, "both executions went through the held step"


def test_a_delivery_waits_for_a_row_lock_held_elsewhere_and_then_runs(cluster: Cluster) -> None:
    import psycopg

    run_id = cluster.queue("scaled", "l")  # sent; no worker yet
    dsn = cluster.store.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as holder, psycopg.connect(dsn, autocommit=True) as probe:
        holder.execute("SELECT id FROM flow_runs WHERE id = %s FOR UPDATE", (run_id,))
        cluster.start_worker()

        def waiting() -> bool:
            return bool(probe.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()").fetchone()[0])  # type: ignore[index]

        cluster.wait(waiting, "the delivery waited for the row lock")
        assert cluster.state(run_id) == "PENDING"
        holder.rollback()
    cluster.wait_completed(run_id)
    cluster.check_once("l")
    assert cluster.dropped(run_id) == [], "the delivery was not skipped or dropped"


def test_a_run_longer_than_the_visibility_timeout_is_delivered_again_and_the_copy_dropped(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentops.settings import reset_settings

    timeout = 2 * STALE_AFTER
    monkeypatch.setenv("AGENTOPS_BROKER_VISIBILITY_TIMEOUT_SECONDS", str(timeout))
    reset_settings()
    cluster.start_worker(concurrency=2)  # a free process for the redelivered message
    run_id = cluster.queue("scaled", "v", hold=True)
    cluster.wait(lambda: "hold v" in cluster.lines(), "the run reached its held step")
    cluster.wait(lambda: bool(cluster.dropped(run_id)), "Redis delivered the unacknowledged message again",
                 timeout=60)
    assert cluster.state(run_id) == "RUNNING", "the first delivery still runs it"
    cluster.release("v")
    cluster.wait_completed(run_id)
    cluster.check_once("v")
    assert cluster.lines().count("hold v") == 1, "the redelivery ran no step"
    assert set(cluster.dropped(run_id)) == {"running elsewhere with a fresh heartbeat"}
    claims = [e for e in cluster.store.search_ledger(run_id=run_id, action="run.state") if '"RUNNING"' in e.payload]
    assert len(claims) == 1, "claimed once"


def test_serve_with_a_broker_runs_the_sweeper_and_an_embedded_celery_worker(cluster: Cluster) -> None:
    log = open(cluster.marks / "serve.log", "wb")  # noqa: SIM115 (the process owns it)
    serve = subprocess.Popen([sys.executable, "-m", "agentops.cli", "serve", "--no-app", "--worker",
                              "--worker-concurrency", "1"], cwd=cluster.root, env=os.environ.copy(), stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    cluster.workers.append(serve)  # killed with its process group if the test fails
    run_id = cluster.queue("scaled", "sv")
    cluster.wait_completed(run_id)
    cluster.check_once("sv")
    [claim] = [serialization.loads(e.payload) for e in cluster.store.search_ledger(
        run_id=run_id, action="run.state", ascending=True) if '"RUNNING"' in e.payload]
    assert claim["delivery"], "a broker delivery claimed it: the embedded worker is a Celery worker"
    output = (cluster.marks / "serve.log").read_text()
    assert "a Celery worker (pid" in output
    worker_pid = int(output.split("a Celery worker (pid ", 1)[1].split(")", 1)[0])
    os.killpg(serve.pid, signal.SIGTERM)  # serve only: it stops its worker itself
    assert serve.wait(60) == 0
    assert not Path(f"/proc/{worker_pid}").exists() or "zombie" in Path(f"/proc/{worker_pid}/status").read_text()


def test_a_run_routed_to_a_queue_waits_for_a_worker_of_that_queue(cluster: Cluster) -> None:
    cluster.start_worker(concurrency=1)  # the default queue only
    routed = cluster.queue("scale_routed", "rq")
    plain = cluster.queue("scaled", "pq")  # queued after the routed run, so a worker taking both takes it first
    cluster.wait_completed(plain)
    assert cluster.state(routed) == "PENDING", "the default queue's worker did not take the run routed elsewhere"
    assert cluster.broker.command("LLEN", "reports") == ":1"
    assert cluster.broker.command("LLEN", "agentops") == ":0"
    cluster.start_worker(concurrency=1, queues=("reports",))
    cluster.wait_completed(routed)
    cluster.check_once("rq", "pq")
    assert [cluster.store.get_run(r).queue for r in (routed, plain)] == ["reports", None]  # type: ignore[union-attr]


def test_the_sweeper_sends_a_lost_run_again_to_its_own_queue(cluster: Cluster,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from agentops.settings import reset_settings

    # The setting routes a flow, and overrides the queue its decorator names.
    monkeypatch.setenv("AGENTOPS_FLOW_QUEUES", '{"scaled": "batch", "scale_routed": "batch"}')
    reset_settings()
    run_ids = [cluster.queue("scaled", "sb"), cluster.queue("scale_routed", "sr")]
    assert cluster.broker.command("LLEN", "batch") == ":2"
    cluster.broker.restart()  # both messages are lost
    monkeypatch.delenv("AGENTOPS_FLOW_QUEUES")  # the mapping changes; the runs keep the queue they were created with
    reset_settings()
    cluster.start_worker(concurrency=1, queues=("batch",))  # nobody consumes the default queue or "reports"
    cluster.start_sweeper()
    cluster.wait_completed(*run_ids)
    cluster.check_once("sb", "sr")


def test_a_polling_worker_with_queues_takes_only_the_runs_routed_to_them(cluster: Cluster,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTOPS_BROKER_URL")  # polling workers only
    routed = cluster.queue("scale_routed", "wr")
    plain = cluster.queue("scaled", "wp")

    def burst(*queues: str) -> str:
        done = subprocess.run([sys.executable, "-m", "agentops.cli", "worker", "--burst", "-c", "1",
                               *(arg for q in queues for arg in ("-Q", q))],
                              cwd=cluster.root, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "after 0 runs" in burst("nightly"), "no run is routed to that queue"
    assert [cluster.state(r) for r in (routed, plain)] == ["PENDING", "PENDING"]
    assert "after 1 runs" in burst("agentops")  # a run with no queue of its own is in the default queue
    assert [cluster.state(r) for r in (routed, plain)] == ["PENDING", "COMPLETED"]
    assert "after 1 runs" in burst("nightly", "reports")
    assert cluster.state(routed) == "COMPLETED"
    cluster.check_once("wr", "wp")
