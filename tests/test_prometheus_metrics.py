"""get_metrics and predictive scaling's history read through a real Prometheus scraping the simulated cluster."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentops.backends import cluster_sim, prometheus, sim_exporter
from agentops.db import open_store
from agentops.engine.toolkit import load_tools
from agentops.errors import ConfigError, MetricsUnavailable
from agentops.service.setup import init_project
from agentops.settings import reset_settings
from tests.conftest import ROOT, _reset_process_state, make_project
from tests.pg_server import _free_port
from tests.prometheus_server import PrometheusServer

RATE_TOLERANCE = 0.25
"""How far a rate over a 5 s window may read from the simulation's own number (ratios of rates are exact)."""


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, PrometheusServer]]:
    """A seeded project whose simulated cluster serves /metrics, scraped twice a second by Debian's prometheus."""
    with pytest.MonkeyPatch.context() as mp:
        tmp = tmp_path_factory.mktemp("prom")
        root = make_project(tmp, f"sqlite:///{tmp / 'agentops.db'}", mp)
        for folder in ("tools", "prompts", "policies"):
            shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
        list(init_project())
        server, port = sim_exporter.serve("127.0.0.1", 0)
        prom = PrometheusServer([f"127.0.0.1:{port}"])
        try:
            prom.start()
            mp.setenv("AGENTOPS_PROMETHEUS_URL", prom.url)
            mp.setenv("AGENTOPS_PROMETHEUS_RATE_WINDOW", "5s")
            reset_settings()
            backend = prometheus.configured()
            assert backend is not None
            # every rate() window is full of scrapes, as it would be in a Prometheus that has run for a while
            prom.wait_for("count_over_time(up[6s]) >= 11")
            yield root, prom
        finally:
            prom.close()
            server.shutdown()
            _reset_process_state()


def test_get_metrics_through_prometheus_matches_the_simulation(scraped: tuple[Path, PrometheusServer]) -> None:
    tools = load_tools(scraped[0])
    read = tools["get_metrics"].invoke({})
    truth = {d.name: cluster_sim.metrics(d) for d in open_store().deployments()}
    assert read["source"] == "prometheus"
    assert {d["name"] for d in read["deployments"]} == set(truth)
    for got in read["deployments"]:
        want = truth[got["name"]]
        assert got["replicas"] == want["replicas"]
        # rate() extrapolates a window's first and last samples to its edges only when the scrapes came on time,
        # so on a loaded machine it reads a few percent off; a wrong aggregation is off by a factor
        assert got["cpu_percent"] == pytest.approx(want["cpu_percent"], rel=RATE_TOLERANCE)
        assert got["error_rate"] == pytest.approx(want["error_rate"], abs=0.002)
        assert got["requests_per_s"] == pytest.approx(want["requests_per_s"], rel=RATE_TOLERANCE)
        bucket_ms = 1000 * (sim_exporter.LATENCY_BUCKETS[1] - sim_exporter.LATENCY_BUCKETS[0])
        assert got["p95_latency_ms"] == pytest.approx(want["p95_latency_ms"], abs=bucket_ms)


def test_predictive_scaling_history_reads_the_range_api(scraped: tuple[Path, PrometheusServer]) -> None:
    from flows.predictive_scaling import load_history

    history = load_history.fn("web-app", hours=1)
    want = cluster_sim.metrics(open_store().deployment("web-app"))["requests_per_s"]  # type: ignore[arg-type]
    assert history and all(v == pytest.approx(want, rel=RATE_TOLERANCE) for v in history)
    with pytest.raises(MetricsUnavailable, match="no history of requests_per_s for deployment 'checkout'"):
        backend = prometheus.configured()
        assert backend is not None
        now = time.time()
        backend.history("requests_per_s", "checkout", start=now - 7200, end=now - 3600, step=60)


def test_a_query_with_no_series_is_an_error_for_the_agent(scraped: tuple[Path, PrometheusServer],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_PROMETHEUS_QUERIES",
                       '{"p95_latency_ms": "histogram_quantile(0.95, sum by (le) (rate(nginx_latency_bucket'
                       '{deployment=\\"$deployment\\"}[$window])))"}')
    reset_settings()
    tools = load_tools(scraped[0])
    with pytest.raises(MetricsUnavailable, match="no value for p95_latency_ms of deployment 'api'"):
        tools["get_metrics"].invoke({"name": "api"})
    monkeypatch.setenv("AGENTOPS_PROMETHEUS_QUERIES", '{"cpu_percent": "sum(rate(nope_total[2m])) / 0"}')
    reset_settings()
    with pytest.raises(MetricsUnavailable, match="cpu_percent of deployment 'api'"):
        tools["get_metrics"].invoke({"name": "api"})
    monkeypatch.setenv("AGENTOPS_PROMETHEUS_QUERIES", '{"cpu_percent": "sum(rate(nope_total[2m])"}')
    reset_settings()
    with pytest.raises(MetricsUnavailable, match=r"refused the query for cpu_percent .*HTTP 400"):
        tools["get_metrics"].invoke({"name": "api"})
    monkeypatch.setenv("AGENTOPS_PROMETHEUS_QUERIES", '{"cpu": "up"}')
    reset_settings()
    with pytest.raises(ConfigError, match=r"unknown metrics \[.cpu.\]"):
        tools["get_metrics"].invoke({"name": "api"})


def test_hostile_deployment_names_never_reach_promql(ops_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_PROMETHEUS_URL", f"http://127.0.0.1:{_free_port()}")
    reset_settings()
    backend = prometheus.configured()
    assert backend is not None
    for name in ['web-app"} or vector(1) #', "Web_App", "", "a" * 300, "x\ny", "web-app\n"]:
        with pytest.raises(MetricsUnavailable, match="is not a Kubernetes name"):
            backend.instant("cpu_percent", name)


def test_the_exporter_serves_kube_state_metrics_names(ops_project: Path) -> None:
    server, port = sim_exporter.serve("127.0.0.1", 0)
    try:
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    assert 'kube_deployment_status_replicas{deployment="web-app",namespace="default"} 6.0' in text
    assert 'container_cpu_usage_seconds_total{container="app",namespace="default",pod="web-app-5"}' in text
    assert 'http_request_duration_seconds_bucket{deployment="checkout",le="+Inf",namespace="default"}' in text


def test_a_stopped_prometheus_is_an_error_the_agent_sees(scraped: tuple[Path, PrometheusServer]) -> None:
    scraped[1].stop()
    tools = load_tools(scraped[0])
    with pytest.raises(MetricsUnavailable, match=f"Prometheus at {scraped[1].url} is unreachable"):
        tools["get_metrics"].invoke({"name": "web-app"})
