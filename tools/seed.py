"""Seeds for the embedded backends, run by `agentops init` (idempotent)."""

from __future__ import annotations

import time

from agentops import cluster_sim
from agentops.bootstrap import seeder
from agentops.store import open_store


@seeder
def seed_cluster() -> str | None:
    store = open_store()
    now = time.time()
    added = store.seed_deployments(cluster_sim.seed_rows(now))
    if store.count_metric_samples() == 0:
        store.add_metric_samples(cluster_sim.history_rows(now))
    return f"seeded the simulated cluster: {added} deployments" if added else None


@seeder
def seed_sample_data() -> str | None:
    from agentops.data.sample import ensure_sample_data
    from agentops.project import project_root

    written = ensure_sample_data(project_root())
    return f"wrote the sample sales data: {written.relative_to(project_root())}" if written else None
