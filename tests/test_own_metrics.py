"""agentops' own /metrics: counted from the database at scrape time (runs by other processes too), behind a token,
scraped by Debian's real Prometheus and read back with PromQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentops import flow, service, task
from agentops.api.server import ApiServer
from agentops.db import open_store
from agentops.engine.project import load_project
from agentops.engine.worker import Worker
from agentops.governance.users import add_user
from agentops.service import tokens
from agentops.service.metrics import metrics_exposition
from tests.conftest import ROOT
from tests.pg_server import _free_port
from tests.prometheus_server import PrometheusServer

RELEASE = threading.Event()


@task
def metrics_wait() -> str:
    RELEASE.wait(60)
    return "released"


@flow
def metrics_blocking() -> str:
    """Holds a worker (and its heartbeat) until the test releases it."""
    return metrics_wait()


class Scenario:
    """Runs in every state the metrics count: an incident decided and finished, one waiting, a queued run, a due
    schedule, a run a worker is executing (its heartbeat fresh)."""

    def __init__(self) -> None:
        add_user(open_store(), "otto", "operator", None)
        add_user(open_store(), "alice", "approver", None)
        done = service.start_run("incident_response", {"deployment": "web-app", "note": "95% CPU"}, user="otto")
        self.waiting = service.start_run("incident_response", {"deployment": "web-app", "note": "again"}, user="otto")
        Worker(open_store(), poll_seconds=0.01).run(burst=True)
        [request] = service.pending_approvals_for(done)
        service.decide(request.id, "approve", user="alice", args_digest=request.args_digest)
        Worker(open_store(), poll_seconds=0.01).run(burst=True)
        assert service.get_run(done).state == "COMPLETED"
        assert service.get_run(self.waiting).state == "AWAITING_APPROVAL"
        self.queued = service.start_run("hello", {"name": "later"}, user="otto")
        service.schedules.add_schedule("hello", interval_seconds=3600, user="otto")
        RELEASE.clear()
        self.blocking = service.start_run("metrics_blocking", {}, user="otto", queue=False)
        self.thread = threading.Thread(target=service.execute_here, args=(self.blocking,), daemon=True)
        self.thread.start()

    def release(self) -> None:
        RELEASE.set()
        self.thread.join(30)


def _scenario(root: Path) -> Iterator[Scenario]:
    shutil.copytree(ROOT / "flows", root / "flows", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    load_project()
    made = Scenario()
    try:
        yield made
    finally:
        made.release()


@pytest.fixture
def scenario(ops_db_project: Path) -> Iterator[Scenario]:
    """On SQLite and PostgreSQL."""
    yield from _scenario(ops_db_project)


@pytest.fixture
def sqlite_scenario(ops_project: Path) -> Iterator[Scenario]:
    """One real Prometheus is enough: SQLite only (the exposition test covers PostgreSQL)."""
    yield from _scenario(ops_project)


def expected() -> dict[str, Counter[tuple[str, ...]]]:
    """What the metrics should say, counted through the service layer rather than the metrics' SQL."""
    runs = service.list_runs(limit=1000)
    steps = [s for r in runs for s in service.run_steps(r.id)]
    return {
        "runs": Counter((r.flow_name, r.state) for r in runs),
        "steps": Counter((s.kind, s.state) for s in steps),
        "models": Counter(("playbook",) for s in steps if s.kind == "model"),
        "tools": Counter((s.name.split("tool:")[1],) for s in steps if s.kind == "tool"),
        "waiting": Counter((a.action,) for a in service.list_approvals("pending")),
        "decided": Counter((a.status,) for a in service.list_approvals("all") if a.decided_at is not None),
    }


def samples(text: str) -> dict[str, dict[tuple[str, ...], float]]:
    found: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(v for k, v in sorted(s.labels.items()) if k != "le")
                                         + ((s.labels["le"],) if "le" in s.labels else ())] = s.value
    return found


