"""Hosts for a test: Linux network namespaces it creates, joined by a bridge inside a namespace of its own.

Nothing touches the machine's own network: the bridge and every veth pair live in namespaces made here, the
addresses are 10.231.N.0/24 inside them only, and `close()` kills the processes it started (by process group)
and deletes every namespace, which deletes their links, even after a failed test.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

IP = shutil.which("ip")


def unavailable() -> str | None:
    """Why hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if IP is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"aoprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run([IP, "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run([IP, "netns", "del", probe], capture_output=True)
    return None


class Hosts:
    """Named hosts (network namespaces) on one bridged /24; `ip(host)` is a host's address."""

    def __init__(self, names: list[str]) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.subnet = random.randint(0, 255)
        self.bridge_ns = f"ao{self.tag}-br"
        self.names = names
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def ns(self, host: str) -> str:
        return f"ao{self.tag}-{host}"

    def ip(self, host: str) -> str:
        return f"10.231.{self.subnet}.{self.names.index(host) + 1}"

    def _veth(self, host: str) -> str:
        return f"v{self.tag}{self.names.index(host)}"

    def _ip(self, *args: str) -> None:
        assert IP is not None
        subprocess.run([IP, *args], check=True, capture_output=True)

    def create(self) -> None:
        for ns in (self.bridge_ns, *(self.ns(h) for h in self.names)):
            self._ip("netns", "add", ns)
            self.namespaces.append(ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
        self._ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        self._ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        for host in self.names:
            veth = self._veth(host)  # one end on the bridge, the other the host's eth0: both inside our namespaces
            self._ip("-n", self.bridge_ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
                     self.ns(host))
            self._ip("-n", self.bridge_ns, "link", "set", veth, "master", "br0")
            self._ip("-n", self.bridge_ns, "link", "set", veth, "up")
            self._ip("-n", self.ns(host), "addr", "add", f"{self.ip(host)}/24", "dev", "eth0")
            self._ip("-n", self.ns(host), "link", "set", "eth0", "up")

    def cut(self, host: str) -> None:
        """Take the host off the network: its link is down."""
        self._ip("-n", self.ns(host), "link", "set", "eth0", "down")

    def reconnect(self, host: str) -> None:
        self._ip("-n", self.ns(host), "link", "set", "eth0", "up")

    def command(self, host: str, *args: str) -> list[str]:
        assert IP is not None
        return [IP, "netns", "exec", self.ns(host), *args]

    def run(self, host: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(host, *args), capture_output=True, text=True, env=env, timeout=timeout,
                              check=check)

    def start(self, host: str, *args: str, env: dict[str, str] | None = None, log: Path | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """A process on `host`, in a process group of its own (stopped by `stop` or `close`)."""
        out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (the process owns it)
        process = subprocess.Popen(self.command(host, *args), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    @staticmethod
    def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)

    def pids(self, ns: str) -> list[int]:
        done = subprocess.run([IP or "ip", "netns", "pids", ns], capture_output=True, text=True)
        return [int(p) for p in done.stdout.split()]

    def close(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)
        for ns in self.namespaces:  # what those started on their own (PostgreSQL's backends are sessions of their own)
            for pid in self.pids(ns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for ns in reversed(self.namespaces):
            subprocess.run([IP or "ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
