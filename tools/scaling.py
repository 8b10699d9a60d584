"""get_metrics and scale_deployment: the simulated cluster, or Kubernetes' scale subresource over httpx."""

from __future__ import annotations

import time
from typing import Any

import httpx
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agentops.backends import cluster_sim, prometheus
from agentops.db import open_store
from agentops.engine.toolkit import check_fence, current_run_id, idempotency_key
from agentops.settings import get_settings


class GetMetricsArgs(BaseModel):
    name: str | None = Field(default=None, description="A deployment name; omit for all deployments.")


class ScaleArgs(BaseModel):
    name: str = Field(description="The deployment to scale.")
    replicas: int = Field(ge=0, description="The desired number of replicas (absolute, not a delta).")


def _kube() -> httpx.Client | None:
    s = get_settings()
    if not s.kubernetes_url:
        return None
    headers = {"Authorization": f"Bearer {s.kubernetes_token.get_secret_value()}"} if s.kubernetes_token else {}
    return httpx.Client(base_url=s.kubernetes_url.rstrip("/"), headers=headers, timeout=30)


def _scale_path(name: str) -> str:
    return f"/apis/apps/v1/namespaces/{get_settings().kubernetes_namespace}/deployments/{name}/scale"


def get_metrics(name: str | None = None) -> dict[str, Any]:
    """Replicas, CPU %, error rate (0..1), p95 latency (ms) and requests/s per deployment."""
    metrics = prometheus.configured()
    if metrics is not None:  # Prometheus answers for every metric or the call fails: no None read as healthy
        names = [name] if name else cluster_sim.deployment_names()
        return {"deployments": [metrics.current(n) for n in names], "source": "prometheus"}
    client = _kube()
    if client is not None:
        with client:
            names = [name] if name else [d.name for d in open_store().deployments()]
            out = []
            for n in names:
                response = client.get(_scale_path(n))
                response.raise_for_status()
                out.append({"name": n, "replicas": response.json()["spec"]["replicas"], "cpu_percent": None,
                            "error_rate": None, "p95_latency_ms": None})
            return {"deployments": out, "source": "kubernetes"}
    store = open_store()
    deployments = [d for d in store.deployments() if name is None or d.name == name]
    if name is not None and not deployments:
        raise ValueError(f"unknown deployment '{name}' (known: {', '.join(d.name for d in store.deployments())})")
    return {"deployments": [cluster_sim.metrics(d) for d in deployments], "source": "simulated"}


def scale_deployment(name: str, replicas: int) -> dict[str, Any]:
    """Set a deployment's replica count, once per tool step (the idempotency key guards repeats)."""
    key = idempotency_key()
    store = open_store()
    done = store.scale_event(key)
    if done is not None:
        return {"name": name, "replicas": done.to_replicas, "previous": done.from_replicas, "status": "already applied"}
    check_fence()
    client = _kube()
    if client is not None:
        with client:
            current = client.get(_scale_path(name))
            current.raise_for_status()
            before = current.json()["spec"]["replicas"]
            patched = client.patch(_scale_path(name), json={"spec": {"replicas": replicas}},
                                   headers={"Content-Type": "application/merge-patch+json"})
            patched.raise_for_status()
    else:
        dep = store.deployment(name)
        if dep is None:
            raise ValueError(f"unknown deployment '{name}' (known: {', '.join(d.name for d in store.deployments())})")
        before = dep.replicas
    dep = store.deployment(name)
    after_metrics = {}
    if dep is not None:
        dep.replicas = replicas
        snapshot = cluster_sim.metrics(dep)
        after_metrics = {"cpu_percent": snapshot["cpu_percent"], "updated_at": time.time()}
    store.scale({"idempotency_key": key, "deployment": name, "from_replicas": before, "to_replicas": replicas,
                 "run_id": current_run_id(), "ts": time.time()}, after_metrics)
    return {"name": name, "replicas": replicas, "previous": before, "status": "scaled"}


TOOLS = [
    StructuredTool.from_function(func=get_metrics, name="get_metrics", args_schema=GetMetricsArgs,
                                 description="Read current metrics (replicas, cpu_percent, error_rate as a fraction, "
                                             "p95_latency_ms, requests_per_s) for one deployment or all of them."),
    StructuredTool.from_function(func=scale_deployment, name="scale_deployment", args_schema=ScaleArgs,
                                 metadata={"side_effect": True},
                                 description="Scale a deployment to an absolute number of replicas."),
]
