"""`agentops demo --with-prometheus`: Debian's Prometheus (and Alertmanager, when installed) on loopback around the
demo. Prometheus scrapes the simulated cluster's exporter and agentops' own /metrics; `get_metrics` reads through
it; a rule on the simulated CPU fires, Alertmanager posts to the demo's API with a token the demo made, and the
alert's incident_response run waits for approval. Everything lives under the demo's folder and is stopped by PID."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentops import service
from agentops.backends import prometheus, sim_exporter
from agentops.backends.prometheus_launch import (
    ALERTMANAGER,
    INSTALL,
    PROMETHEUS,
    AlertmanagerProcess,
    PrometheusProcess,
    ScrapeJob,
    find_binary,
    free_port,
    write_secret,
)
from agentops.cli.demo import INCIDENT_DEPLOYMENT, DemoState, wait_settled
from agentops.errors import AgentOpsError, MetricsUnavailable
from agentops.service import tokens
from agentops.settings import reset_settings

RATE_WINDOW = "15s"
"""The rate() window of the demo's queries and rule: short, so the CPU falls in Prometheus soon after a scale."""
WINDOW_SCRAPES = 14
"""Scrapes (one a second) in the window before a rate reads true: rate() divides by the whole window."""

RULES = f"""groups:
  - name: agentops-demo
    rules:
      - alert: HighCPU
        expr: >
          100 * sum(rate(container_cpu_usage_seconds_total{{pod=~"{INCIDENT_DEPLOYMENT}-.*"}}[{RATE_WINDOW}]))
          / sum(kube_pod_container_resource_requests{{pod=~"{INCIDENT_DEPLOYMENT}-.*",resource="cpu"}}) > 80
        for: 5s
        labels: {{deployment: {INCIDENT_DEPLOYMENT}, severity: page}}
        annotations: {{summary: "CPU above 80% on {INCIDENT_DEPLOYMENT}"}}
"""


def alertmanager_installed() -> bool:
    """ConfigError (one line: how to install) without `prometheus`; whether `prometheus-alertmanager` is there."""
    find_binary(PROMETHEUS)
    return shutil.which(ALERTMANAGER) is not None


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


