"""A small threaded HTTP server on 127.0.0.1 for protocol fakes; subclasses implement handle()."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class RawBody:
    """A reply body sent byte for byte instead of as JSON. `declared_length` larger than the body makes the
    server claim more bytes than it sends and then close the connection (a reply cut off in transit)."""

    data: bytes
    content_type: str = "application/json"
    declared_length: int | None = None


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                record = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                fake.requests.append(record)
                status, payload, *headers = fake.handle(record)
                reply = payload if isinstance(payload, RawBody) else RawBody(json.dumps(payload).encode())
                self.send_response(status)
                for name, value in (headers[0] if headers else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(reply.declared_length or len(reply.data)))
                if reply.declared_length:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(reply.data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, request: dict[str, Any]) -> tuple[Any, ...]:
        """(status, JSON payload) or (status, JSON payload, extra response headers)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
