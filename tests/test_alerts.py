"""Alertmanager's webhook over real HTTP on loopback: one run per firing group, repeats and resolutions recorded."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentops import flow, service
from agentops.api.server import ApiServer
from agentops.backends import sim_exporter
from agentops.db import open_store
from agentops.engine.project import load_project
from agentops.service import tokens
from agentops.settings import reset_settings
from tests.alertmanager_server import AlertmanagerServer
from tests.conftest import ROOT
from tests.pg_server import _free_port
from tests.prometheus_server import PrometheusServer


@flow
def alert_unlisted(note: str = "") -> str:
    """A flow the policy's start_flow rule does not list."""
    return note


@pytest.fixture
def receiver(ops_db_project: Path) -> Iterator[tuple[str, dict[str, str]]]:
    shutil.copytree(ROOT / "flows", ops_db_project / "flows", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    load_project()
    headers = {role: {"Authorization": f"Bearer {tokens.add_token(f'am-{role}', role)}"}
               for role in ("viewer", "operator")}
    server = ApiServer("127.0.0.1", _free_port())
    server.start()
    try:
        yield f"{server.url}/api/v1/alerts/alertmanager", headers
    finally:
        server.stop()


def notification(group: str = "{}:{alertname=\"HighCPU\"}", status: str = "firing", deployment: str = "web-app",
                 fingerprints: tuple[str, ...] = ("a1b2c3d4e5f60718",), **labels: str) -> dict[str, Any]:
    common = {"alertname": "HighCPU", "deployment": deployment, "severity": "page", **labels}
    return {"version": "4", "groupKey": group, "status": status, "receiver": "agentops", "truncatedAlerts": 0,
            "groupLabels": {"alertname": common["alertname"]}, "commonLabels": common,
            "commonAnnotations": {"summary": f"CPU above 90% on {deployment}", "description": "for 5 minutes"},
            "externalURL": "http://127.0.0.1:9093",
            "alerts": [{"status": status, "labels": {**common, "pod": f"{deployment}-{i}"},
                        "annotations": {}, "startsAt": "2026-12-02T14:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": fp}
                       for i, fp in enumerate(fingerprints)]}


def alert_runs() -> list[Any]:
    return service.list_runs(trigger="alert", limit=100)


def test_a_firing_group_starts_one_incident_run_and_its_repeats_do_not(
        receiver: tuple[str, dict[str, str]]) -> None:
    url, headers = receiver
    first = httpx.post(url, json=notification(), headers=headers["operator"])
    assert first.status_code == 201, first.text
    run_id = first.json()["run_id"]
    run = service.get_run(run_id)
    assert (run.flow_name, run.trigger, run.created_by) == ("incident_response", "alert", "am-operator")
    assert json.loads(run.parameters) == {"deployment": "web-app", "note": "CPU above 90% on web-app for 5 minutes"}
    for fingerprints in [("a1b2c3d4e5f60718",), ("a1b2c3d4e5f60718", "ffff000011112222")]:
        again = httpx.post(url, json=notification(fingerprints=fingerprints), headers=headers["operator"])
        assert again.status_code == 200 and again.json() == {"outcome": "active", "run_id": run_id,
                                                             "reason": "a run for this alert group has not ended yet"}
    assert [r.id for r in alert_runs()] == [run_id]
    received = open_store().search_ledger(action="alert.received", limit=10)
    assert [e.run_id for e in received] == [run_id]
    facts = json.loads(received[0].payload)
    assert facts["labels"]["alertname"] == "HighCPU" and facts["alerts"][0]["fingerprint"] == "a1b2c3d4e5f60718"
    assert len(open_store().search_ledger(action="alert.repeated", run_id=run_id, limit=10)) == 2


def test_resolved_is_recorded_on_the_run_and_a_new_firing_after_the_cooldown_starts_anew(
        receiver: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, headers = receiver
    run_id = httpx.post(url, json=notification(), headers=headers["operator"]).json()["run_id"]
    resolved = httpx.post(url, json=notification(status="resolved"), headers=headers["operator"])
    assert resolved.status_code == 200 and resolved.json()["outcome"] == "resolved"
    assert resolved.json()["run_id"] == run_id
    recorded = open_store().search_ledger(action="alert.resolved", run_id=run_id, limit=10)
    assert len(recorded) == 1 and json.loads(recorded[0].payload)["status"] == "resolved"
    stranger = httpx.post(url, json=notification(group="never-fired", status="resolved"), headers=headers["operator"])
    assert stranger.json()["outcome"] == "unknown_group" and len(alert_runs()) == 1
    service.cancel(run_id)
    soon = httpx.post(url, json=notification(), headers=headers["operator"])
    assert soon.status_code == 200 and soon.json()["outcome"] == "recent" and soon.json()["run_id"] == run_id
    monkeypatch.setenv("AGENTOPS_ALERT_COOLDOWN_SECONDS", "0")
    reset_settings()
    second = httpx.post(url, json=notification(), headers=headers["operator"])
    assert second.status_code == 201 and second.json()["run_id"] != run_id
    assert len(alert_runs()) == 2


def test_notifications_arriving_together_start_one_run(receiver: tuple[str, dict[str, str]]) -> None:
    url, headers = receiver
    start = threading.Barrier(8)
    codes: list[int] = []

    def post() -> None:
        start.wait()
        codes.append(httpx.post(url, json=notification(group="burst"), headers=headers["operator"],
                                timeout=60).status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 7 + [201]
    assert len(alert_runs()) == 1


def test_a_start_the_role_or_the_policy_refuses_starts_nothing_and_holds_no_claim(
        receiver: tuple[str, dict[str, str]], ops_db_project: Path) -> None:
    url, headers = receiver
    viewer = httpx.post(url, json=notification(), headers=headers["viewer"])
    assert viewer.status_code == 403 and "needs one of" in viewer.json()["error"]
    (ops_db_project / "alerts.yaml").write_text(
        "alertmanager:\n  - match: {alertname: Unlisted}\n    flow: alert_unlisted\n"
        "    parameters: {note: '$note ($severity)'}\n")
    for _ in range(2):  # refused each time: the refusal does not leave the group looking active
        denied = httpx.post(url, json=notification(group="unlisted", alertname="Unlisted"),
                            headers=headers["operator"])
        assert denied.status_code == 403 and "policy refuses starting 'alert_unlisted'" in denied.json()["error"]
    assert len(open_store().search_ledger(action="alert.refused", limit=10)) == 2
    unknown = httpx.post(url, json=notification(group="ghost", deployment="ghost"), headers=headers["operator"])
    assert unknown.status_code == 422 and "unknown deployment 'ghost'" in unknown.json()["error"]
    assert alert_runs() == []
    started = httpx.post(url, json=notification(), headers=headers["operator"])  # the viewer's try held nothing
    assert started.status_code == 201


@pytest.mark.parametrize("body", [
    {"version": "3", "groupKey": "g", "status": "firing", "alerts": []},
    {"version": "4", "groupKey": "", "status": "firing", "alerts": []},
    {"version": "4", "groupKey": "g" * 10_001, "status": "firing", "alerts": []},
    {"version": "4", "groupKey": "g", "status": "exploded", "alerts": []},
    {"version": "4", "groupKey": "g", "status": "firing", "alerts": [{"status": "firing", "labels": {"a": 1}}]},
])
def test_malformed_notifications_are_refused_before_anything_is_written(
        receiver: tuple[str, dict[str, str]], body: dict[str, Any]) -> None:
    url, headers = receiver
    response = httpx.post(url, json=body, headers=headers["operator"])
    assert response.status_code == 422
    assert alert_runs() == [] and open_store().search_ledger(action="alert.received", limit=1) == []


RULES = """
groups:
  - name: simulated
    rules:
      - alert: HighCPU
        expr: >
          100 * sum(rate(container_cpu_usage_seconds_total{pod=~"web-app-.*"}[5s]))
          / sum(kube_pod_container_resource_requests{pod=~"web-app-.*",resource="cpu"}) > 80
        for: 3s
        labels: {deployment: web-app, severity: page}
        annotations: {summary: "CPU above 80% on web-app"}
"""


def wait_until(condition: Any, what: str, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_prometheus_fires_alertmanager_posts_and_one_run_starts_until_resolved(sqlite_project: Path) -> None:
    """Debian's prometheus evaluates a rule on the simulated CPU; Debian's alertmanager posts to the API."""
    for folder in ("tools", "prompts", "policies", "flows"):
        shutil.copytree(ROOT / folder, sqlite_project / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    list(service.init_project())
    load_project()
    api = ApiServer("127.0.0.1", _free_port())
    api.start()
    exporter, exporter_port = sim_exporter.serve("127.0.0.1", 0)
    manager = AlertmanagerServer(f"{api.url}/api/v1/alerts/alertmanager", tokens.add_token("alertmanager", "operator"))
    prom = PrometheusServer([f"127.0.0.1:{exporter_port}"], rules=RULES, alertmanager=manager.address)
    try:
        manager.start()
        prom.start()
        wait_until(lambda: alert_runs(), "the alert's run")
        [run] = alert_runs()
        assert (run.flow_name, json.loads(run.parameters)["deployment"]) == ("incident_response", "web-app")
        wait_until(lambda: len(open_store().search_ledger(action="alert.repeated", run_id=run.id, limit=10)) >= 2,
                   "two repeated notifications")
        assert len(alert_runs()) == 1
        open_store().scale({"idempotency_key": "test:relieve", "deployment": "web-app", "from_replicas": 6,
                            "to_replicas": 30, "run_id": None, "ts": time.time()}, {})
        wait_until(lambda: open_store().search_ledger(action="alert.resolved", run_id=run.id, limit=1),
                   "the resolved notification")
        assert len(alert_runs()) == 1
    finally:
        prom.close()
        manager.close()
        exporter.shutdown()
        api.stop()


def test_the_whole_loop_alert_run_approval_over_the_api_and_resolution(sqlite_project: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule fires; the run reads its metrics through Prometheus, proposes doubling web-app and waits; an
    approver's token approves over the API; the worker scales; the CPU falls and the resolution lands on the run."""
    from agentops.cli.serve import Services

    for folder in ("tools", "prompts", "policies", "flows"):
        shutil.copytree(ROOT / folder, sqlite_project / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    list(service.init_project())
    exporter, exporter_port = sim_exporter.serve("127.0.0.1", 0)
    api_port = _free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    manager = AlertmanagerServer(f"{api_url}/api/v1/alerts/alertmanager", tokens.add_token("alertmanager", "operator"))
    approver = {"Authorization": f"Bearer {tokens.add_token('alice', 'approver')}"}
    prom = PrometheusServer([f"127.0.0.1:{exporter_port}"], rules=RULES, alertmanager=manager.address)
    monkeypatch.setenv("AGENTOPS_PROMETHEUS_URL", prom.url)
    monkeypatch.setenv("AGENTOPS_PROMETHEUS_RATE_WINDOW", "5s")
    reset_settings()
    services = Services(with_app=False, api_port=api_port, on_event=lambda _line: None)
    try:
        services.start()
        manager.start()
        prom.start()
        wait_until(lambda: httpx.get(f"{api_url}/api/v1/approvals", headers=approver).json(), "the scale request")
        [request] = httpx.get(f"{api_url}/api/v1/approvals", headers=approver).json()
        [run] = alert_runs()
        assert request["run_id"] == run.id and request["action"] == "scale_deployment"
        assert request["args"] == {"name": "web-app", "replicas": 12}
        metrics = [s for s in httpx.get(f"{api_url}/api/v1/runs/{run.id}/steps", headers=approver).json()
                   if s["name"].endswith("tool:get_metrics")]
        assert metrics and '"source":"prometheus"' in metrics[0]["output"].replace(" ", "")
        decided = httpx.post(f"{api_url}/api/v1/approvals/{request['id']}/decision", headers=approver,
                             json={"decision": "approve", "args_digest": request["args_digest"]})
        assert decided.status_code == 200, decided.text
        wait_until(lambda: service.get_run(run.id).state == "COMPLETED", "the run to finish")
        assert open_store().deployment("web-app").replicas == 12  # type: ignore[union-attr]
        wait_until(lambda: open_store().search_ledger(action="alert.resolved", run_id=run.id, limit=1),
                   "the resolved notification")
        assert len(alert_runs()) == 1
    finally:
        prom.close()
        manager.close()
        services.stop()
        exporter.shutdown()
