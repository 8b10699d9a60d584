"""A throwaway Prometheus (Debian's `prometheus`) on 127.0.0.1, scraping given targets twice a second."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.pg_server import _free_port
from tests.server_process import stop_process, wait_until_ready


class PrometheusServer:
    def __init__(self, targets: list[str], interval: str = "500ms", rules: str | None = None,
                 alertmanager: str | None = None, bearer_token: str | None = None) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed (apt-get install prometheus); .ci/run installs it")
        self.binary = binary
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="agentops-prometheus-"))
        config = (f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
                  f"scrape_configs:\n  - job_name: targets\n    static_configs:\n      - targets: {targets!r}\n")
        if bearer_token is not None:
            (self.dir / "token").write_text(bearer_token)
            config += f"    authorization:\n      credentials_file: {str(self.dir / 'token')!r}\n"
        if rules is not None:
            (self.dir / "rules.yml").write_text(rules)
            config += f"rule_files: [{str(self.dir / 'rules.yml')!r}]\n"
        if alertmanager is not None:
            config += f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [{alertmanager!r}]\n"
        (self.dir / "prometheus.yml").write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "prometheus.log", "wb"))  # noqa: SIM115
        wait_until_ready(self.process, lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200,
                         f"prometheus on port {self.port}", self.dir / "prometheus.log",
                         not_yet=(httpx.HTTPError,))

    def wait_for(self, query: str, timeout: float = 30) -> None:
        """Until `query` has a value (a rate() needs two scrapes in its window)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            body = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=5).json()
            if body["data"]["result"]:
                return
            time.sleep(0.2)
        raise RuntimeError(f"prometheus had no value for {query} within {timeout}s")

    def query(self, promql: str) -> list[dict[str, object]]:
        """The instant vector `promql` evaluates to now (a label set and a value per series)."""
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        if body["status"] != "success":
            raise RuntimeError(f"prometheus refused {promql}: {body}")
        return [{"labels": r["metric"], "value": float(r["value"][1])} for r in body["data"]["result"]]

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
