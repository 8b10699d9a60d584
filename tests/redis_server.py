"""A throwaway Redis server (the broker) for a test, from Debian's redis-server, on 127.0.0.1.

Persistence is off, so a restart loses every queued message: the broker-restart scenario relies on that.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.pg_server import _free_port
from tests.server_process import stop_process, wait_until_ready


class RedisServer:
    """redis-server on a free loopback port, no RDB snapshots and no AOF, stopped by PID."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server); .ci/run installs it")
        self.binary = binary
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="agentops-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--protected-mode", "yes", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_ready(self.process, lambda: self.command("PING") == "+PONG", f"redis-server on port {self.port}",
                         timeout=20, interval=0.05)

    def command(self, *args: str) -> str:
        """One command in Redis's wire protocol; its first reply line (enough for PING, LLEN, DBSIZE)."""
        wire = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(wire.encode())
            return conn.recv(65536).decode().split("\r\n", 1)[0]

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port: with persistence off, every queued message is gone."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
