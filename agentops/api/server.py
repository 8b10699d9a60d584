"""The API under uvicorn: in the foreground for `agentops api`, in a thread for `agentops serve` and tests."""

from __future__ import annotations

import threading
import time

import uvicorn

from agentops.api.app import create_app
from agentops.errors import ConfigError


class ApiServer:
    """uvicorn serving the API on host:port; `start()` returns once it listens, `stop()` ends it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8502) -> None:
        config = uvicorn.Config(create_app(), host=host, port=port, log_level="warning", access_log=False,
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="agentops-api")
        self.host, self.port = host, port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.time() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise ConfigError(f"the API did not start on {self.url} (is the port free?)")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def run(self) -> None:
        """In the foreground until Ctrl-C or SIGTERM."""
        self.server.run()
