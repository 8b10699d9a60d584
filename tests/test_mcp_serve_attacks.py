"""agentops as an MCP server under attack over Streamable HTTP: DNS rebinding (a foreign Host or Origin) and an
oversized body are refused before the token is even looked at, while a local client still works."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentops.api.server import ApiServer
from agentops.db import open_store
from agentops.service import runs, tokens
from tests.pg_server import _free_port

FLOWS = '''
from agentops import flow


@flow
def mcpatk_echo(text: str = "hi", n: float = 1.0) -> str:
    """Echo the text."""
    return text
'''
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture
def api(sqlite_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, int]]:
    (sqlite_project / "flows" / "mcpatk_flows.py").write_text(FLOWS)
    monkeypatch.setenv("AGENTOPS_APP_URL", "https://agentops.example.com")
    monkeypatch.setenv("AGENTOPS_MCP_WAIT_SECONDS", "0")
    secret = tokens.add_token("mcpatk-otto", "operator")
    port = _free_port()
    server = ApiServer("127.0.0.1", port)
    server.start()
    try:
        yield f"{server.url}/mcp/", secret, port
    finally:
        server.stop()


def post(url: str, secret: str, headers: dict[str, str] | None = None, body: object = LIST) -> httpx.Response:
    return httpx.post(url, json=body, headers=ACCEPT | {"Authorization": f"Bearer {secret}"} | (headers or {}))


def test_a_rebinding_host_or_a_foreign_origin_is_refused_and_a_local_client_is_served(
        api: tuple[str, str, int]) -> None:
    url, secret, port = api
    for host in (f"evil.example.net:{port}", "evil.example.net", f"localhost.evil.example.net:{port}", ""):
        refused = post(url, secret, {"Host": host})
        assert refused.status_code == 421, (host, refused.text)
    for origin in ("http://evil.example.net", f"http://evil.example.net:{port}", "null"):
        refused = post(url, secret, {"Origin": origin})
        assert refused.status_code == 403 and "origin" in refused.json()["error"], origin
    starts = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
              "params": {"name": "mcpatk_echo", "arguments": {"text": "rebound"}}}
    assert post(url, secret, {"Host": f"evil.example.net:{port}"}, starts).status_code == 421
    assert runs.list_runs(flow="mcpatk_echo", limit=5) == []  # nothing started behind a rebinding name
    for headers in ({}, {"Host": f"localhost:{port}"}, {"Origin": f"http://127.0.0.1:{port}"},
                    {"Origin": "http://localhost:6274"}, {"Host": "agentops.example.com",
                                                          "Origin": "https://agentops.example.com"}):
        served = post(url, secret, headers)
        assert served.status_code == 200, (headers, served.text)
        assert "mcpatk_echo" in {t["name"] for t in served.json()["result"]["tools"]}

    unslashed = url.rstrip("/")  # the same endpoint, its guards included, with no redirect a client may not follow
    assert post(unslashed, secret, {"Host": f"evil.example.net:{port}"}).status_code == 421
    assert httpx.post(unslashed, json=LIST, headers=ACCEPT).status_code == 401
    served = post(unslashed, secret)
    assert served.status_code == 200 and "mcpatk_echo" in {t["name"] for t in served.json()["result"]["tools"]}


def test_a_body_over_a_mebibyte_is_refused_and_nothing_is_recorded(api: tuple[str, str, int]) -> None:
    url, secret, _port = api
    before = len(open_store().search_ledger(action="mcp.serve_call", limit=100))
    big = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
           "params": {"name": "mcpatk_echo", "arguments": {"text": "x" * (2 * 1024 * 1024)}}}
    assert post(url, secret, body=big).status_code == 413
    assert len(open_store().search_ledger(action="mcp.serve_call", limit=100)) == before
    assert runs.list_runs(flow="mcpatk_echo", limit=5) == []


def call_raw(url: str, secret: str, arguments: str, name: str = "mcpatk_echo") -> httpx.Response:
    params = f'{{"name": "{name}", "arguments": {arguments}}}'
    body = f'{{"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {params}}}'
    return httpx.post(url, content=body.encode(), headers=ACCEPT | {"Authorization": f"Bearer {secret}"})


def tool_error(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["isError"], result
    return str(result["content"][0]["text"])


def test_nan_infinity_and_deep_nesting_are_tool_errors_recorded_without_the_arguments(
        api: tuple[str, str, int]) -> None:
    url, secret, _port = api
    viewer = tokens.add_token("mcpatk-vera", "viewer")
    for number in ("NaN", "Infinity", "-Infinity"):
        said = tool_error(call_raw(url, secret, f'{{"text": "x", "n": {number}}}'))
        assert "NaN or an infinity" in said, said
    deep = "[" * 40 + "1" + "]" * 40  # the SDK refuses ~150 levels at parse time; 33-149 reach us
    for name, who in (("mcpatk_echo", secret), ("runs_list", viewer), ("no_such_tool", viewer)):
        assert "nest deeper than 32" in tool_error(call_raw(url, who, f'{{"text": {deep}}}', name))
    assert runs.list_runs(flow="mcpatk_echo", limit=5) == []
    events = [json.loads(e.payload) for e in open_store().search_ledger(action="mcp.serve_call", limit=100)]
    assert len(events) == 6 and all(e["status"] == "refused" and e["args"] is None for e in events)


def test_a_refused_call_with_huge_arguments_is_recorded_by_its_size_not_its_text(
        api: tuple[str, str, int]) -> None:
    url, secret, _port = api
    said = tool_error(call_raw(url, secret, json.dumps({"text": "x", "junk": "y" * 500_000}), "z" * 5000))
    assert "no tool" in said
    said = tool_error(call_raw(url, secret, json.dumps({"text": "x", "junk": "y" * 500_000})))
    assert "unknown parameter 'junk'" in said
    events = [json.loads(e.payload) for e in open_store().search_ledger(action="mcp.serve_call", limit=100)]
    assert len(events) == 2 and all(len(json.dumps(e)) < 3000 for e in events)
    assert all(e["args"] is None and e["args_bytes"] > 500_000 for e in events)
    small = post(url, secret, body={"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                                             "params": {"name": "mcpatk_echo", "arguments": {"text": "ok"}}})
    answer = json.loads(small.json()["result"]["content"][0]["text"])
    assert answer["state"] and answer["run_id"]
    [started] = [json.loads(e.payload) for e in open_store().search_ledger(action="mcp.serve_call", limit=100)
                 if json.loads(e.payload)["status"] == "started"]
    assert started["args"] == {"text": "ok"} and "args_bytes" not in started


def test_refused_tokens_are_recorded_as_the_api_records_them_and_two_authorization_headers_are_refused(
        api: tuple[str, str, int]) -> None:
    from agentops.service import auth_failures

    url, secret, _port = api
    revoked = tokens.add_token("mcpatk-gone", "operator")
    tokens.revoke_token("mcpatk-gone")
    unknown = "agentops_" + "x" * 43
    for who in (revoked, unknown):
        assert post(url, who).status_code == 401
    assert httpx.post(url, json=LIST, headers=ACCEPT).status_code == 401
    counts = {(kind, reason): n for kind, reason, n in auth_failures.auth_failure_counts()}
    assert counts == {("api_token", "revoked"): 1, ("api_token", "unknown"): 1, ("api_token", "missing"): 1}
    failed = [json.loads(e.payload) for e in open_store().search_ledger(action="auth.failed", limit=100)]
    assert {f["detail"] for f in failed} == {"/mcp/"} and {f["client"] for f in failed} == {"127.0.0.1"}
    assert all(s not in json.dumps(failed) for s in (revoked, unknown))

    for first, second in ((secret, unknown), (unknown, secret), (secret, secret)):
        headers = [(k, v) for k, v in ACCEPT.items()] + [("Authorization", f"Bearer {first}"),
                                                         ("Authorization", f"Bearer {second}")]
        doubled = httpx.post(url, json=LIST, headers=headers)
        assert doubled.status_code == 400 and "one Authorization header" in doubled.json()["error"]
    assert post(url, secret).status_code == 200
