"""API hardening on uvicorn over loopback: tokens that expire, refused logins in the ledger without the token (a
flood adds one event a minute), and the API's role checks equal to the CLI's, token by token."""

from __future__ import annotations

import json
import secrets as random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentops import service
from agentops.api.server import ApiServer
from agentops.db import open_store
from agentops.governance.users import add_user
from agentops.service import auth_failures, tokens
from tests.pg_server import _free_port
from tests.test_api import ROLES, Cli, api_gated, as_

assert api_gated.name == "api_gated"  # the flow the decisions below are asked by


@pytest.fixture
def server(project: Path) -> Iterator[str]:
    api = ApiServer("127.0.0.1", _free_port())
    api.start()
    try:
        yield api.url
    finally:
        api.stop()


def refusals(reason: str | None = None) -> list[dict[str, Any]]:
    return [json.loads(e.payload) for e in open_store().search_ledger(action="auth.failed", limit=1000)
            if e.action == "auth.failed" and (reason is None or json.loads(e.payload)["reason"] == reason)]


def test_an_expired_token_is_refused_shown_as_expired_and_can_be_replaced(server: str) -> None:
    secret = tokens.add_token("short", "operator", expires="1s")
    assert httpx.get(f"{server}/api/v1/runs", headers=as_(secret)).status_code == 200
    [created] = open_store().search_ledger(action="token.created", limit=1)
    assert json.loads(created.payload)["expires_at"] > time.time() - 5
    time.sleep(1.2)
    refused = httpx.get(f"{server}/api/v1/runs", headers=as_(secret))
    assert refused.status_code == 401 and refused.json() == {"error": "expired API token"}
    listed = Cli(["tokens", "list", "--json"])
    [row] = json.loads(listed.output)
    assert row["name"] == "short" and row["state"] == "expired" and row["expires_at"] is not None
    assert "expired" in Cli(["tokens", "list"]).output
    replaced = Cli(["tokens", "add", "short", "--role", "operator", "--expires", "30d"])
    assert replaced.exit_code == 0, replaced.output
    assert httpx.get(f"{server}/api/v1/runs", headers=as_(replaced.output.split()[-1])).status_code == 200
    assert httpx.get(f"{server}/api/v1/runs", headers=as_(secret)).status_code == 401
    for bad in ("30", "0d", "-1d", "1y", "d", "999999999999d", "1.5h"):
        result = Cli(["tokens", "add", "other", "--role", "viewer", "--expires", bad])
        assert result.exit_code == 2 and "--expires" in result.output, (bad, result.output)
    assert open_store().get_user("other") is None


def test_refused_logins_are_recorded_with_their_reason_and_never_the_token(server: str) -> None:
    revoked = tokens.add_token("gone", "viewer")
    tokens.revoke_token("gone")
    expired = tokens.add_token("old", "viewer", expires="1s")
    unknown = "agentops_" + random.token_urlsafe(32)
    time.sleep(1.2)
    for headers in [as_(revoked), as_(expired), as_(unknown), as_("garbage with spaces"), {},
                    {"Authorization": f"Basic {unknown}"}]:
        assert httpx.get(f"{server}/api/v1/approvals", headers=headers).status_code == 401
    by_reason = {r["reason"]: r for r in refusals()}
    assert set(by_reason) == {"revoked", "expired", "unknown", "missing"}
    assert by_reason["revoked"]["subject"] == "gone" and by_reason["expired"]["subject"] == "old"
    assert by_reason["unknown"]["subject"] == "" and by_reason["unknown"]["client"] == "127.0.0.1"
    assert by_reason["missing"]["detail"] == "/api/v1/approvals"
    counts = {(k, r): n for k, r, n in auth_failures.auth_failure_counts()}
    assert counts == {("api_token", "revoked"): 1, ("api_token", "expired"): 1, ("api_token", "unknown"): 2,
                      ("api_token", "missing"): 2}
    stored = " ".join(e.payload for e in open_store().search_ledger(limit=1000))
    for secret in (revoked, expired, unknown, "garbage with spaces"):
        assert secret not in stored
    assert all(secret not in str(row) for row in open_store().auth_failure_counts() for secret in (unknown,))


