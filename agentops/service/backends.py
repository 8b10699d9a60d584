"""The embedded backends as a face sees them: putting a simulated deployment back to its seeded size."""

from __future__ import annotations

import time

from agentops.backends import cluster_sim
from agentops.core.ledger import Event
from agentops.db import open_store


def restore_seeded_deployment(name: str, *, actor: str) -> tuple[int, int] | None:
    """Reset a simulated deployment to its seeded replicas; (before, after) if it changed, recorded in the ledger."""
    store = open_store()
    seeded = next(row for row in cluster_sim.seed_rows(time.time()) if row["name"] == name)
    current = store.deployment(name)
    if current is None or current.replicas == seeded["replicas"]:
        return None
    store.upsert_deployment(seeded)
    store.append_events([Event(actor=actor, action="demo.deployment_restored",
                               payload={"deployment": name, "replicas_before": current.replicas,
                                        "replicas": seeded["replicas"]})])
    return current.replicas, seeded["replicas"]
