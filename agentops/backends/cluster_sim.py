"""The simulated cluster behind the embedded scaling backend: metrics that follow load and replicas."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator

if TYPE_CHECKING:
    from agentops.db.schema import Deployment


SEED_DEPLOYMENTS = [
    # name, replicas, base_load (replica-equivalents at 100% CPU), baseline error rate, baseline p95 ms
    ("web-app", 6, 5.7, 0.004, 420.0),
    ("api", 4, 2.2, 0.003, 180.0),
    ("worker", 3, 1.5, 0.072, 900.0),
    ("checkout", 3, 1.6, 0.01, 2500.0),
]


def deployment_names() -> list[str]:
    """The deployments the cluster backend knows (the embedded cluster's rows; with Kubernetes, the ones it
    manages)."""
    from agentops.db import open_store

    return [d.name for d in open_store().deployments()]


def known_deployment(name: str) -> str:
    """The name, if the cluster has a deployment by that name; ValueError naming the known ones otherwise."""
    names = deployment_names()
    if name not in names:
        raise ValueError(f"unknown deployment '{name}' (known: {', '.join(names) or 'none'})")
    return name


KnownDeployment = Annotated[str, AfterValidator(known_deployment)]
"""A flow parameter naming a deployment: checked against the cluster before the run is written."""


def metrics(dep: Deployment, now: float | None = None) -> dict[str, Any]:
    """Current metrics: CPU follows load / replicas with a slow wobble; overload adds errors and latency."""
    now = time.time() if now is None else now
    load = dep.base_load * (1 + 0.03 * math.sin(2 * math.pi * now / 3600))
    cpu = max(1.0, min(100.0, 100.0 * load / max(dep.replicas, 1)))
    overload = max(0.0, cpu - 85.0) / 400.0
    return {"name": dep.name, "namespace": dep.namespace, "replicas": dep.replicas, "cpu_percent": round(cpu, 1),
            "error_rate": round(dep.error_rate + overload, 4),
            "p95_latency_ms": round(dep.p95_latency_ms * (1 + max(0.0, cpu - 70.0) / 30.0), 0),
            "requests_per_s": round(100 * load, 1)}


def seed_rows(now: float) -> list[dict[str, Any]]:
    return [{"name": n, "namespace": "default", "replicas": r, "base_load": load, "error_rate": err,
             "p95_latency_ms": p95, "cpu_percent": round(100 * load / r, 1), "updated_at": now}
            for n, r, load, err, p95 in SEED_DEPLOYMENTS]


def history_rows(now: float, hours: int = 72) -> list[dict[str, Any]]:
    """Hourly samples with a daily season (busy afternoons), for predictive scaling."""
    rows = []
    for name, replicas, load, _err, _p95 in SEED_DEPLOYMENTS:
        for h in range(hours, 0, -1):
            ts = now - h * 3600
            hour = time.gmtime(ts).tm_hour
            daily = 1 + 0.45 * math.sin(2 * math.pi * (hour - 8) / 24)
            rps = 100 * load * daily * (1 + 0.02 * math.sin(h * 1.7))
            rows.append({"deployment": name, "ts": ts, "requests_per_s": round(rps, 1),
                         "cpu_percent": round(min(100.0, rps / replicas), 1)})
    return rows
