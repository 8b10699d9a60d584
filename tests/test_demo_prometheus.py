"""`agentops demo --with-prometheus` as a subprocess: Debian's prometheus scrapes the simulated cluster and
agentops' /metrics, get_metrics reads through it, the CPU rule's alert starts one incident_response run that waits
for approval, and Ctrl-C (or kill -9 of the demo) leaves no prometheus, alertmanager or listener behind. Without
the binary: one error line and exit 2."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from agentops import service
from agentops.backends import cluster_sim
from agentops.db import open_store
from agentops.engine.toolkit import load_tools
from tests.app_fixtures import ROOT
from tests.pg_server import _free_port
from tests.test_demo_cli import use_demo_database

needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
    reason="needs Debian's prometheus and prometheus-alertmanager (.ci/run installs them)")


@pytest.fixture
def demo_project(sqlite_project: Path) -> Path:
    for folder in ("flows", "tools", "prompts", "policies", "data"):
        shutil.copytree(ROOT / folder, sqlite_project / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return sqlite_project


class Demo:
    """The demo in a session of its own, its output gathered line by line."""

    def __init__(self, project: Path, *args: str, path: str | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
        if path is not None:
            env["PATH"] = path
        self.process = subprocess.Popen([sys.executable, "-m", "agentops.cli", "demo", *args], cwd=project, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def match(self, pattern: str, timeout: float = 180) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for m in (re.search(pattern, line) for line in list(self.lines)) if m][:1]
            if not found and self.process.poll() is not None:
                self.reader.join(5)
                raise AssertionError(f"the demo exited ({self.process.returncode}) before {pattern!r}:\n{self.output}")
            return bool(found)

        wait_until(seen, f"{pattern!r} in the demo's output", timeout)
        return found[0]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def demo_cleanup() -> Iterator[list[Demo]]:
    """Whatever a failed test left running: the demo's session, and the servers it started."""
    demos: list[Demo] = []
    yield demos
    for demo in demos:
        pids = [int(p) for p in re.findall(r"(?:prometheus|alertmanager) http://\S+ \(pid (\d+)\)", demo.output)]
        demo.kill()
        for pid in pids:
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)


