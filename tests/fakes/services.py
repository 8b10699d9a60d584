"""Protocol fakes for the real tool backends: a ticket REST API, Kubernetes' scale subresource, SMTP."""

from __future__ import annotations

import re
import socket
from typing import Any

from tests.fakes.http_base import FakeServer


class TicketAPI(FakeServer):
    """POST /tickets honours Idempotency-Key (a repeat returns the first ticket with 200)."""

    def __init__(self, token: str = "ticket-token") -> None:
        super().__init__()
        self.token = token
        self.tickets: dict[int, dict[str, Any]] = {}
        self.by_key: dict[str, int] = {}

    def handle(self, request: dict[str, Any]) -> tuple[int, Any]:
        if request["headers"].get("Authorization") != f"Bearer {self.token}":
            return 401, {"error": "unauthorized"}
        path, method = request["path"].split("?")[0], request["method"]
        if method == "POST" and path == "/tickets":
            key = request["headers"].get("Idempotency-Key")
            if key in self.by_key:
                return 200, self.tickets[self.by_key[key]]
            ticket = {"id": len(self.tickets) + 1, "status": "open", **request["body"]}
            self.tickets[ticket["id"]] = ticket
            if key:
                self.by_key[key] = ticket["id"]
            return 201, ticket
        match = re.fullmatch(r"/tickets/(\d+)", path)
        if method == "PATCH" and match and int(match.group(1)) in self.tickets:
            ticket = self.tickets[int(match.group(1))]
            ticket.update({k: v for k, v in request["body"].items() if v is not None})
            return 200, ticket
        if method == "GET" and path == "/tickets":
            return 200, list(self.tickets.values())
        return 404, {"error": "not found"}


class KubernetesAPI(FakeServer):
    """GET/PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale with a bearer token."""

    def __init__(self, deployments: dict[str, int], token: str = "kube-token", namespace: str = "default") -> None:
        super().__init__()
        self.replicas = dict(deployments)
        self.token = token
        self.namespace = namespace
        self.patches: list[dict[str, Any]] = []

    def handle(self, request: dict[str, Any]) -> tuple[int, Any]:
        if request["headers"].get("Authorization") != f"Bearer {self.token}":
            return 401, {"kind": "Status", "code": 401}
        match = re.fullmatch(rf"/apis/apps/v1/namespaces/{self.namespace}/deployments/([^/]+)/scale",
                             request["path"])
        if not match or match.group(1) not in self.replicas:
            return 404, {"kind": "Status", "code": 404}
        name = match.group(1)
        if request["method"] == "PATCH":
            if request["headers"].get("Content-Type") != "application/merge-patch+json":
                return 415, {"kind": "Status", "code": 415}
            self.patches.append(request["body"])
            self.replicas[name] = request["body"]["spec"]["replicas"]
        return 200, {"kind": "Scale", "metadata": {"name": name, "namespace": self.namespace},
                     "spec": {"replicas": self.replicas[name]}, "status": {"replicas": self.replicas[name]}}


class SMTPSink:
    """aiosmtpd on 127.0.0.1 collecting every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def __enter__(self) -> SMTPSink:
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Message

        sink = self

        class Collect(Message):
            def handle_message(self, message: Any) -> None:
                sink.messages.append(message)

        self.controller = Controller(Collect(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"
