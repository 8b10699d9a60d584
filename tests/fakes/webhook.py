"""A Slack-compatible incoming webhook on 127.0.0.1: takes JSON POSTs on one secret path and answers `ok`.

Its port is reserved when it is made and it listens only once started, so a test can have it down first and up
later on the same URL. Told to, it holds the next request after reading it (the client is then mid-send, and the
message has arrived) until released. It counts repeats of an idempotency id.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookServer:
    def __init__(self, path: str = "/services/T0AGENTOPS/B0NOTIFY/hushhush0secret0webhook") -> None:
        self.path = path
        self.messages: list[dict[str, Any]] = []
        """Each request on the path: its headers and its JSON body."""
        self.other_paths: list[str] = []
        self.hold_next = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def ids(self) -> list[str]:
        return [m["headers"].get("Idempotency-Key", "") for m in self.messages]

    def repeats(self) -> int:
        """How many messages were a repeat of an idempotency id already received."""
        return sum(n - 1 for n in Counter(self.ids()).values())

    def start(self) -> WebhookServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != fake.path:
                    fake.other_paths.append(self.path)
                    self._reply(404, b"no_service")
                    return
                fake.messages.append({"headers": dict(self.headers), "body": json.loads(raw), "at": time.time()})
                if fake.hold_next:
                    fake.hold_next = False
                    fake.holding.set()
                    fake.release.wait(60)
                self._reply(200, b"ok")

            def _reply(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client went away (killed mid-send)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
