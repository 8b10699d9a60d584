"""A throwaway Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1, posting to one webhook."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.pg_server import _free_port


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
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(f"http://{self.address}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.time() > deadline or self.process.poll() is not None:
                log = (self.dir / "alertmanager.log").read_text()[-2000:]
                raise RuntimeError(f"alertmanager did not start on {self.address}:\n{log}")
            time.sleep(0.1)

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(20)
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)
