"""Protocol fakes for the real tool backends: a ticket REST API, Kubernetes' scale subresource, SMTP."""

from __future__ import annotations

import re
import socket
import threading
import time
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
        if method == "GET" and match and int(match.group(1)) in self.tickets:
            return 200, self.tickets[int(match.group(1))]
        if method == "GET" and path == "/tickets":
            return 200, list(self.tickets.values())
        return 404, {"error": "not found"}


class KubernetesAPI(FakeServer):
    """GET/PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale with a bearer token. `?dryRun=All` answers
    as the patch would, changing nothing. `refuse_above` plays a quota or admission webhook: a patch to more
    replicas is refused (dry run or not) with a 403 Status carrying `refusal`. `hold` blocks GETs while set."""

    def __init__(self, deployments: dict[str, int], token: str = "kube-token", namespace: str = "default") -> None:
        super().__init__()
        self.replicas = dict(deployments)
        self.token = token
        self.namespace = namespace
        self.patches: list[dict[str, Any]] = []
        """Patches applied (dry runs are not)."""
        self.dry_runs: list[dict[str, Any]] = []
        self.refuse_above: int | None = None
        self.refusal = ('admission webhook "replica-cap.policy.example.com" denied the request: '
                        "at most {limit} replicas in this namespace")
        self.hold = threading.Event()
        self.held = threading.Event()
        """Set when a GET has arrived while `hold` was set."""

    def handle(self, request: dict[str, Any]) -> tuple[int, Any]:
        if request["headers"].get("Authorization") != f"Bearer {self.token}":
            return 401, {"kind": "Status", "code": 401}
        path, _, query = request["path"].partition("?")
        match = re.fullmatch(rf"/apis/apps/v1/namespaces/{self.namespace}/deployments/([^/]+)/scale", path)
        if not match or match.group(1) not in self.replicas:
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                         "message": f'deployments.apps "{match.group(1) if match else path}" not found'}
        name = match.group(1)
        if request["method"] == "GET" and self.hold.is_set():
            self.held.set()
            while self.hold.is_set():
                time.sleep(0.02)
        if request["method"] == "PATCH":
            if request["headers"].get("Content-Type") != "application/merge-patch+json":
                return 415, {"kind": "Status", "code": 415}
            wanted = request["body"]["spec"]["replicas"]
            if self.refuse_above is not None and wanted > self.refuse_above:
                return 403, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                             "code": 403, "message": self.refusal.format(limit=self.refuse_above)}
            if "dryRun=All" in query.split("&"):
                self.dry_runs.append(request["body"])
                return 200, self._scale(name, wanted)
            self.patches.append(request["body"])
            self.replicas[name] = wanted
        return 200, self._scale(name, self.replicas[name])

    def _scale(self, name: str, replicas: int) -> dict[str, Any]:
        return {"kind": "Scale", "metadata": {"name": name, "namespace": self.namespace},
                "spec": {"replicas": replicas}, "status": {"replicas": self.replicas[name]}}


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
