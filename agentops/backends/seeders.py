"""Seeds for the embedded backends, run by `agentops init`: the simulated cluster and the sample sales data.

Each seeder is idempotent and returns a line to print when it changed something.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from agentops.backends import cluster_sim
from agentops.db import Store


def seed_cluster(store: Store) -> str | None:
    now = time.time()
    added = store.seed_deployments(cluster_sim.seed_rows(now))
    if store.count_metric_samples() == 0:
        store.add_metric_samples(cluster_sim.history_rows(now))
    return f"seeded the simulated cluster: {added} deployments" if added else None


def seed_sample_data(root: Path) -> str | None:
    from agentops.backends.sales_data import ensure_sample_data  # numpy stays off the CLI's cold start

    written = ensure_sample_data(root)
    return f"wrote the sample sales data: {written.relative_to(root)}" if written else None


def seed_all(store: Store, root: Path) -> Iterator[str]:
    for line in (seed_cluster(store), seed_sample_data(root)):
        if line:
            yield line
