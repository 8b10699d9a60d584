"""Predictive scaling: forecast each deployment's load from its metric history and scale ahead of a spike."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

from agentops import flow, get_run_logger, task
from agentops.agents import Agent
from agentops.backends.cluster_sim import KnownDeployment

TARGET_CPU = 70.0
"""The CPU utilisation a deployment should run at after scaling (percent)."""

planner = Agent(name="capacity", prompt="incident", tools=["get_metrics", "scale_deployment"], max_turns=6)


@task
def load_history(deployment: str, hours: int = 72) -> list[float]:
    """Hourly requests per second over the last `hours` hours, from Prometheus or the cluster's metric history."""
    import time

    from agentops.backends import prometheus
    from agentops.db import open_store

    metrics = prometheus.configured()
    if metrics is not None:
        now = time.time()
        return metrics.history("requests_per_s", deployment, start=now - hours * 3600, end=now, step=3600)
    samples = open_store().metric_samples(deployment, since=time.time() - hours * 3600)
    return [s.requests_per_s for s in samples]


@task
def forecast(history: list[float], horizon_hours: int = 6) -> list[float]:
    """Holt-Winters with a daily season (statsmodels); a flat forecast when history is too short."""
    if len(history) < 48:
        return [history[-1] if history else 0.0] * horizon_hours
    import numpy as np
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    model = ExponentialSmoothing(np.asarray(history, dtype=float), trend="add", seasonal="add",
                                 seasonal_periods=24, initialization_method="estimated").fit()
    return [max(0.0, float(v)) for v in model.forecast(horizon_hours)]


@flow
def predictive_scaling(deployment: KnownDeployment = "web-app", horizon_hours: Annotated[int, Field(gt=0, le=168)] = 6,
                       capacity_per_replica: Annotated[float, Field(gt=0)] = 100.0) -> dict:
    """Forecast a deployment's load for the next hours and let the agent propose scaling before a spike."""
    history = load_history(deployment)
    predicted = forecast(history, horizon_hours)
    peak = max(predicted) if predicted else 0.0
    needed = max(1, math.ceil(peak / (capacity_per_replica * TARGET_CPU / 100.0)))
    log = get_run_logger()
    log.info("%s: peak %.0f req/s expected in the next %dh -> %d replicas at %.0f%% CPU",
             deployment, peak, horizon_hours, needed, TARGET_CPU)
    result = planner.run(
        f"Forecast for deployment {deployment}: load will peak at {peak:.0f} requests/s within {horizon_hours} "
        f"hours, which needs {needed} replicas to stay at {TARGET_CPU:.0f}% CPU. Check its current metrics and "
        f"scale it to {needed} replicas before the spike if it has fewer.")
    return {"deployment": deployment, "predicted_peak_rps": round(peak, 1), "replicas_needed": needed,
            "forecast": [round(v, 1) for v in predicted], "agent": result.answer,
            "actions": [{"name": o.name, "args": o.args, "status": o.status} for o in result.tool_calls]}