def test_the_exposition_counts_what_the_database_holds(scenario: Scenario) -> None:
    text = metrics_exposition()[0].decode()
    got = samples(text)
    want = expected()
    assert {k: int(v) for k, v in got["agentops_runs"].items()} == \
        {(flow_name, state): n for (flow_name, state), n in want["runs"].items()}
    assert {k: int(v) for k, v in got["agentops_steps_in_state"].items()} == dict(want["steps"])
    assert {k: int(v) for k, v in got["agentops_steps_total"].items()} == \
        dict(Counter((kind,) for (kind, _state), n in want["steps"].items() for _ in range(n)))
    assert got["agentops_queue_depth"][()] == 1
    assert got["agentops_approvals_waiting"] == {("scale_deployment",): 1.0}
    assert got["agentops_approval_decision_seconds_count"] == {k: float(v) for k, v in want["decided"].items()}
    assert got["agentops_model_calls_total"] == {k: float(v) for k, v in want["models"].items()}
    assert {k: int(v) for k, v in got["agentops_tool_calls_total"].items()} == dict(want["tools"])
    assert sum(got["agentops_policy_verdicts_total"].values()) == sum(n for (k, _s), n in want["steps"].items()
                                                                       if k == "policy")
    assert any(rule.startswith("tools.scale_deployment") for rule, _verdict in got["agentops_policy_verdicts_total"])
    assert got["agentops_schedules_due"][()] == 1 and got["agentops_scheduler_lag_seconds"][()] >= 0
    worker = service.get_run(scenario.blocking).worker_id
    assert got["agentops_worker_running_runs"] == {(worker,): 1.0}
    assert 0 <= got["agentops_worker_heartbeat_age_seconds"][(worker,)] < 30
    durations = got["agentops_step_duration_seconds_bucket"]
    for kind in {k for k, _ in want["steps"]}:
        assert durations[(kind, "+Inf")] == got["agentops_step_duration_seconds_count"][(kind,)]
        counts = [durations[key] for key in sorted((k for k in durations if k[0] == kind and k[1] != "+Inf"),
                                                   key=lambda k: float(k[1]))]
        assert counts == sorted(counts)  # cumulative
    assert "# TYPE agentops_step_duration_seconds histogram" in text
    assert "python_gc" not in text and "process_cpu" not in text  # its own registry only


def test_prometheus_scrapes_metrics_with_a_token_and_promql_reads_the_numbers(
        sqlite_scenario: Scenario, ops_project: Path) -> None:
    env = {**os.environ, "AGENTOPS_PROJECT_DIR": str(ops_project)}
    other = subprocess.run([sys.executable, "-m", "agentops.cli", "run", "hello", "-p", "name=elsewhere"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr  # a run another process finished counts as well
    viewer = tokens.add_token("prometheus", "viewer")
    api = ApiServer("127.0.0.1", _free_port())
    api.start()
    prom = PrometheusServer([f"127.0.0.1:{api.port}"], bearer_token=viewer)
    try:
        assert httpx.get(f"{api.url}/metrics").status_code == 401
        prom.start()
        prom.wait_for("agentops_queue_depth")
        want = expected()
        assert [r["value"] for r in prom.query('up{job="targets"}')] == [1.0]
        assert prom.query("sum(agentops_runs)")[0]["value"] == sum(want["runs"].values())
        assert prom.query('agentops_runs{flow="hello",state="COMPLETED"}')[0]["value"] == \
            want["runs"][("hello", "COMPLETED")]
        assert prom.query("agentops_queue_depth")[0]["value"] == 1
        by_kind = {r["labels"]["kind"]: r["value"] for r in prom.query("sum by (kind) (agentops_steps_in_state)")}
        assert by_kind == {k: float(sum(n for (kind, _s), n in want["steps"].items() if kind == k))
                           for k, _ in want["steps"]}
        totals = {r["labels"]["kind"]: r["value"] for r in prom.query("agentops_steps_total")}
        assert totals == by_kind
        assert prom.query('agentops_model_calls_total{model="playbook"}')[0]["value"] == want["models"][("playbook",)]
        assert prom.query('agentops_tool_calls_total{tool="scale_deployment"}')[0]["value"] == \
            want["tools"][("scale_deployment",)]
        assert prom.query("sum(agentops_approvals_waiting)")[0]["value"] == 1
        median = prom.query("histogram_quantile(0.5, sum by (le) (agentops_step_duration_seconds_bucket))")
        assert median and median[0]["value"] >= 0
    finally:
        prom.close()
        api.stop()
