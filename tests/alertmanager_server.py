"""A throwaway Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1 in a temp directory, posting to one
webhook with repeats every 2 s: agentops.backends.prometheus_launch, the demo's launcher."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from agentops.backends.prometheus_launch import AlertmanagerProcess, write_secret


class AlertmanagerServer(AlertmanagerProcess):
    """Every alert goes to `webhook` with the bearer token, grouped by alertname and deployment, repeated often."""

    def __init__(self, webhook: str, token: str) -> None:
        directory = Path(tempfile.mkdtemp(prefix="agentops-alertmanager-"))
        super().__init__(directory, webhook, write_secret(directory / "token", token))

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
