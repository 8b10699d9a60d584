"""agentops as an MCP server, driven by the SDK's own client: `agentops mcp serve` spawned over stdio, and
Streamable HTTP at /mcp of the API on 127.0.0.1 with tokens. Runs are executed by a real `agentops worker`
process. And elicitation: an MCP server's request for input becomes a `respond` approval answered from the inbox,
after the worker that made the call was killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from agentops.api.server import ApiServer
from agentops.core.states import State
from agentops.db import open_store
from agentops.governance.users import add_user
from agentops.service import approvals as approvals_service
from agentops.service import mcp_serve, runs, tokens
from tests.pg_server import _free_port
from tests.server_process import stop_process

ROOT = Path(__file__).resolve().parent.parent
AGENTOPS = str(Path(sys.executable).parent / "agentops")
ASK_SERVER = Path(__file__).resolve().parent / "mcp_servers" / "ask_server.py"
STATE_KEY = "k" * 32

FLOWS = '''
from typing import Annotated, Literal

from pydantic import Field

from agentops import flow, request_approval
from agentops.agents import Agent


@flow
def mcps_hello(name: str = "world", times: Annotated[int, Field(ge=1, le=3)] = 1) -> str:
    """Greet someone, quickly."""
    return " ".join([f"Hello, {name}!"] * times)


@flow
def mcps_gated(replicas: Annotated[int, Field(gt=0)] = 3, mode: Literal["safe", "fast"] = "safe") -> dict:
    """Scale web-app after a person approves it."""
    decision = request_approval("scale_deployment", {"name": "web-app", "replicas": replicas}, reason=mode)
    return {"decision": decision.kind, "replicas": decision.args.get("replicas")}


@flow
def mcps_deploy(service: str = "web") -> dict:
    """Deploy through an MCP server that asks which change ticket covers it."""
    outcome = Agent(name="deployer", prompt="incident", tools=["ask.deploy"]).use("ask.deploy", service=service)
    return {"status": outcome.status, "content": outcome.content}


@flow
def mcps_legacy(service: str = "web") -> dict:
    """Call an MCP tool that asks in the middle of the call."""
    outcome = Agent(name="deployer", prompt="incident", tools=["ask.legacy_ask"]).use("ask.legacy_ask",
                                                                                      service=service)
    return {"status": outcome.status, "content": outcome.content}
'''

POLICY = """
version: 1
tools:
  ask.deploy: {verdict: allow}
  ask.legacy_ask: {verdict: allow}
"""


@pytest.fixture
def served(sqlite_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A project with the flows above, an MCP server that asks for input, accounts, and a worker process."""
    (sqlite_project / "flows" / "mcps_flows.py").write_text(FLOWS)
    (sqlite_project / "prompts").mkdir()
    (sqlite_project / "prompts" / "incident.md").write_text((ROOT / "prompts" / "incident.md").read_text())
    (sqlite_project / "policies").mkdir()
    (sqlite_project / "policies" / "default.yaml").write_text(POLICY)
    (sqlite_project / "mcp.yaml").write_text(f"""
servers:
  ask:
    command: {sys.executable}
    args: ["{ASK_SERVER}", "stdio"]
    env:
      ASK_SERVER_KEY: "{STATE_KEY}"
      ASK_SERVER_STATE: "{sqlite_project / 'ask_calls.json'}"
      ASK_SERVER_STARTS: "{sqlite_project / 'ask_starts.txt'}"
""")
    monkeypatch.setenv("AGENTOPS_MCP_WAIT_SECONDS", "20")
    monkeypatch.setenv("AGENTOPS_APP_URL", "https://agentops.example.com")
    store = open_store()
    for name, role in (("otto", "operator"), ("vera", "viewer"), ("ada", "approver")):
        add_user(store, name, role, None)
    env = {k: v for k, v in os.environ.items() if k.startswith("AGENTOPS_") or k in ("PATH", "HOME")}
    worker = Worker(env, sqlite_project)
    worker.start()
    try:
        yield {"root": sqlite_project, "env": env, "worker": worker}
    finally:
        worker.stop()


