"""The simulated cluster as a Prometheus exporter: the series cAdvisor, kube-state-metrics and an instrumented app
would expose, so the Prometheus backend reads simulated and real clusters with the same queries."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from agentops.backends import cluster_sim

if TYPE_CHECKING:
    from agentops.db.schema import Deployment

LATENCY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 241))
"""Histogram bounds in seconds, 50 ms apart up to 12 s: the p95 read back is within one bucket of the truth."""


class SimulatedClusterCollector(Collector):
    """Counters advance at each scrape by the current rates times the time since the last scrape."""

    def __init__(self, deployments: Callable[[], list[Deployment]]) -> None:
        self._deployments = deployments
        self._lock = threading.Lock()
        self._last = time.time()
        self._cpu_seconds: dict[tuple[str, str, str], float] = defaultdict(float)  # (namespace, pod) -> seconds
        self._requests: dict[tuple[str, str, str], float] = defaultdict(float)  # (namespace, deployment, code)
        self._latency: dict[tuple[str, str], list[float]] = {}  # (namespace, deployment) -> cumulative buckets
        self._latency_sum: dict[tuple[str, str], float] = defaultdict(float)

    def collect(self) -> Iterator[Any]:
        with self._lock:
            now = time.time()
            dt, self._last = now - self._last, now
            deployments = self._deployments()
            for dep in deployments:
                self._advance(dep, now, dt)
            yield from self._families(deployments)

    def _advance(self, dep: Deployment, now: float, dt: float) -> None:
        m = cluster_sim.metrics(dep, now)
        for i in range(dep.replicas):
            self._cpu_seconds[(dep.namespace, f"{dep.name}-{i}", "app")] += m["cpu_percent"] / 100.0 * dt
        served = m["requests_per_s"] * dt
        key = (dep.namespace, dep.name)
        self._requests[(*key, "500")] += served * m["error_rate"]
        self._requests[(*key, "200")] += served * (1 - m["error_rate"])
        p95 = m["p95_latency_ms"] / 1000.0
        buckets = self._latency.setdefault(key, [0.0] * len(LATENCY_BUCKETS))
        for i, le in enumerate(LATENCY_BUCKETS):  # a CDF linear up to p95 (95%), then on to 2 x p95 (100%)
            share = 0.95 * le / p95 if le <= p95 else 0.95 + 0.05 * min(1.0, (le - p95) / p95)
            buckets[i] += served * min(1.0, share)
        self._latency_sum[key] += served * p95 * 0.55

    def _families(self, deployments: list[Deployment]) -> Iterator[Any]:
        replicas = GaugeMetricFamily("kube_deployment_status_replicas", "Replicas of a deployment",
                                     labels=["namespace", "deployment"])
        requests_cpu = GaugeMetricFamily("kube_pod_container_resource_requests", "Requested resources",
                                         labels=["namespace", "pod", "container", "resource", "unit"])
        for dep in deployments:
            replicas.add_metric([dep.namespace, dep.name], dep.replicas)
            for i in range(dep.replicas):
                requests_cpu.add_metric([dep.namespace, f"{dep.name}-{i}", "app", "cpu", "core"], 1.0)
        cpu = CounterMetricFamily("container_cpu_usage_seconds", "CPU time consumed",
                                  labels=["namespace", "pod", "container"])
        live = {(d.namespace, f"{d.name}-{i}") for d in deployments for i in range(d.replicas)}
        for (namespace, pod, container), seconds in self._cpu_seconds.items():
            if (namespace, pod) in live:
                cpu.add_metric([namespace, pod, container], seconds)
        requests = CounterMetricFamily("http_requests", "HTTP requests served",
                                       labels=["namespace", "deployment", "code"])
        for labels, count in self._requests.items():
            requests.add_metric(list(labels), count)
        latency = HistogramMetricFamily("http_request_duration_seconds", "HTTP request latency",
                                        labels=["namespace", "deployment"])
        for key, cumulative in self._latency.items():
            total = self._requests[(*key, "200")] + self._requests[(*key, "500")]
            bounds = [(str(le), count) for le, count in zip(LATENCY_BUCKETS, cumulative, strict=True)]
            latency.add_metric(list(key), [*bounds, ("+Inf", total)], self._latency_sum[key])
        yield from (replicas, requests_cpu, cpu, requests, latency)


def serve(host: str = "127.0.0.1", port: int = 0) -> tuple[Any, int]:
    """Serve the simulated cluster's /metrics in a thread; returns the server (call .shutdown()) and its port."""
    from agentops.db import open_store

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SimulatedClusterCollector(lambda: open_store().deployments()))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, server.server_port
