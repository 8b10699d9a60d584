"""agentops.client against the real API on uvicorn over loopback: typed answers, and one error class per failure."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentops import service
from agentops.client import AgentOpsClient, Approval, Run, Step
from agentops.db import open_store
from agentops.errors import (
    AgentOpsError,
    ApiConflict,
    ApiError,
    ApiForbidden,
    ApiInvalid,
    ApiNotFound,
    ApiProtocolError,
    ApiUnauthorized,
    ApiUnavailable,
)
from agentops.governance.users import add_user
from tests.pg_server import _free_port
from tests.test_api import api_gated

assert api_gated.name == "api_gated"


def test_start_read_list_and_decide_with_typed_answers(api: tuple[str, dict[str, str]]) -> None:
    url, secrets = api
    with AgentOpsClient(url, secrets["operator"]) as operator:
        queued = operator.start_run("api_gated", {"replicas": 6})
        assert isinstance(queued, str) and len(queued) == 32
        run = operator.run(queued)
        assert isinstance(run, Run) and (run.flow_name, run.state, run.created_by) == ("api_gated", "PENDING",
                                                                                        "t-operator")
        assert run.parameters == {"replicas": 6}
        assert [r.id for r in operator.runs(flow="api_gated")] == [queued]
        assert operator.runs(state="COMPLETED") == []
        assert "api_gated" in {f.name for f in operator.flows()}
    add_user(open_store(), "starter", "operator", None)
    run_id = service.start_run("api_gated", {"replicas": 7}, user="starter", queue=False)
    service.execute_here(run_id)
    with AgentOpsClient(url, secrets["viewer"]) as viewer:
        steps = viewer.steps(run_id)
        assert all(isinstance(s, Step) for s in steps) and [s.kind for s in steps] == ["approval"]
        [request] = [a for a in viewer.approvals() if a.run_id == run_id]
        assert isinstance(request, Approval) and request.args == {"name": "web-app", "replicas": 7}
        assert request.status == "pending" and request.requester
    with AgentOpsClient(url, secrets["approver"]) as approver:
        decided = approver.decide(request.id, "approve", args_digest=request.args_digest)
        assert (decided.approval_id, decided.outcome) == (request.id, "approve")
        assert all(a.run_id != run_id for a in approver.approvals())
        assert service.get_approval(request.id).status == "approved"


def test_each_failure_is_its_own_error_class(api: tuple[str, dict[str, str]]) -> None:
    url, secrets = api
    with pytest.raises(ApiUnauthorized) as unauthorized:
        AgentOpsClient(url, "agentops_" + "x" * 43).runs()
    assert unauthorized.value.status == 401 and "unknown API token" in str(unauthorized.value)
    with pytest.raises(ApiUnauthorized):
        AgentOpsClient(url, "")
    viewer = AgentOpsClient(url, secrets["viewer"])
    operator = AgentOpsClient(url, secrets["operator"])
    with pytest.raises(ApiForbidden, match="starting runs needs one of"):
        viewer.start_run("api_gated")
    with pytest.raises(ApiNotFound):
        viewer.run("0" * 32)
    with pytest.raises(ApiNotFound):
        operator.start_run("no_such_flow")
    with pytest.raises(ApiInvalid, match="replicas"):
        operator.start_run("api_gated", {"replicas": "many"})
    with pytest.raises(ApiInvalid):
        viewer.run("../../api/v1/approvals")
    with pytest.raises(ApiInvalid):
        viewer.runs(limit=0)
    add_user(open_store(), "starter", "operator", None)
    run_id = service.start_run("api_gated", {"replicas": 8}, user="starter", queue=False)
    service.execute_here(run_id)
    [request] = service.pending_approvals_for(run_id)
    approver = AgentOpsClient(url, secrets["approver"])
    with pytest.raises(ApiConflict):
        approver.decide(request.id, "approve", args_digest="0" * 64)
    approver.decide(request.id, "reject", args_digest=request.args_digest, message="not now")
    with pytest.raises(ApiConflict) as twice:
        approver.decide(request.id, "approve")
    assert twice.value.status == 409 and isinstance(twice.value, ApiError) and isinstance(twice.value, AgentOpsError)
    port = _free_port()
    with pytest.raises(ApiUnavailable, match="cannot be reached"):
        AgentOpsClient(f"http://127.0.0.1:{port}", secrets["viewer"], timeout=2).runs()
    for client in (viewer, operator, approver):
        client.close()


class _NotTheApi(BaseHTTPRequestHandler):
    """A server on loopback that answers every GET with something other than the API's JSON."""

    def do_GET(self) -> None:
        body = b"<html>login page</html>" if "runs" in self.path else b'{"unexpected": true}'
        self.send_response(200 if "runs" in self.path else 500 if "flows" in self.path else 200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_an_answer_that_is_not_the_apis_is_a_protocol_error() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotTheApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with AgentOpsClient(f"http://127.0.0.1:{server.server_port}", "agentops_token") as client:
            with pytest.raises(ApiProtocolError, match="unexpected answer"):
                client.runs()
            with pytest.raises(ApiProtocolError) as failed:
                client.flows()
            assert failed.value.status == 500
            with pytest.raises(ApiProtocolError, match="unexpected answer"):
                client.approvals()
    finally:
        server.shutdown()
        server.server_close()
