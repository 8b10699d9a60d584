"""Debian's `prometheus` and `prometheus-alertmanager` as child processes on loopback: a generated config in a
directory of the caller's, a free port, a readiness wait, and a stop by the process group they were started in.

`agentops demo --with-prometheus` and the tests' fixtures both start them through this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agentops.errors import ConfigError

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
INSTALL = "apt-get install prometheus prometheus-alertmanager"
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def find_binary(name: str) -> str:
    """The binary's path on PATH; ConfigError saying how to install it when it is not there."""
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"{name} is not installed (not on PATH); install it with `{INSTALL}`")
    return path


def write_secret(path: Path, value: str) -> Path:
    """A file only its owner reads (a token for a credentials_file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value)
    return path


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _quoted(value: object) -> str:
    return repr(str(value))


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job: `host:port` targets, their metrics path, and a bearer token's file if they need one."""

    name: str
    targets: list[str]
    token_file: Path | None = None
    path: str = "/metrics"

    def config(self) -> str:
        text = (f"  - job_name: {self.name}\n    metrics_path: {self.path}\n"
                f"    static_configs:\n      - targets: [{', '.join(_quoted(t) for t in self.targets)}]\n")
        if self.token_file is not None:
            text += f"    authorization:\n      credentials_file: {_quoted(self.token_file)}\n"
        return text


class ChildServer:
    """A server binary started in its own process group, stopped by that group (SIGTERM, then SIGKILL)."""

    what = "server"

    def __init__(self, directory: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.dir / f"{self.what}.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30, die_with_parent: bool = False) -> None:
        """Start and wait until /-/ready answers 200; RuntimeError with the log's tail if it exits or times out.
        `die_with_parent`: the kernel stops it if the starting thread dies (even by kill -9)."""
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=log, start_new_session=True,
                                            preexec_fn=_die_with_parent if die_with_parent else None)
        try:
            wait_until_ready(self.process, lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200,
                             f"{self.what} on {self.address}", self.log, timeout=timeout,
                             not_yet=(httpx.HTTPError,))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process_group(self.process)
        self.process = None


class PrometheusProcess(ChildServer):
    """Prometheus scraping `jobs` every `interval`, with optional alerting rules and an Alertmanager to notify."""

    what = "prometheus"

    def __init__(self, directory: Path, jobs: list[ScrapeJob], *, interval: str = "1s", rules: str | None = None,
                 alertmanager: str | None = None, port: int | None = None, host: str = "127.0.0.1",
                 retention: str = "1h") -> None:
        super().__init__(directory, port, host)
        self.binary = find_binary(PROMETHEUS)
        self.retention = retention
        config = (f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
                  "scrape_configs:\n" + "".join(job.config() for job in jobs))
        if rules is not None:
            (self.dir / "rules.yml").write_text(rules)
            config += f"rule_files: [{_quoted(self.dir / 'rules.yml')}]\n"
        if alertmanager is not None:
            config += f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [{alertmanager!r}]\n"
        (self.dir / "prometheus.yml").write_text(config)

    def command(self) -> list[str]:
        return [self.binary, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={self.address}", f"--storage.tsdb.retention.time={self.retention}"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` evaluates to now (a label set and a value per series)."""
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        if body["status"] != "success":
            raise RuntimeError(f"prometheus refused {promql}: {body}")
        return [{"labels": r["metric"], "value": float(r["value"][1])} for r in body["data"]["result"]]

    def wait_for(self, promql: str, timeout: float = 30) -> None:
        """Until `promql` has a value (a rate() needs two scrapes in its window)."""
        deadline = time.time() + timeout
        while not self.query(promql):
            if time.time() > deadline:
                raise RuntimeError(f"prometheus had no value for {promql} within {timeout}s")
            time.sleep(0.2)

    def targets(self) -> list[dict[str, Any]]:
        """The active targets and their health, from /api/v1/targets."""
        body = httpx.get(f"{self.url}/api/v1/targets", timeout=5).json()
        return list(body["data"]["activeTargets"])


class AlertmanagerProcess(ChildServer):
    """Alertmanager sending every alert to one webhook with a bearer token's file, grouped by alertname and
    deployment, resolved notifications included."""

    what = "alertmanager"

    def __init__(self, directory: Path, webhook: str, token_file: Path, *, group_wait: str = "1s",
                 group_interval: str = "1s", repeat_interval: str = "2s", port: int | None = None,
                 host: str = "127.0.0.1") -> None:
        super().__init__(directory, port, host)
        self.binary = find_binary(ALERTMANAGER)
        (self.dir / "alertmanager.yml").write_text(
            f"route:\n  receiver: agentops\n  group_by: [alertname, deployment]\n  group_wait: {group_wait}\n"
            f"  group_interval: {group_interval}\n  repeat_interval: {repeat_interval}\n"
            "receivers:\n  - name: agentops\n    webhook_configs:\n"
            f"      - url: {webhook!r}\n        send_resolved: true\n"
            f"        http_config:\n          authorization:\n            credentials_file: {_quoted(token_file)}\n")

    def command(self) -> list[str]:
        return [self.binary, f"--config.file={self.dir / 'alertmanager.yml'}", f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address={self.address}", "--cluster.listen-address="]


def wait_until_ready(process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str,
                     log: Path | None = None, timeout: float = 30, interval: float = 0.1,
                     not_yet: tuple[type[BaseException], ...] = (OSError,)) -> None:
    """Poll `ready` (one of the `not_yet` errors counts as not yet) until it says yes; RuntimeError with the log's
    tail if the process exits or `timeout` passes first."""
    deadline = time.time() + timeout
    while True:
        try:
            if ready():
                return
        except not_yet:
            pass
        if time.time() > deadline or process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{what} did not start:\n{tail}".rstrip())
        time.sleep(interval)


def stop_process_group(process: subprocess.Popen[bytes] | None, grace: float = 20) -> None:
    """SIGTERM to the group the process leads (it was started with start_new_session), SIGKILL after `grace`."""
    if process is None or process.poll() is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait(grace)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)  # the group's id is the leader's pid, which we have not reaped yet