class Worker:
    """`agentops worker` as a process of its own, killable with SIGKILL."""

    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.env, self.root = env, root
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.root / "worker.log", "ab")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen([AGENTOPS, "worker"], env=self.env, cwd=self.root, stdout=log, stderr=log)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc)


@asynccontextmanager
async def stdio_client(env: dict[str, str], *args: str) -> AsyncIterator[Any]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(command=AGENTOPS, args=["mcp", "serve", *args], env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        yield client


@asynccontextmanager
async def http_client(url: str, secret: str) -> AsyncIterator[Any]:
    from mcp import Client
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    async with create_mcp_http_client(headers={"Authorization": f"Bearer {secret}"}) as http, \
            Client(streamable_http_client(url, http_client=http), read_timeout_seconds=60) as client:
        yield client


def answer_of(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


def error_of(result: Any) -> str:
    assert result.is_error, result.content
    return str(result.content[0].text)


def wait_for(predicate: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


def served_events(tool: str) -> list[dict[str, Any]]:
    return [json.loads(e.payload) | {"actor": e.actor, "run_id": e.run_id}
            for e in sorted(open_store().search_ledger(action="mcp.serve_call", limit=1000), key=lambda e: e.seq)
            if json.loads(e.payload)["tool"] == tool]


def test_stdio_lists_flows_starts_one_waits_for_approval_and_reads_the_result(served: dict[str, Any]) -> None:
    async def session() -> None:
        async with stdio_client(served["env"], "--as", "otto") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert {"mcps_hello", "mcps_gated", "runs_list", "runs_show", "approvals_list",
                    "approvals_show"} <= set(tools)
            hello = tools["mcps_hello"]
            assert hello.description == "Greet someone, quickly."
            assert hello.input_schema["properties"]["times"] == {"default": 1, "maximum": 3, "minimum": 1,
                                                                 "title": "Times", "type": "integer"}
            assert tools["mcps_gated"].input_schema["properties"]["mode"]["enum"] == ["safe", "fast"]

            quick = answer_of(await client.call_tool("mcps_hello", {"name": "Ada", "times": 2}))
            assert quick["state"] == State.COMPLETED and quick["result"] == "Hello, Ada! Hello, Ada!"
            assert runs.get_run(quick["run_id"]).created_by == "otto"

            gated = answer_of(await client.call_tool("mcps_gated", {"replicas": 12}))
            assert gated["state"] == State.AWAITING_APPROVAL and "result" not in gated
            [waiting] = gated["approvals"]
            assert waiting["url"] == f"https://agentops.example.com/approvals?request={waiting['id']}"
            assert waiting["action"] == "scale_deployment" and waiting["kind"] == "approve"

            listed = answer_of(await client.call_tool("approvals_list", {}))
            [listed_waiting] = [a for a in listed["approvals"] if a["id"] == waiting["id"]]
            assert datetime.fromisoformat(listed_waiting["created_at"]).utcoffset() == timedelta(0)
            approvals_service.decide(waiting["id"], "approve", user="ada")
            done = wait_for(lambda: runs.get_run(gated["run_id"]).state == State.COMPLETED)
            assert done
            shown = answer_of(await client.call_tool("runs_show", {"run_id": gated["run_id"][:8]}))
            assert shown["state"] == State.COMPLETED and shown["result"] == {"decision": "approve", "replicas": 12}
            assert [s["name"] for s in shown["steps"]] == ["approval:scale_deployment"]
            assert datetime.fromisoformat(shown["run"]["created_at"]).utcoffset() == timedelta(0)
            [listed_run] = [r for r in answer_of(await client.call_tool("runs_list", {}))["runs"]
                            if r["run_id"] == gated["run_id"]]
            assert listed_run["created_at"] == shown["run"]["created_at"]

    anyio.run(session)
    started = served_events("mcps_gated")
    assert [(e["status"], e["actor"], e["transport"]) for e in started] == [("started", "user:otto", "stdio")]
    assert started[0]["run_id"] and started[0]["args"] == {"replicas": 12}


def test_stdio_bad_arguments_are_tool_errors_and_the_server_keeps_serving(served: dict[str, Any]) -> None:
    async def session() -> None:
        async with stdio_client(served["env"], "--as", "otto") as client:
            for args, said in [({"times": 9}, "parameter 'times'"), ({"nosuch": 1}, "unknown parameter 'nosuch'"),
                               ({"name": ["a"]}, "parameter 'name'")]:
                assert said in error_of(await client.call_tool("mcps_hello", args))
            assert "no tool 'nosuch'" in error_of(await client.call_tool("nosuch", {}))
            assert "'limit' must be an integer" in error_of(await client.call_tool("runs_list", {"limit": "x"}))
            assert "no run with id" in error_of(await client.call_tool("runs_show", {"run_id": "0" * 32}))
            assert "unknown argument 'x'" in error_of(await client.call_tool("approvals_list", {"x": 1}))
            assert answer_of(await client.call_tool("mcps_hello", {}))["result"] == "Hello, world!"

    anyio.run(session)
    assert runs.list_runs(flow="mcps_hello", limit=10)[0].state == State.COMPLETED
    assert len(runs.list_runs(flow="mcps_hello", limit=10)) == 1  # refused calls wrote no run
    assert {e["status"] for e in served_events("mcps_hello")} == {"refused", "started"}


def test_stdio_as_a_viewer_reads_but_cannot_start_and_an_unknown_user_is_refused(served: dict[str, Any]) -> None:
    async def session() -> None:
        async with stdio_client(served["env"], "--as", "vera") as client:
            said = error_of(await client.call_tool("mcps_hello", {"name": "x"}))
            assert "vera" in said and "starting runs" in said
            assert answer_of(await client.call_tool("runs_list", {}))["runs"] == []

    anyio.run(session)
    assert runs.list_runs(limit=10) == []
    [refused] = served_events("mcps_hello")
    assert refused["status"] == "refused" and refused["actor"] == "user:vera"
    gone = subprocess.run([AGENTOPS, "mcp", "serve", "--as", "nobody"], env=served["env"], capture_output=True,
                          text=True, input="", timeout=60)
    assert gone.returncode == 2 and gone.stderr.startswith("error: ") and "nobody" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_http_tokens_map_to_roles_viewer_cannot_start_flows(served: dict[str, Any]) -> None:
    operator = tokens.add_token("mcp-otto", "operator")
    viewer = tokens.add_token("mcp-vera", "viewer")
    server = ApiServer("127.0.0.1", _free_port())
    server.start()
    url = f"{server.url}/mcp/"
    try:
        for headers in [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {operator}"}]:
            refused = httpx.post(url, headers=headers | {"Accept": "application/json, text/event-stream"},
                                 json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert refused.status_code == 401 and "token" in refused.json()["error"]

        async def session() -> None:
            async with http_client(url, viewer) as client:
                assert "mcps_gated" in {t.name for t in (await client.list_tools()).tools}
                said = error_of(await client.call_tool("mcps_gated", {"replicas": 2}))
                assert "mcp-vera" in said and "starting runs" in said
                assert answer_of(await client.call_tool("runs_list", {}))["runs"] == []
            async with http_client(url, operator) as client:
                gated = answer_of(await client.call_tool("mcps_gated", {"replicas": 4, "mode": "fast"}))
                assert gated["state"] == State.AWAITING_APPROVAL
                [waiting] = gated["approvals"]
                assert waiting["url"].endswith(f"/approvals?request={waiting['id']}")
                shown = answer_of(await client.call_tool("approvals_show", {"approval_id": waiting["id"]}))
                assert shown["args"] == {"name": "web-app", "replicas": 4} and shown["status"] == "pending"
                approvals_service.decide(waiting["id"], "reject", user="ada", message="not now")
                wait_for(lambda: runs.get_run(gated["run_id"]).state == State.COMPLETED)
                shown = answer_of(await client.call_tool("runs_show", {"run_id": gated["run_id"]}))
                assert shown["result"] == {"decision": "reject", "replicas": 4}
                assert "mode" in error_of(await client.call_tool("mcps_gated", {"mode": "reckless"}))

        anyio.run(session)
    finally:
        server.stop()
    events = served_events("mcps_gated")
    assert [(e["status"], e["actor"], e["transport"]) for e in events] == [
        ("refused", "user:mcp-vera", "http"), ("started", "user:mcp-otto", "http"),
        ("refused", "user:mcp-otto", "http")]
    assert [r.created_by for r in runs.list_runs(flow="mcps_gated", limit=10)] == ["mcp-otto"]


def ask_calls(root: Path) -> list[dict[str, Any]]:
    path = root / "ask_calls.json"
    return json.loads(path.read_text()) if path.exists() else []


def test_elicitation_is_a_respond_approval_answered_after_the_worker_was_killed(served: dict[str, Any]) -> None:
    root, worker = served["root"], served["worker"]
    run_id = runs.start_run("mcps_deploy", {"service": "api"}, user="otto")
    appr = wait_for(lambda: next(iter(runs.pending_approvals_for(run_id)), None))
    assert appr.kind == "respond" and appr.action == "ask.deploy"
    asked = json.loads(appr.args)
    assert asked["message"] == "Which change ticket covers deploying api?"
    assert asked["requested_schema"]["required"] == ["ticket", "window_minutes"]
    assert asked["call"]["service"] == "api" and len(asked["call"]["_mcp_definition"]) == 64  # bound to the tool
    assert runs.get_run(run_id).state == State.AWAITING_APPROVAL
    assert [c["tool"] for c in ask_calls(root)] == ["deploy.asked"]  # asked, nothing deployed

    worker.kill()  # no process holds the run while it waits; the one that made the call is gone
    with pytest.raises(Exception, match="window_minutes"):
        approvals_service.decide(appr.id, "respond", user="ada", response={"ticket": "CHG-7"})
    with pytest.raises(Exception, match="asks for input"):
        approvals_service.decide(appr.id, "approve", user="ada")
    with pytest.raises(Exception, match="otto"):  # maker-checker holds for answers too
        approvals_service.decide(appr.id, "respond", user="otto", response={"ticket": "CHG-7",
                                                                            "window_minutes": 30})
    approvals_service.decide(appr.id, "respond", user="ada", response={"ticket": "CHG-7", "window_minutes": 30})
    assert runs.get_run(run_id).state == State.PENDING

    worker.start()
    wait_for(lambda: runs.get_run(run_id).state == State.COMPLETED)
    result = json.loads(runs.get_run(run_id).result or "null")
    assert result == {"status": "ok", "content": "deployed api under CHG-7 within 30 minutes"}
    assert ask_calls(root)[-1] == {"tool": "deploy", "args": {"service": "api", "ticket": "CHG-7",
                                                              "window_minutes": 30}}
    steps = runs.run_steps(run_id)
    assert [(s.kind, json.loads(s.output or "{}").get("status") if s.kind == "tool" else s.state) for s in steps] \
        == [("policy", "COMPLETED"), ("tool", "input_required"), ("approval", "COMPLETED"), ("tool", "ok")]
    decided = open_store().search_ledger(action="approval.decided", limit=10)
    assert json.loads(decided[0].payload)["response"] == {"ticket": "CHG-7", "window_minutes": 30}


def test_a_declined_question_goes_back_to_the_server_and_a_mid_call_ask_is_a_clear_tool_error(
        served: dict[str, Any]) -> None:
    run_id = runs.start_run("mcps_deploy", {"service": "db"}, user="otto")
    appr = wait_for(lambda: next(iter(runs.pending_approvals_for(run_id)), None))
    approvals_service.decide(appr.id, "reject", user="ada", message="no change window today")
    wait_for(lambda: runs.get_run(run_id).state == State.COMPLETED)
    result = json.loads(runs.get_run(run_id).result or "null")
    assert result["status"] == "error" and "deploy" not in [c["tool"] for c in ask_calls(served["root"])]

    legacy = runs.start_run("mcps_legacy", {}, user="otto")
    wait_for(lambda: runs.get_run(legacy).state == State.COMPLETED)
    said = json.loads(runs.get_run(legacy).result or "null")
    assert said["status"] == "error" and "asked for input in the middle of the call" in said["content"]
    assert runs.pending_approvals_for(legacy) == []


def test_service_call_refuses_without_a_project_flow_or_with_non_object_arguments(served: dict[str, Any]) -> None:
    with pytest.raises(mcp_serve.ToolRefused, match="JSON object"):
        mcp_serve.call("mcps_hello", ["x"], user="otto", transport="stdio")  # type: ignore[arg-type]
    assert runs.list_runs(limit=5) == []


def test_a_question_left_to_expire_ends_the_call_unanswered(served: dict[str, Any]) -> None:
    worker = served["worker"]
    worker.stop()
    served["env"]["AGENTOPS_MCP_ELICITATION_EXPIRES_SECONDS"] = "1"
    worker.start()
    run_id = runs.start_run("mcps_deploy", {"service": "cache"}, user="otto")
    appr = wait_for(lambda: next(iter(runs.pending_approvals_for(run_id)), None))
    assert appr.kind == "respond" and appr.expires_at is not None and appr.expires_at - appr.created_at == 1
    wait_for(lambda: runs.get_run(run_id).state == State.COMPLETED)
    result = json.loads(runs.get_run(run_id).result or "null")
    assert result["status"] == "expired" and "expired unanswered" in result["content"]
    assert approvals_service.get_approval(appr.id).status == "expired"
    assert [c["tool"] for c in ask_calls(served["root"])] == ["deploy.asked"]  # never called again
    with pytest.raises(Exception, match="no effect and was not recorded"):
        approvals_service.decide(appr.id, "respond", user="ada", response={"ticket": "x", "window_minutes": 1})


def test_kept_sessions_start_the_server_once_per_process_and_again_after_it_died(
        served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from agentops.engine.mcp_sessions import pool
    from agentops.settings import reset_settings

    served["worker"].stop()  # this test's runs execute here, in the process that keeps the sessions
    monkeypatch.setenv("AGENTOPS_MCP_KEEP_SESSIONS", "1")
    reset_settings()
    starts = served["root"] / "ask_starts.txt"

    def pids() -> list[int]:
        return [int(x) for x in starts.read_text().split()] if starts.exists() else []

    try:
        first = runs.start_run("mcps_deploy", {"service": "api"}, user="otto", queue=False)
        runs.execute_here(first)
        appr = runs.pending_approvals_for(first)[0]
        approvals_service.decide(appr.id, "respond", user="ada", response={"ticket": "CHG-1", "window_minutes": 5})
        runs.resume(first, user="otto")
        assert json.loads(runs.get_run(first).result or "null")["content"] == \
            "deployed api under CHG-1 within 5 minutes"
        assert len(pids()) == 1  # the agent's listing, the policy's, the call and the call again: one server

        os.kill(pids()[0], signal.SIGKILL)
        second = runs.start_run("mcps_legacy", {}, user="otto", queue=False)
        runs.execute_here(second)
        said = json.loads(runs.get_run(second).result or "null")
        assert said["status"] == "error" and "asked for input in the middle of the call" in said["content"]
        assert len(pids()) == 2  # the dead server's session was closed and another started
    finally:
        pool().close()
