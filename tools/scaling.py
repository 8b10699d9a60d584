"""get_metrics and scale_deployment: the simulated cluster, or Kubernetes' scale subresource over httpx."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agentops.backends import cluster_sim, kubernetes, prometheus
from agentops.db import open_store
from agentops.engine.toolkit import check_fence, current_run_id, idempotency_key


class GetMetricsArgs(BaseModel):
    name: str | None = Field(default=None, description="A deployment name; omit for all deployments.")


class ScaleArgs(BaseModel):
    name: str = Field(description="The deployment to scale.")
    replicas: int = Field(ge=0, description="The desired number of replicas (absolute, not a delta).")


def get_metrics(name: str | None = None) -> dict[str, Any]:
    """Replicas, CPU %, error rate (0..1), p95 latency (ms) and requests/s per deployment."""
    metrics = prometheus.configured()
    if metrics is not None:  # Prometheus answers for every metric or the call fails: no None read as healthy
        names = [name] if name else cluster_sim.deployment_names()
        return {"deployments": [metrics.current(n) for n in names], "source": "prometheus"}
    client = kubernetes.client()
    if client is not None:
        with client:
            names = [name] if name else [d.name for d in open_store().deployments()]
            out = [{"name": n, "replicas": kubernetes.replicas(client, n), "cpu_percent": None, "error_rate": None,
                    "p95_latency_ms": None} for n in names]
            return {"deployments": out, "source": "kubernetes"}
    store = open_store()
    deployments = [d for d in store.deployments() if name is None or d.name == name]
    if name is not None and not deployments:
        raise ValueError(f"unknown deployment '{name}' (known: {', '.join(d.name for d in store.deployments())})")
    return {"deployments": [cluster_sim.metrics(d) for d in deployments], "source": "simulated"}


def scale_deployment(name: str, replicas: int) -> dict[str, Any]:
    """Set a deployment's replica count, once per tool step (the idempotency key guards repeats). The absolute
    patch is always sent (a count already in effect is left as it is by the server, and a change made between the
    read and the patch is overridden by the approved count); a count that was already in effect is recorded and
    answered as a no-op."""
    key = idempotency_key()
    store = open_store()
    done = store.scale_event(key)
    if done is not None:
        if done.from_replicas == done.to_replicas:
            return _no_op(name, done.to_replicas)
        return {"name": name, "replicas": done.to_replicas, "previous": done.from_replicas, "status": "already applied"}
    check_fence()
    client = kubernetes.client()
    if client is not None:
        with client:
            before = kubernetes.replicas(client, name)
            kubernetes.patch_replicas(client, name, replicas)
    else:
        dep = store.deployment(name)
        if dep is None:
            raise ValueError(f"unknown deployment '{name}' (known: {', '.join(d.name for d in store.deployments())})")
        before = dep.replicas
    event = {"idempotency_key": key, "deployment": name, "from_replicas": before, "to_replicas": replicas,
             "run_id": current_run_id(), "ts": time.time()}
    if before == replicas:
        store.scale(event, {})  # the simulated "patch": sets the approved count, which changes nothing unless moved
        return _no_op(name, replicas)
    dep = store.deployment(name)
    after_metrics = {}
    if dep is not None:
        dep.replicas = replicas
        snapshot = cluster_sim.metrics(dep)
        after_metrics = {"cpu_percent": snapshot["cpu_percent"], "updated_at": time.time()}
    store.scale(event, after_metrics)
    return {"name": name, "replicas": replicas, "previous": before, "status": "scaled"}


def _no_op(name: str, replicas: int) -> dict[str, Any]:
    return {"name": name, "replicas": replicas, "previous": replicas, "status": "no-op",
            "note": f"no-op: {name} already at {replicas} replicas"}


TOOLS = [
    StructuredTool.from_function(func=get_metrics, name="get_metrics", args_schema=GetMetricsArgs,
                                 description="Read current metrics (replicas, cpu_percent, error_rate as a fraction, "
                                             "p95_latency_ms, requests_per_s) for one deployment or all of them."),
    StructuredTool.from_function(func=scale_deployment, name="scale_deployment", args_schema=ScaleArgs,
                                 metadata={"side_effect": True},
                                 description="Scale a deployment to an absolute number of replicas."),
]
