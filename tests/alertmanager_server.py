"""A throwaway Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1, posting to one webhook."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx

from tests.pg_server import _free_port
from tests.server_process import stop_process, wait_until_ready


class AlertmanagerServer:
    """Every alert goes to `webhook` with the bearer token, grouped by alertname and deployment, repeated often."""

    def __init__(self, webhook: str, token: str) -> None:
        binary = shutil.which("prometheus-alertmanager")
        if binary is None:
            raise RuntimeError("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager); "
                               ".ci/run installs it")
        self.binary = binary
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="agentops-alertmanager-"))
        token_file = self.dir / "token"
        token_file.write_text(token)
        os.chmod(token_file, 0o600)
        (self.dir / "alertmanager.yml").write_text(
            "route:\n  receiver: agentops\n  group_by: [alertname, deployment]\n  group_wait: 1s\n"
            "  group_interval: 1s\n  repeat_interval: 2s\n"
            "receivers:\n  - name: agentops\n    webhook_configs:\n"
            f"      - url: {webhook!r}\n        send_resolved: true\n"
            f"        http_config:\n          authorization:\n            credentials_file: {str(token_file)!r}\n")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={self.dir / 'alertmanager.yml'}", f"--storage.path={self.dir / 'data'}",
             f"--web.listen-address={self.address}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "alertmanager.log", "wb"))  # noqa: SIM115
        ready = f"http://{self.address}/-/ready"
        wait_until_ready(self.process, lambda: httpx.get(ready, timeout=2).status_code == 200,
                         f"alertmanager on {self.address}", self.dir / "alertmanager.log",
                         not_yet=(httpx.HTTPError,))

    def close(self) -> None:
        stop_process(self.process)
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)
