"""A throwaway Prometheus (Debian's `prometheus`) on 127.0.0.1 in a temp directory, scraping given targets twice a
second: agentops.backends.prometheus_launch, the demo's launcher, with a directory of its own per test."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from agentops.backends.prometheus_launch import PrometheusProcess, ScrapeJob, write_secret


class PrometheusServer(PrometheusProcess):
    def __init__(self, targets: list[str], interval: str = "500ms", rules: str | None = None,
                 alertmanager: str | None = None, bearer_token: str | None = None) -> None:
        directory = Path(tempfile.mkdtemp(prefix="agentops-prometheus-"))
        token = None if bearer_token is None else write_secret(directory / "token", bearer_token)
        super().__init__(directory, [ScrapeJob("targets", targets, token)], interval=interval, rules=rules,
                         alertmanager=alertmanager)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