def test_a_flood_of_bad_tokens_adds_one_event_and_counts_them_all(server: str) -> None:
    before = open_store().ledger_count()
    with httpx.Client() as client:
        for _ in range(60):
            token = "agentops_" + random.token_urlsafe(32)
            assert client.get(f"{server}/api/v1/runs", headers=as_(token)).status_code == 401
    assert open_store().ledger_count() - before <= 3  # one a minute (two more if a minute turned meanwhile)
    assert ("api_token", "unknown", 60) in auth_failures.auth_failure_counts()
    viewer = tokens.add_token("watch", "viewer")
    metrics = httpx.get(f"{server}/metrics", headers=as_(viewer)).text
    assert 'agentops_auth_failures_total{kind="api_token",reason="unknown"} 60.0' in metrics


def _decision_cli(kind: str, approval: str, user: str) -> list[str]:
    extra = {"approve": [], "reject": ["--reason", "no"], "respond": ["--message", "why?"],
             "edit": ["--args", json.dumps({"name": "web-app", "replicas": 2})]}[kind]
    return ["approvals", kind, approval, "--as", user, *extra]


def _decision_body(kind: str) -> dict[str, Any]:
    return {"approve": {"decision": "approve"}, "reject": {"decision": "reject", "message": "no"},
            "respond": {"decision": "respond", "message": "why?"},
            "edit": {"decision": "edit", "args": {"name": "web-app", "replicas": 2}}}[kind]


def test_every_endpoint_checks_roles_as_the_cli_does_token_by_token(ops_db_project: Path) -> None:
    secrets = {role: tokens.add_token(f"t-{role}", role) for role in ROLES}
    add_user(open_store(), "starter", "operator", None)
    api = ApiServer("127.0.0.1", _free_port())
    api.start()
    url = api.url
    outcomes: dict[tuple[str, str], tuple[int, int]] = {}
    try:
        sample = service.start_run("api_gated", {"replicas": 3}, user="starter", queue=False)
        service.execute_here(sample)
        reads = {"GET /api/v1/flows": ("/api/v1/flows", ["flows", "list"]),
                 "GET /api/v1/runs": ("/api/v1/runs", ["runs", "list"]),
                 "GET /api/v1/runs/{id}": (f"/api/v1/runs/{sample}", ["runs", "show", sample]),
                 "GET /api/v1/runs/{id}/steps": (f"/api/v1/runs/{sample}/steps", ["runs", "show", sample]),
                 "GET /api/v1/approvals": ("/api/v1/approvals", ["approvals", "list"])}
        for role in ROLES:
            for endpoint, (path, argv) in reads.items():
                outcomes[(role, endpoint)] = (httpx.get(f"{url}{path}", headers=as_(secrets[role])).status_code,
                                              Cli(argv).exit_code)
            started = httpx.post(f"{url}/api/v1/runs", headers=as_(secrets[role]),
                                 json={"flow": "api_gated", "parameters": {"replicas": 2}})
            by_cli = Cli(["run", "api_gated", "--queue", "--as", f"t-{role}", "-p", "replicas=2"])
            outcomes[(role, "POST /api/v1/runs")] = (started.status_code, by_cli.exit_code)
            for kind in ("approve", "reject", "respond", "edit"):
                pair = []
                for _face in ("api", "cli"):
                    run_id = service.start_run("api_gated", {"replicas": 4}, user="starter", queue=False)
                    service.execute_here(run_id)
                    [approval] = [a for a in service.list_approvals("pending") if a.run_id == run_id]
                    pair.append(approval.id)
                response = httpx.post(f"{url}/api/v1/approvals/{pair[0]}/decision", headers=as_(secrets[role]),
                                      json=_decision_body(kind) | {"args_digest": None})
                outcomes[(role, f"POST decision {kind}")] = (response.status_code,
                                                             Cli(_decision_cli(kind, pair[1], f"t-{role}")).exit_code)
    finally:
        api.stop()
    for (role, endpoint), (status, exit_code) in outcomes.items():
        assert (status < 300) == (exit_code == 0), (role, endpoint, status, exit_code)
        assert status < 300 or status == 403, (role, endpoint, status)
    allowed = {endpoint: {role for role in ROLES if outcomes[(role, endpoint)][0] < 300}
               for endpoint in {e for _, e in outcomes}}
    assert allowed["GET /api/v1/runs"] == set(ROLES)
    assert allowed["POST /api/v1/runs"] == {"operator", "approver", "admin"}
    assert allowed["POST decision approve"] == allowed["POST decision edit"] == {"approver", "admin"}