@dataclass
class PrometheusStack:
    """The demo's exporter, Prometheus and Alertmanager; `stop` ends what `start` began."""

    prometheus: PrometheusProcess
    alertmanager: AlertmanagerProcess | None
    exporter_port: int
    exporter: Any = None

    @classmethod
    def prepare(cls, folder: Path, api_host: str, api_port: int, with_alertmanager: bool) -> PrometheusStack:
        """Configs and token files under `folder`; API tokens for Prometheus (viewer) and Alertmanager (operator)."""
        api = f"{_loopback(api_host)}:{api_port}"
        scrape_token = write_secret(folder / "prometheus" / "agentops.token", tokens.add_token("prometheus", "viewer"))
        manager = None
        if with_alertmanager:
            alert_token = write_secret(folder / "alertmanager" / "agentops.token",
                                       tokens.add_token("alertmanager", "operator"))
            manager = AlertmanagerProcess(folder / "alertmanager", f"http://{api}/api/v1/alerts/alertmanager",
                                          alert_token, group_wait="1s", group_interval="5s", repeat_interval="1m")
        exporter_port = free_port()
        prom = PrometheusProcess(folder / "prometheus",
                                 [ScrapeJob("cluster", [f"127.0.0.1:{exporter_port}"]),
                                  ScrapeJob("agentops", [api], scrape_token)],
                                 interval="1s", rules=RULES if manager else None,
                                 alertmanager=manager.address if manager else None)
        return cls(prom, manager, exporter_port)

    def start(self, say: Callable[[str], None]) -> None:
        """Start them (stopped by the kernel too if this process dies) and point this process and its children's
        get_metrics at Prometheus."""
        try:
            if self.alertmanager is not None:
                self.alertmanager.start(die_with_parent=True)
            self.prometheus.start(die_with_parent=True)
            self.exporter, _port = sim_exporter.serve("127.0.0.1", self.exporter_port)
        except BaseException:
            self.stop()
            raise
        os.environ["AGENTOPS_PROMETHEUS_URL"] = self.prometheus.url
        os.environ["AGENTOPS_PROMETHEUS_RATE_WINDOW"] = RATE_WINDOW
        reset_settings()
        say(f"prometheus {self.prometheus.url} (pid {self.prometheus.pid}) scrapes the simulated cluster "
            f"(http://127.0.0.1:{self.exporter_port}/metrics) and agentops' /metrics; config in {self.prometheus.dir}")
        if self.alertmanager is not None:
            say(f"alertmanager {self.alertmanager.url} (pid {self.alertmanager.pid}) posts alerts to the API")
        else:
            say(f"{ALERTMANAGER} is not installed: metrics only, no alerts (`{INSTALL}`)")
        say(f"  export AGENTOPS_PROMETHEUS_URL={self.prometheus.url} AGENTOPS_PROMETHEUS_RATE_WINDOW={RATE_WINDOW}")

    def wait_for_metrics(self, say: Callable[[str], None], timeout: float = 90) -> dict[str, Any]:
        """Until a rate window is full of scrapes (rate() reads low before) and get_metrics' queries all have
        values through Prometheus."""
        deadline = time.time() + timeout
        say(f"prometheus fills its {RATE_WINDOW} rate window (one scrape a second) ...")
        try:
            self.prometheus.wait_for(f'count_over_time(up{{job="cluster"}}[{RATE_WINDOW}]) >= {WINDOW_SCRAPES}',
                                     timeout)
        except RuntimeError as exc:
            raise AgentOpsError(str(exc)) from None
        while True:
            backend = prometheus.configured()
            if backend is None:
                raise AgentOpsError("AGENTOPS_PROMETHEUS_URL is not set for the demo")
            try:
                values = backend.current(INCIDENT_DEPLOYMENT)
            except MetricsUnavailable as exc:
                if time.time() > deadline:
                    raise AgentOpsError(f"prometheus had no metrics for {INCIDENT_DEPLOYMENT} within "
                                        f"{timeout:.0f}s: {exc}") from None
                time.sleep(0.5)
                continue
            say(f"get_metrics through prometheus: {INCIDENT_DEPLOYMENT} at {values['cpu_percent']:.0f}% CPU, "
                f"{values['replicas']:.0f} replicas")
            return values

    def stop(self) -> list[str]:
        """Stop what was started, each by its PID's process group; what was stopped, in words."""
        stopped = []
        if self.exporter is not None:
            self.exporter.shutdown()
            self.exporter = None
        for server in (self.prometheus, self.alertmanager):
            if server is not None and server.process is not None:
                stopped.append(f"{server.what} (pid {server.pid})")
                server.stop()
        return stopped


def wait_for_alert_run(say: Callable[[str], None], timeout: float = 120) -> DemoState:
    """The incident_response run Alertmanager's notification started, once it waits (or ends)."""
    say("waiting for the HighCPU alert: the rule fires after 5 s above 80%, then Alertmanager posts to the API")
    deadline = time.time() + timeout
    runs = service.list_runs(trigger="alert", flow="incident_response", limit=1)
    while not runs:
        if time.time() > deadline:
            raise AgentOpsError(f"no alert started a run within {timeout:.0f}s (see the alertmanager log)")
        time.sleep(0.5)
        runs = service.list_runs(trigger="alert", flow="incident_response", limit=1)
    wait_settled(runs[0].id, 60)
    outcome = service.run_outcome(runs[0].id)
    say(f"alert HighCPU fired: run {outcome.run_id} ({outcome.flow}): {outcome.words}")
    return DemoState(incident_run_id=outcome.run_id, approval_ids=[w.id for w in outcome.waiting])
