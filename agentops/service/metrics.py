"""agentops' own metrics for Prometheus, counted from the database at each scrape (so every process's work shows,
whichever API process answers). Its own CollectorRegistry: nothing of the process's default registry leaks in."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from agentops.db import open_store
from agentops.db.metrics import Histogram

STEP_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
DECISION_BOUNDS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0,
                   86400.0)


def _histogram(name: str, doc: str, label: str, rows: list[Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for h in rows:
        buckets = [(f"{bound:g}", float(count)) for bound, count in h.buckets] + [("+Inf", float(h.count))]
        family.add_metric(list(h.labels), buckets, h.total)
    return family


class DatabaseCollector(Collector):
    """Every family from one read of the database."""

    def collect(self) -> Iterator[Metric]:
        snap = open_store().metrics_snapshot(step_bounds=STEP_BOUNDS, decision_bounds=DECISION_BOUNDS)
        runs = GaugeMetricFamily("agentops_runs", "Runs by flow and current state.", labels=["flow", "state"])
        for flow, state, count in snap.runs:
            runs.add_metric([flow, state], count)
        yield runs
        steps = GaugeMetricFamily("agentops_steps_in_state", "Steps by kind and current state.",
                                  labels=["kind", "state"])
        recorded = CounterMetricFamily("agentops_steps", "Steps recorded, by kind.", labels=["kind"])
        per_kind: dict[str, int] = {}
        for kind, state, count in snap.steps:
            steps.add_metric([kind, state], count)
            per_kind[kind] = per_kind.get(kind, 0) + count
        for kind, count in sorted(per_kind.items()):
            recorded.add_metric([kind], count)
        yield steps
        yield recorded
        yield _histogram("agentops_step_duration_seconds", "How long steps ran, by kind.", "kind", snap.step_durations)
        waiting = GaugeMetricFamily("agentops_approvals_waiting", "Approval requests waiting for a decision.",
                                    labels=["action"])
        for action, count in snap.approvals_waiting:
            waiting.add_metric([action], count)
        yield waiting
        yield _histogram("agentops_approval_decision_seconds",
                         "From an approval request to its decision (or expiry), by outcome.", "status",
                         snap.decision_latency)
        verdicts = CounterMetricFamily("agentops_policy_verdicts", "Policy verdicts on proposed tool calls, by rule.",
                                       labels=["rule", "verdict"])
        for rule, verdict, count in snap.verdicts:
            verdicts.add_metric([rule, verdict], count)
        yield verdicts
        calls = CounterMetricFamily("agentops_tool_calls", "Tool calls run, by tool.", labels=["tool"])
        errors = CounterMetricFamily("agentops_tool_errors", "Tool calls that failed, by tool.", labels=["tool"])
        for tool, count, failed in snap.tool_calls:
            calls.add_metric([tool], count)
            errors.add_metric([tool], failed)
        yield calls
        yield errors
        model_calls = CounterMetricFamily("agentops_model_calls", "Model calls, by model.", labels=["model"])
        tokens = CounterMetricFamily("agentops_model_tokens", "Tokens of model calls, by model.", labels=["model"])
        cost = CounterMetricFamily("agentops_model_cost_usd", "Cost of model calls in US dollars, by model.",
                                   labels=["model"])
        for model, count, used, usd in snap.models:
            model_calls.add_metric([model], count)
            tokens.add_metric([model], used)
            cost.add_metric([model], usd)
        yield from (model_calls, tokens, cost)
        yield GaugeMetricFamily("agentops_queue_depth", "Runs queued (PENDING) for a worker.", value=snap.queue_depth)
        yield GaugeMetricFamily("agentops_schedules_due", "Unpaused schedules whose fire time has passed.",
                                value=snap.schedules_due)
        yield GaugeMetricFamily("agentops_scheduler_lag_seconds",
                                "How long the oldest due schedule has waited to fire (0: none is due).",
                                value=snap.scheduler_lag)
        running = GaugeMetricFamily("agentops_worker_running_runs", "Runs each worker is executing.",
                                    labels=["worker"])
        age = GaugeMetricFamily("agentops_worker_heartbeat_age_seconds",
                                "Seconds since each executing worker's latest heartbeat (the database's clock).",
                                labels=["worker"])
        for worker, count, seconds in snap.workers:
            running.add_metric([worker], count)
            age.add_metric([worker], seconds)
        yield running
        yield age
        failures = CounterMetricFamily("agentops_auth_failures", "Refused API and webhook authentications (the "
                                       "last week), by kind and reason.", labels=["kind", "reason"])
        for kind, reason, count in open_store().auth_failure_counts():
            failures.add_metric([kind, reason], count)
        yield failures


def metrics_exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
