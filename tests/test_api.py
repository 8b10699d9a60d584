"""The HTTP API on uvicorn over loopback: tokens, authentication, and role checks equal to the CLI's."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agentops import flow, request_approval
from agentops.cli.main import app as cli
from agentops.db import open_store
from agentops.errors import AgentOpsError
from agentops.governance.users import add_user
from agentops.service import tokens
from tests.pg_server import _free_port

ROLES = ("viewer", "operator", "approver", "admin")


@flow
def api_gated(replicas: int = 3) -> dict:
    decision = request_approval("scale_deployment", {"name": "web-app", "replicas": replicas}, reason="api test")
    return {"decision": decision.kind}


@flow
def api_ratio(ratio: float = 1.0) -> float:
    return ratio


class Cli:
    """The CLI in-process, with main()'s rule: an AgentOpsError is exit code 2 and its one-line message."""

    def __init__(self, args: list[str]) -> None:
        result = CliRunner().invoke(cli, args)
        failed = isinstance(result.exception, AgentOpsError)
        self.exit_code = 2 if failed else result.exit_code
        self.output = str(result.exception) if failed else result.output


def as_(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_tokens_are_stored_as_digests_and_recorded_without_the_secret(api: tuple[str, dict[str, str]]) -> None:
    _url, secrets = api
    st = open_store()
    rows = st.list_tokens()
    assert {t.name for t in rows} == {f"t-{r}" for r in ROLES}
    stored = " ".join(f"{t.model_dump()}" for t in rows)
    ledger = " ".join(f"{e.payload}" for e in st.search_ledger(limit=1000))
    for secret in secrets.values():
        assert secret not in stored and secret not in ledger
        assert tokens.tokens.digest(secret) in stored
    assert len(st.search_ledger(action="token.created", limit=100)) == len(ROLES)
    listed = Cli(["tokens", "list", "--json"])
    assert listed.exit_code == 0 and "token_hash" not in listed.output
    assert all(s not in listed.output for s in secrets.values())


def test_requests_without_a_live_token_are_refused(api: tuple[str, dict[str, str]]) -> None:
    url, secrets = api
    for headers in [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, as_("agentops_" + "A" * 43), as_("' OR 1=1 --"),
                    as_(secrets["admin"][:-1]), {"Authorization": "Bearer"}]:
        response = httpx.get(f"{url}/api/v1/runs", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/api/v1/runs", headers=as_(secrets["viewer"])).status_code == 200
    revoked = Cli(["tokens", "revoke", "t-viewer"])
    assert revoked.exit_code == 0
    assert httpx.get(f"{url}/api/v1/runs", headers=as_(secrets["viewer"])).status_code == 401
    again = Cli(["tokens", "revoke", "t-viewer"])
    assert again.exit_code == 2 and "no live token named 't-viewer'" in again.output
    assert len(open_store().search_ledger(action="token.revoked", limit=10)) == 1


def test_starting_a_run_is_role_checked_as_in_the_cli(api: tuple[str, dict[str, str]]) -> None:
    url, secrets = api
    for role in ROLES:
        response = httpx.post(f"{url}/api/v1/runs", headers=as_(secrets[role]),
                              json={"flow": "api_gated", "parameters": {"replicas": 4}})
        by_cli = Cli(["run", "api_gated", "--queue", "--as", f"t-{role}", "-p", "replicas=4"])
        assert (response.status_code == 201) == (by_cli.exit_code == 0), (role, response.text, by_cli.output)
        if response.status_code == 201:
            run = httpx.get(f"{url}/api/v1/runs/{response.json()['run_id']}", headers=as_(secrets["viewer"])).json()
            assert run["created_by"] == f"t-{role}" and run["trigger"] == "api" and run["parameters"] == {"replicas": 4}
        else:
            assert response.status_code == 403 and "starting runs needs one of" in response.json()["error"]
    bad = httpx.post(f"{url}/api/v1/runs", headers=as_(secrets["operator"]),
                     json={"flow": "api_gated", "parameters": {"replicas": "many"}})
    assert bad.status_code == 422
    nan = httpx.post(f"{url}/api/v1/runs", headers=as_(secrets["operator"]) | {"Content-Type": "application/json"},
                     content=b'{"flow": "api_ratio", "parameters": {"ratio": NaN}}')
    assert nan.status_code == 422 and "NaN or an infinity" in nan.json()["error"], nan.text
    assert open_store().list_runs(flow="api_ratio") == []
    unknown = httpx.post(f"{url}/api/v1/runs", headers=as_(secrets["operator"]), json={"flow": "../../etc/passwd"})
    assert unknown.status_code == 404
    assert httpx.get(f"{url}/api/v1/runs/nope'--", headers=as_(secrets["viewer"])).status_code == 404


def test_deciding_is_role_checked_as_in_the_cli_and_binds_the_reviewed_digest(
        api: tuple[str, dict[str, str]]) -> None:
    from agentops import service

    url, secrets = api
    add_user(open_store(), "starter", "operator", None)
    run_id = service.start_run("api_gated", {"replicas": 5}, user="starter", queue=False)
    service.execute_here(run_id)
    steps = httpx.get(f"{url}/api/v1/runs/{run_id[:8]}/steps", headers=as_(secrets["viewer"])).json()
    assert [s["kind"] for s in steps] == ["approval"]
    pending = httpx.get(f"{url}/api/v1/approvals", headers=as_(secrets["viewer"])).json()
    assert len(pending) == 1 and pending[0]["args"] == {"name": "web-app", "replicas": 5}
    approval = pending[0]["id"]
    for role in ("viewer", "operator"):
        response = httpx.post(f"{url}/api/v1/approvals/{approval}/decision", headers=as_(secrets[role]),
                              json={"decision": "approve"})
        by_cli = Cli(["approvals", "approve", approval, "--as", f"t-{role}"])
        assert response.status_code == 403 and by_cli.exit_code == 2, (role, response.text, by_cli.output)
    stale = httpx.post(f"{url}/api/v1/approvals/{approval}/decision", headers=as_(secrets["approver"]),
                       json={"decision": "approve", "args_digest": "0" * 64})
    assert stale.status_code == 409
    done = httpx.post(f"{url}/api/v1/approvals/{approval}/decision", headers=as_(secrets["approver"]),
                      json={"decision": "approve", "args_digest": pending[0]["args_digest"]})
    assert done.status_code == 200 and done.json() == {"approval_id": approval, "outcome": "approve"}
    twice = httpx.post(f"{url}/api/v1/approvals/{approval}/decision", headers=as_(secrets["admin"]),
                       json={"decision": "approve"})
    assert twice.status_code == 409
    decided = open_store().search_ledger(action="approval.decided", limit=10)
    assert [e.actor for e in decided] == ["user:t-approver"]


def test_the_openapi_document_names_every_route(api: tuple[str, dict[str, str]]) -> None:
    url, _ = api
    paths = httpx.get(f"{url}/api/openapi.json").json()["paths"]
    assert {"/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/steps", "/api/v1/approvals",
            "/api/v1/approvals/{approval_id}/decision"} <= set(paths)


def test_a_token_for_an_existing_account_keeps_its_role(project: Path) -> None:
    add_user(open_store(), "carol", "viewer", None)
    refused = Cli(["tokens", "add", "carol", "--role", "admin"])
    assert refused.exit_code == 2 and "user 'carol' has role 'viewer'" in refused.output
    assert open_store().list_tokens() == []
    made = Cli(["tokens", "add", "carol", "--role", "viewer"])
    assert made.exit_code == 0
    secret = made.output.split()[-1]
    assert tokens.token_user(secret) == "carol"
    by_viewer = Cli(["tokens", "add", "mallory", "--role", "admin", "--as", "carol"])
    assert by_viewer.exit_code == 2 and open_store().get_user("mallory") is None


def test_serve_with_an_api_port_answers_and_stops(project: Path) -> None:
    from agentops.cli.serve import Services

    port = _free_port()
    services = Services(with_app=False, api_port=port, on_event=lambda _line: None)
    services.start()
    try:
        document = httpx.get(f"http://127.0.0.1:{port}/api/openapi.json").json()
        assert document["info"]["title"] == "agentops"
    finally:
        services.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/openapi.json")


def test_the_token_and_alert_tables_migrate_down_and_up(project: Path, db_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command

    from agentops.db import Store, close_stores
    from agentops.db.migrate import HEAD_REVISION, alembic_config

    tokens.add_token("before", "viewer")
    close_stores()
    store = Store(db_url)
    config = alembic_config(store)
    for target in ("0006_outbox_delivery", HEAD_REVISION):
        with store.write() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if target != HEAD_REVISION else command.upgrade)(config, target)
        tables = set(sa.inspect(store.engine).get_table_names())
        assert ({"api_tokens", "alert_groups"} <= tables) == (target == HEAD_REVISION)
    store.engine.dispose()
    close_stores()
    assert open_store().list_tokens() == []  # a downgrade drops the tokens: they must be added again