@needs_prometheus
@pytest.mark.timeout(300)  # three servers, a 15 s rate window and an alert rule's wait on a shared machine
def test_the_demo_reads_metrics_through_prometheus_an_alert_starts_the_incident_and_ctrl_c_stops_all(
        demo_project: Path, demo_cleanup: list[Demo], monkeypatch: pytest.MonkeyPatch) -> None:
    api_port = _free_port()
    demo = Demo(demo_project, "--with-prometheus", "--no-app", "--api-port", str(api_port))
    demo_cleanup.append(demo)
    prom = demo.match(r"prometheus (http://127\.0\.0\.1:(\d+)) \(pid (\d+)\) scrapes the simulated cluster "
                      r"\(http://127\.0\.0\.1:(\d+)/metrics\)")
    manager = demo.match(r"alertmanager http://127\.0\.0\.1:(\d+) \(pid (\d+)\) posts alerts to the API")
    prom_url, prom_port, prom_pid, exporter_port = prom[1], int(prom[2]), int(prom[3]), int(prom[4])
    manager_port, manager_pid = int(manager[1]), int(manager[2])
    config = (demo_project / ".agentops" / "demo" / "prometheus" / "prometheus.yml").read_text()
    assert f"127.0.0.1:{exporter_port}" in config and f"127.0.0.1:{api_port}" in config  # in the demo's folder

    def targets_up() -> bool:
        active = httpx.get(f"{prom_url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return sorted((t["labels"]["job"], t["health"]) for t in active) == [("agentops", "up"), ("cluster", "up")]

    wait_until(targets_up, "both targets up (the agentops job scrapes /metrics with the demo's viewer token)")

    demo.match(r"alert HighCPU fired: run [0-9a-f]{32} \(incident_response\): waiting for approval [0-9a-f]{32}: "
               r"scale_deployment\(name=web-app, replicas=12\)")
    demo.match(r"Ctrl-C stops the demo")
    use_demo_database(demo_project, monkeypatch)
    monkeypatch.setenv("AGENTOPS_PROMETHEUS_URL", prom_url)
    monkeypatch.setenv("AGENTOPS_PROMETHEUS_RATE_WINDOW", "15s")
    [run] = service.list_runs(trigger="alert", limit=10)
    assert (run.flow_name, run.state, json.loads(run.parameters)["deployment"]) == \
        ("incident_response", "AWAITING_APPROVAL", "web-app")
    [request] = service.list_approvals()
    assert (request.run_id, request.action) == (run.id, "scale_deployment")
    received = open_store().search_ledger(action="alert.received", run_id=run.id, limit=5)
    assert len(received) == 1 and "HighCPU" in received[0].payload
    [read] = [json.loads(s.output)["result"] for s in service.run_steps(run.id) if s.name.endswith("tool:get_metrics")]
    assert read["source"] == "prometheus" and read["deployments"][0]["cpu_percent"] > 80

    # the same tool in this process, pointed at the demo's Prometheus, reads numbers from it
    now = load_tools(demo_project)["get_metrics"].invoke({"name": "web-app"})
    [web] = now["deployments"]
    assert now["source"] == "prometheus" and web["replicas"] == 6
    assert web["cpu_percent"] == pytest.approx(cluster_sim.metrics(open_store().deployment("web-app"))["cpu_percent"],
                                               rel=0.25)
    body = httpx.get(f"{prom_url}/api/v1/query", params={"query": 'sum(agentops_runs{flow="incident_response"})'},
                     timeout=5).json()
    assert float(body["data"]["result"][0]["value"][1]) >= 1  # agentops' own /metrics, scraped with the token

    # the tour: ada approves, the demo's worker scales, the CPU falls in Prometheus and the alert resolves on the run
    service.decide(request.id, "approve", user="ada", args_digest=request.args_digest)
    wait_until(lambda: service.get_run(run.id).state == "COMPLETED", "the demo's worker to finish the approved run")
    assert open_store().deployment("web-app").replicas == 12  # type: ignore[union-attr]
    wait_until(lambda: open_store().search_ledger(action="alert.resolved", run_id=run.id, limit=1),
               "Alertmanager's resolved notification on the run", 150)
    assert len(service.list_runs(trigger="alert", limit=10)) == 1

    os.kill(demo.process.pid, signal.SIGINT)
    assert demo.process.wait(60) == 0, demo.output
    demo.reader.join(10)
    assert f"stopped prometheus (pid {prom_pid}) and alertmanager (pid {manager_pid})" in demo.output
    assert not alive(prom_pid) and not alive(manager_pid)
    for port in (prom_port, manager_port, api_port, exporter_port):
        assert not listening(port), port


@needs_prometheus
@pytest.mark.timeout(300)
def test_without_alertmanager_metrics_still_come_from_prometheus_and_kill_9_takes_prometheus_along(
        demo_project: Path, demo_cleanup: list[Demo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only `prometheus` on PATH: the chat starts the incident, which reads through Prometheus; the demo killed
    with SIGKILL cannot stop anything, and the kernel stops its Prometheus (PR_SET_PDEATHSIG)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "prometheus").symlink_to(shutil.which("prometheus") or "")
    demo = Demo(demo_project, "--with-prometheus", "--no-app", "--api-port", str(_free_port()), path=str(bin_dir))
    demo_cleanup.append(demo)
    prom = demo.match(r"prometheus http://127\.0\.0\.1:(\d+) \(pid (\d+)\)")
    demo.match(r"prometheus-alertmanager is not installed: metrics only, no alerts "
               r"\(`apt-get install prometheus prometheus-alertmanager`\)")
    demo.match(r"\(incident_response\): waiting for approval [0-9a-f]{32}: scale_deployment\(name=web-app, "
               r"replicas=12\)")
    demo.match(r"Ctrl-C stops the demo")
    use_demo_database(demo_project, monkeypatch)
    [run] = service.list_runs(flow="incident_response", limit=10)
    assert run.trigger != "alert"
    [read] = [json.loads(s.output)["result"] for s in service.run_steps(run.id) if s.name.endswith("tool:get_metrics")]
    assert read["source"] == "prometheus"

    prom_port, prom_pid = int(prom[1]), int(prom[2])
    os.kill(demo.process.pid, signal.SIGKILL)
    demo.process.wait(30)
    wait_until(lambda: not alive(prom_pid), "prometheus to follow its killed parent")
    wait_until(lambda: not listening(prom_port), "prometheus' port to close")


def test_without_prometheus_on_path_it_is_one_error_line_and_exit_2(demo_project: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "agentops.cli", "demo", "--with-prometheus", "--exit"],
                          cwd=demo_project, env={**os.environ, "PATH": str(tmp_path)}, capture_output=True,
                          text=True, timeout=120)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, lines
    assert lines[0] == ("error: prometheus is not installed (not on PATH); install it with "
                        "`apt-get install prometheus prometheus-alertmanager`")
    assert not (demo_project / ".agentops" / "demo").exists()  # nothing laid down


def test_make_demo_prometheus_passes_its_port() -> None:
    done = subprocess.run(["make", "-n", "demo-prometheus", "PORT=8600"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert "agentops demo --with-prometheus --port 8600" in done.stdout


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
