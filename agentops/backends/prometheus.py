"""Deployment metrics read from Prometheus' HTTP API: one PromQL query per metric, per deployment label."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from string import Template
from typing import Any

import httpx

from agentops.errors import ConfigError, MetricsUnavailable
from agentops.settings import get_settings

_SELECTOR = 'namespace="$namespace",deployment="$deployment"'
_PODS = 'namespace="$namespace",pod=~"$deployment-.*"'
_REQUESTS = f"sum(rate(http_requests_total{{{_SELECTOR}}}[$window]))"

DEFAULT_QUERIES: dict[str, str] = {
    "replicas": f"sum(kube_deployment_status_replicas{{{_SELECTOR}}})",
    "cpu_percent": (f'100 * sum(rate(container_cpu_usage_seconds_total{{{_PODS},container!=""}}[$window]))'
                    f' / sum(kube_pod_container_resource_requests{{{_PODS},resource="cpu"}})'),
    "error_rate": f'sum(rate(http_requests_total{{{_SELECTOR},code=~"5.."}}[$window])) / {_REQUESTS}',
    "p95_latency_ms": ("1000 * histogram_quantile(0.95, sum by (le) "
                       f"(rate(http_request_duration_seconds_bucket{{{_SELECTOR}}}[$window])))"),
    "requests_per_s": _REQUESTS,
}
"""PromQL per metric for cAdvisor, kube-state-metrics and an app's `http_requests_total` and
`http_request_duration_seconds` histogram, labelled by namespace and deployment (pods named `<deployment>-...`).
`$window` is the rate() range."""

METRICS = tuple(DEFAULT_QUERIES)
# Kubernetes object names (RFC 1123 labels): nothing in them can leave a PromQL string literal.
_LABEL_VALUE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class PrometheusMetrics:
    """A Prometheus server and the query for each metric."""

    url: str
    namespace: str = "default"
    queries: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_QUERIES))
    timeout: float = 10.0
    window: str = "2m"

    def query_for(self, metric: str, deployment: str) -> str:
        if metric not in self.queries:
            raise ConfigError(f"no PromQL for metric '{metric}' (known: {', '.join(self.queries)})")
        for label, value in (("deployment", deployment), ("namespace", self.namespace)):
            if not _LABEL_VALUE.fullmatch(value):
                raise MetricsUnavailable(f"{label} {value!r} is not a Kubernetes name, so it is not queried")
        return Template(self.queries[metric]).safe_substitute(deployment=deployment, namespace=self.namespace,
                                                             window=self.window)

    def current(self, deployment: str) -> dict[str, Any]:
        """Every metric's current value for one deployment; any metric without a value raises."""
        values: dict[str, Any] = {"name": deployment, "namespace": self.namespace}
        for metric in METRICS:
            value = self.instant(metric, deployment)
            values[metric] = round(value) if metric == "replicas" else round(value, 4)
        return values

    def instant(self, metric: str, deployment: str) -> float:
        query = self.query_for(metric, deployment)
        result = self._get("/api/v1/query", {"query": query}, metric, deployment)
        if result["resultType"] == "scalar":
            return _number(result["result"][1], metric, deployment, query)
        only = _one_series(result["result"], query, f"no value for {metric} of deployment '{deployment}'",
                           metric, deployment, hint="; its exporters may not be scraped")
        return _number(only["value"][1], metric, deployment, query)

    def history(self, metric: str, deployment: str, start: float, end: float, step: float) -> list[float]:
        """The metric's values from start to end, one per step (seconds); an empty range raises."""
        query = self.query_for(metric, deployment)
        result = self._get("/api/v1/query_range", {"query": query, "start": start, "end": end, "step": step},
                           metric, deployment)
        only = _one_series(result["result"], query, f"no history of {metric} for deployment '{deployment}'",
                           metric, deployment)
        values = [float(v) for _ts, v in only["values"]]
        return [v for v in values if math.isfinite(v)]

    def _get(self, path: str, params: dict[str, Any], metric: str, deployment: str) -> dict[str, Any]:
        try:
            response = httpx.get(self.url.rstrip("/") + path, params=params, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise MetricsUnavailable(f"Prometheus at {self.url} is unreachable ({type(exc).__name__}: {exc}); "
                                     f"no {metric} for deployment '{deployment}'") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            reason = body.get("error") or response.reason_phrase
            raise MetricsUnavailable(f"Prometheus at {self.url} refused the query for {metric} of deployment "
                                     f"'{deployment}' (HTTP {response.status_code}: {reason})")
        data: dict[str, Any] = body["data"]
        return data


def _number(text: str, metric: str, deployment: str, query: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 0/0 (no requests) or a quantile over empty buckets
        raise MetricsUnavailable(f"Prometheus gives {text} for {metric} of deployment '{deployment}', not a "
                                 f"number (query: {query}); the deployment may have no traffic")
    return value


def configured() -> PrometheusMetrics | None:
    """The Prometheus backend AGENTOPS_PROMETHEUS_URL chooses, or None for the simulated cluster."""
    s = get_settings()
    if not s.prometheus_url:
        return None
    unknown = set(s.prometheus_queries) - set(DEFAULT_QUERIES)
    if unknown:
        raise ConfigError(f"setting AGENTOPS_PROMETHEUS_QUERIES names unknown metrics {sorted(unknown)} "
                          f"(known: {', '.join(DEFAULT_QUERIES)})")
    return PrometheusMetrics(url=s.prometheus_url, namespace=s.kubernetes_namespace,
                             queries={**DEFAULT_QUERIES, **s.prometheus_queries},
                             timeout=s.prometheus_timeout_seconds, window=s.prometheus_rate_window)


def _one_series(series: list[dict[str, Any]], query: str, missing: str, metric: str, deployment: str,
                hint: str = "") -> dict[str, Any]:
    """The query's one series; MetricsUnavailable when it has none (`missing` says what) or several."""
    if not series:
        raise MetricsUnavailable(f"Prometheus has {missing} (query: {query}){hint}")
    if len(series) > 1:
        raise MetricsUnavailable(f"the query for {metric} of deployment '{deployment}' returned "
                                 f"{len(series)} series, not one (query: {query}); aggregate it with sum()")
    return series[0]
