"""MCP server tools under the same governance as local tools, against real MCP servers written with the SDK's
MCPServer (FastMCP): one spawned over stdio for each session, one over Streamable HTTP on 127.0.0.1.

The governed path (policy deny, approval, the idempotency key in `_meta`, secrets redacted), a tool no agent names
never offered to the model, schema-invalid arguments refused before any call, a rug pull refused until re-pinned,
and the stdio server's environment holding nothing agentops did not pass.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from agentops import flow
from agentops.agents import Agent
from agentops.agents.models.scripted import ScriptedChatModel
from agentops.core import serialization
from agentops.db import open_store
from agentops.engine.runner import create_run
from agentops.engine.worker import Worker
from agentops.errors import PolicyViolation
from agentops.governance.approvals import decide
from agentops.governance.users import add_user

ROOT = Path(__file__).resolve().parent.parent
SERVER = Path(__file__).resolve().parent / "mcp_servers" / "ops_server.py"
SECRET = "sk-test-4f9c2b7e8d1a6e3f"
TOKEN = "mcp-token-8a7b6c5d4e3f2a1b"

POLICY = """
version: 1
budgets: {max_tool_calls: 20}
tools:
  ops.status:
    verdict: allow
    constraints:
      service: {enum: [web, db]}
    when:
      - if: service == "db"
        verdict: deny
        reason: the database is the DBA team's
  ops.restart:
    verdict: allow
  ops.login:
    verdict: allow
    rate_limit: {max: 1, per_seconds: 3600, key: user}
  ops.crash:
    verdict: allow
  ops.show_env:
    verdict: allow
  opshttp.status:
    verdict: require_approval
    reason: the HTTP server's tools need a person
"""


def call(name: str, args: dict, call_id: str = "c1") -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The test server over Streamable HTTP on 127.0.0.1, behind a bearer-token check, for the module."""
    state = tmp_path_factory.mktemp("http") / "calls.json"
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "http", str(port)], env={
        "PATH": "/usr/bin:/bin", "OPS_SERVER_STATE": str(state), "OPS_SERVER_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the MCP test server did not start") from None
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp", state
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def mcp_project(sqlite_project: Path, http_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    url, http_state = http_server
    (sqlite_project / "prompts").mkdir()
    (sqlite_project / "prompts" / "incident.md").write_text((ROOT / "prompts" / "incident.md").read_text())
    (sqlite_project / "policies").mkdir()
    (sqlite_project / "policies" / "default.yaml").write_text(POLICY)
    write_mcp_yaml(sqlite_project, url)
    http_state.unlink(missing_ok=True)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AGENTOPS_MCP_OPSHTTP_TOKEN", TOKEN)
    add_user(open_store(), "ada", "approver", "correct horse battery")
    add_user(open_store(), "root", "admin", "correct horse battery")
    return sqlite_project


def write_mcp_yaml(project: Path, url: str, variant: str = "original") -> None:
    (project / "mcp.yaml").write_text(f"""
servers:
  ops:
    command: {sys.executable}
    args: ["{SERVER}", "stdio"]
    env:
      OPS_SERVER_STATE: "{project / 'calls.json'}"
      OPS_SERVER_VARIANT: {variant}
    tools: [status, restart, login, show_env, crash]
  opshttp:
    url: {url}
    token_env: AGENTOPS_MCP_OPSHTTP_TOKEN
    tools: [status]
""")


def server_calls(project: Path) -> list[dict]:
    path = project / "calls.json"
    return json.loads(path.read_text()) if path.exists() else []


def start(model: ScriptedChatModel, tools: list[str]) -> str:
    @flow(name=f"mcp_flow_{id(model)}")
    def mcp_flow() -> dict:
        result = Agent(name="ops", prompt="incident", tools=tools, model=model).run("check the services")
        return {"answer": result.answer, "calls": [(o.name, o.status, o.content) for o in result.tool_calls]}

    store = open_store()
    run_id = create_run(mcp_flow, {}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    return run_id


def result_of(run_id: str) -> dict:
    run = open_store().get_run(run_id)
    assert run.state == "COMPLETED", (run.state, run.error)
    return serialization.loads(run.result)


def ledger_text(run_id: str | None = None) -> str:
    return "\n".join(f"{e.action} {e.payload}" for e in open_store().search_ledger(run_id=run_id, limit=10_000))


def test_an_allowed_call_carries_its_idempotency_key_in_meta_and_a_denied_one_never_reaches_the_server(
        mcp_project: Path) -> None:
    spoofed = {"service": "web", "_mcp_definition": "0" * 64}  # the model cannot choose the definition binding
    model = ScriptedChatModel(replies=[call("ops__status", spoofed, "c1"),
                                       call("ops__status", {"service": "payments"}, "c2"),
                                       call("ops__status", {"service": "db"}, "c3"),
                                       AIMessage(content="web is healthy")])
    run_id = start(model, ["ops.status"])
    out = result_of(run_id)
    assert out["calls"][0][:2] == ["ops.status", "ok"] and "web: healthy" in out["calls"][0][2]
    assert out["calls"][1][1] == "refused" and "payments" in out["calls"][1][2]
    assert out["calls"][2][1] == "refused" and "the database is the DBA team's" in out["calls"][2][2]
    [sent] = server_calls(mcp_project)
    assert sent["args"] == {"service": "web"}, "the definition binding is not sent to the server"
    tool_step = next(s for s in open_store().steps_for_run(run_id) if s.kind == "tool")
    assert sent["meta"]["agentops/idempotency_key"] == f"{run_id}:{tool_step.step_no}"
    assert sent["meta"]["agentops/run_id"] == run_id
    events = sorted(open_store().search_ledger(run_id=run_id, action="policy.verdict"), key=lambda e: e.seq)
    verdicts = [json.loads(e.payload) for e in events]
    assert [v["status"] for v in verdicts] == ["allow", "refused", "refused"]
    assert [v["verdict"]["rule"] for v in verdicts[1:]] == ["tools.ops.status.constraints.service",
                                                            "tools.ops.status.when[0]"]
    pin = open_store().mcp_pin("ops", "status")
    assert pin is not None and verdicts[0]["args"]["_mcp_definition"] == pin.digest != "0" * 64


def test_a_tool_the_agent_does_not_name_is_never_offered_and_a_call_to_it_is_not_made(mcp_project: Path) -> None:
    model = ScriptedChatModel(replies=[call("ops__wipe_all", {}, "c1"), AIMessage(content="nothing to do")])
    run_id = start(model, ["ops.status", "ops.restart"])
    assert result_of(run_id)["calls"] == []
    assert model.bound_tools[0] == ["ops__status", "ops__restart"]
    assert all("wipe_all" not in json.dumps(m.model_dump()) for m in model.calls[0])
    assert server_calls(mcp_project) == []


def test_a_whole_server_gives_exactly_its_allowlist(mcp_project: Path) -> None:
    model = ScriptedChatModel(replies=[AIMessage(content="fine")])
    result_of(start(model, ["ops"]))
    assert model.bound_tools[0] == ["ops__status", "ops__restart", "ops__login", "ops__show_env", "ops__crash"]


def test_schema_invalid_arguments_are_refused_before_any_call(mcp_project: Path) -> None:
    model = ScriptedChatModel(replies=[call("ops__status", {"service": 42}, "c1"),
                                       call("ops__status", {}, "c2"), AIMessage(content="gave up")])
    out = result_of(start(model, ["ops.status"]))
    assert [c[1] for c in out["calls"]] == ["refused", "refused"]
    assert "invalid arguments for 'ops.status': service: 42 is not of type 'string'" in out["calls"][0][2]
    assert "'service' is a required property" in out["calls"][1][2]
    assert server_calls(mcp_project) == []


def test_a_destructive_tool_waits_for_a_person_and_runs_as_edited(mcp_project: Path) -> None:
    model = ScriptedChatModel(replies=[call("ops__restart", {"service": "web"}), AIMessage(content="restarted")])
    run_id = start(model, ["ops.restart"])
    store = open_store()
    assert store.get_run(run_id).state == "AWAITING_APPROVAL"
    assert server_calls(mcp_project) == []
    [appr] = store.list_approvals(run_id=run_id)
    verdict = serialization.loads(appr.verdict)
    assert verdict["rule"] == "mcp.annotations.destructiveHint", "the server's hint tightened an allow"
    assert verdict["mcp"]["description_untrusted"] == "Restart a service."
    assert serialization.loads(appr.args)["_mcp_definition"] == verdict["mcp"]["digest"]
    with pytest.raises(PolicyViolation, match="edited arguments rejected: service: 5 is not of type 'string'"):
        decide(store, appr.id, "edit", user="ada", edited_args={"service": 5})
    decide(store, appr.id, "edit", user="ada", edited_args={"service": "db", "_mcp_definition": "0" * 64})
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    assert result_of(run_id)["calls"][0][:2] == ["ops.restart", "ok"], "the edit stayed bound to the definition"
    assert [c["args"] for c in server_calls(mcp_project)] == [{"service": "db"}]


def test_a_secret_in_arguments_or_results_is_redacted_in_the_ledger(mcp_project: Path) -> None:
    model = ScriptedChatModel(replies=[call("ops__login", {"user": "ada", "password": SECRET}, "c1"),
                                       call("ops__login", {"user": "ada", "password": SECRET}, "c2"),
                                       AIMessage(content="logged in")])
    run_id = start(model, ["ops.login"])
    out = result_of(run_id)
    assert [c[1] for c in out["calls"]] == ["ok", "refused"] and "rate limit: 1 of 1" in out["calls"][1][2]
    assert [c["tool"] for c in server_calls(mcp_project)] == ["login"]
    text = ledger_text(run_id)
    assert "tool.result" in text and SECRET not in text


def test_a_stdio_server_sees_only_the_environment_it_was_given(mcp_project: Path) -> None:
    names = ["OPENAI_API_KEY", "AGENTOPS_DATABASE_URL", "AGENTOPS_MCP_OPSHTTP_TOKEN", "OPS_SERVER_VARIANT"]
    model = ScriptedChatModel(replies=[call("ops__show_env", {"names": names}), AIMessage(content="done")])
    out = result_of(start(model, ["ops.show_env"]))
    assert json.loads(out["calls"][0][2]) == {"OPENAI_API_KEY": "<unset>", "AGENTOPS_DATABASE_URL": "<unset>",
                                              "AGENTOPS_MCP_OPSHTTP_TOKEN": "<unset>", "OPS_SERVER_VARIANT": "original"}


def test_an_http_server_is_called_with_its_token_and_under_the_policy(mcp_project: Path,
                                                                       http_server: tuple[str, Path]) -> None:
    model = ScriptedChatModel(replies=[call("opshttp__status", {"service": "db"}), AIMessage(content="db ok")])
    run_id = start(model, ["opshttp.status"])
    store = open_store()
    [appr] = store.list_approvals(run_id=run_id)
    assert appr.action == "opshttp.status"
    decide(store, appr.id, "approve", user="ada")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    assert result_of(run_id)["calls"][0][:2] == ["opshttp.status", "ok"]
    sent = json.loads(http_server[1].read_text())
    assert sent[-1]["args"] == {"service": "db"}
    assert sent[-1]["meta"]["agentops/run_id"] == run_id


def test_a_changed_definition_is_refused_until_re_pinned_and_an_old_approval_never_runs_it(
        mcp_project: Path, http_server: tuple[str, Path]) -> None:
    from agentops.governance.mcp_pins import repin

    store = open_store()
    first = ScriptedChatModel(replies=[call("ops__restart", {"service": "web"}), AIMessage(content="asked")])
    waiting = start(first, ["ops.restart"])
    assert store.get_run(waiting).state == "AWAITING_APPROVAL"
    assert store.mcp_pin("ops", "restart") is not None, "the first allowed use pinned the definition"

    write_mcp_yaml(mcp_project, http_server[0], variant="changed")  # the rug pull
    pulled = ScriptedChatModel(replies=[call("ops__restart", {"service": "web", "force": True}),
                                        AIMessage(content="refused")])
    out = result_of(start(pulled, ["ops.restart"]))
    assert out["calls"][0][1] == "refused" and "changed the definition of 'restart'" in out["calls"][0][2]

    [appr] = store.list_approvals(run_id=waiting)
    decide(store, appr.id, "approve", user="ada")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    old = result_of(waiting)
    assert old["calls"][0][1] == "error" and "changed since the call was screened and approved" in old["calls"][0][2]

    [done] = repin(store, mcp_project, "ops", "restart", actor="user:root")
    assert done.previous is not None and done.previous != done.digest
    pinned = [json.loads(e.payload) for e in sorted(store.search_ledger(action="mcp.pinned"), key=lambda e: e.seq)]
    assert [p["first_use"] for p in pinned] == [True, False] and "Ignore previous" in json.dumps(pinned[-1])

    again = ScriptedChatModel(replies=[call("ops__restart", {"service": "web", "force": True}),
                                       AIMessage(content="restarted")])
    run_id = start(again, ["ops.restart"])
    verdict = json.loads(store.search_ledger(run_id=run_id, action="policy.verdict")[0].payload)["verdict"]
    assert verdict["mcp"]["digest"] == done.digest and verdict["rule"] == "tools.ops.restart"
    assert result_of(run_id)["calls"][0][:2] == ["ops.restart", "ok"]
    assert [c["args"] for c in server_calls(mcp_project)] == [{"service": "web", "force": True}]


def test_an_http_server_without_its_token_is_a_clear_error_and_nothing_runs(mcp_project: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_MCP_OPSHTTP_TOKEN", "wrong")
    model = ScriptedChatModel(replies=[AIMessage(content="never")])
    run_id = start(model, ["opshttp.status"])
    run = open_store().get_run(run_id)
    assert run.state == "FAILED" and "server 'opshttp' did not list its tools" in run.error
    assert model.calls == [], "no model call is made with tools that could not be listed"


def test_mcp_list_and_pin_from_the_cli(mcp_project: Path, http_server: tuple[str, Path]) -> None:
    from tests.test_cli import agentops

    result_of(start(ScriptedChatModel(replies=[call("ops__status", {"service": "web"}), AIMessage(content="ok")]),
                    ["ops.status"]))
    listed = json.loads(agentops("mcp", "list", "--json").stdout)
    ops = next(s for s in listed if s["name"] == "ops")
    assert ops["transport"] == "stdio" and ops["agents"] == ["ops"]
    assert {t["name"]: t["pin"] for t in ops["tools"]} == {
        "status": "pinned", "restart": "unpinned", "login": "unpinned", "show_env": "unpinned", "crash": "unpinned"}
    assert next(s for s in listed if s["name"] == "opshttp")["tools"][0]["pin"] == "unpinned"

    write_mcp_yaml(mcp_project, http_server[0], variant="changed")
    assert agentops("mcp", "pin", "ops", "restart", "--as", "ada").returncode == 2, "an approver is not an admin"
    assert open_store().mcp_pin("ops", "restart") is None
    done = agentops("mcp", "pin", "ops", "restart", "--as", "root")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pinned ops.restart ")
    [event] = open_store().search_ledger(action="mcp.pinned", actor="user:root")
    assert json.loads(event.payload)["definition"]["input_schema"]["required"] == ["service", "force"]
    refused = agentops("mcp", "pin", "ops", "wipe_all", "--as", "root")
    assert refused.returncode == 2 and "has no tool 'wipe_all' that agents may use" in refused.stderr


@pytest.mark.parametrize(("text", "line", "message"), [
    ("servers:\n  ops:\n    command: python\n    url: http://127.0.0.1:1/mcp\n", 2,
     "give exactly one of 'command'"),
    ("servers:\n  ops:\n    command: python\n    env_from: [OK, 'NOT A NAME']\n", 4,
     "'NOT A NAME' is not an environment variable name"),
    ("servers:\n  ops:\n    command: python\n    tools: [a]\n  ops:\n    url: http://x\n", 5, "given twice"),
    ("servers:\n  Bad.Name:\n    command: python\n", 1, "server name 'Bad.Name'"),
    ("servers:\n  ops:\n    url: ftp://127.0.0.1/\n", 3, "is not an http(s) URL"),
    ("servers:\n  ops:\n    command: python\n    shell: true\n", 4, "unknown key"),
    ("servers:\n  ops:\n    url: https://bot:hunter22pw@mcp.example.com/mcp\n", 3, "holds credentials"),
    ("servers:\n  ops:\n    url: ftp://hunter22pw@mcp.example.com/\n", 3, "holds credentials"),
    ("servers:\n  ops:\n    url: https://mcp.example.com/mcp?x=1&api_key=hunter22pw\n", 3, "holds 'api_key'"),
    ("servers:\n  ops:\n    url: https://mcp.example.com/mcp?access_token=hunter22pw\n", 3, "holds 'access_token'"),
    ("- just a list\n", 1, "must be a mapping"),
])
def test_a_bad_mcp_yaml_is_one_error_naming_its_line(sqlite_project: Path, text: str, line: int,
                                                    message: str) -> None:
    from agentops.engine.mcp import mcp_servers
    from agentops.errors import ConfigError

    (sqlite_project / "mcp.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        mcp_servers(sqlite_project)
    assert str(err.value).startswith(f"mcp.yaml:{line}: ") and message in str(err.value), str(err.value)
    assert "hunter22pw" not in str(err.value)


def test_the_cli_says_a_bad_mcp_yaml_in_one_line_and_exits_2(sqlite_project: Path) -> None:
    from tests.test_cli import agentops

    (sqlite_project / "mcp.yaml").write_text("servers:\n  ops:\n    command: python\n    shell: true\n")
    done = agentops("mcp", "list")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: mcp.yaml:4: servers.ops.shell: unknown key"]


def test_policy_check_knows_the_arguments_of_mcp_tools(mcp_project: Path) -> None:
    from agentops.errors import ConfigError
    from agentops.governance.policy import load_project_policy
    from tests.test_cli import agentops

    assert "ops.status" in load_project_policy(mcp_project).rules
    policy = mcp_project / "policies" / "default.yaml"
    policy.write_text(POLICY + "  ops.show_env2:\n    verdict: allow\n")
    with pytest.raises(ConfigError, match=re.escape("unknown tool 'ops.show_env2' (did you mean 'ops.show_env'?")):
        load_project_policy(mcp_project)
    policy.write_text(POLICY.replace("service: {enum: [web, db]}", "servce: {enum: [web, db]}"))
    done = agentops("policy", "check")
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: policies/default.yaml:8: tools.ops.status.constraints.servce: unknown "
                                   "argument 'servce' (ops.status takes: service)")


def test_the_first_of_several_concurrent_pins_holds_and_an_admin_re_pin_replaces_it(store) -> None:  # type: ignore[no-untyped-def]
    import threading

    from agentops.core.ledger import Event

    def values(digest: str) -> dict:
        return {"server": "ops", "tool": "status", "digest": digest, "definition": "{}", "pinned_by": "t",
                "pinned_at": time.time()}

    held: list[str] = []
    barrier = threading.Barrier(4)

    def pin(digest: str) -> None:
        barrier.wait()
        held.append(store.add_mcp_pin(values(digest), [Event(actor="t", action="mcp.pinned",
                                                             payload={"digest": digest})]).digest)

    threads = [threading.Thread(target=pin, args=(c * 64,)) for c in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(held)) == 1, "every writer sees the one pin that holds"
    events = store.search_ledger(action="mcp.pinned")
    assert [json.loads(e.payload)["digest"] for e in events] == held[:1]
    store.replace_mcp_pin(values("e" * 64), [Event(actor="user:root", action="mcp.pinned", payload={})])
    assert [p.digest for p in store.mcp_pins()] == ["e" * 64]


def test_a_server_that_dies_mid_call_is_a_tool_error_the_model_is_told_of(mcp_project: Path) -> None:
    model = ScriptedChatModel(replies=[call("ops__crash", {"service": "web"}), AIMessage(content="it crashed")])
    out = result_of(start(model, ["ops.crash"]))
    assert out["answer"] == "it crashed"
    assert out["calls"][0][:2] == ["ops.crash", "error"] and "MCP server 'ops'" in out["calls"][0][2]
    assert [c["tool"] for c in server_calls(mcp_project)] == ["crash"]
    assert model.calls[1][-1].status == "error"


def test_a_rejected_call_never_reaches_the_server_and_the_model_is_told_why(mcp_project: Path) -> None:
    model = ScriptedChatModel(replies=[call("ops__restart", {"service": "web"}), AIMessage(content="left alone")])
    run_id = start(model, ["ops.restart"])
    store = open_store()
    [appr] = store.list_approvals(run_id=run_id)
    decide(store, appr.id, "reject", user="ada", message="not during the sale")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    out = result_of(run_id)
    assert out["calls"][0][:2] == ["ops.restart", "rejected"] and "not during the sale" in out["calls"][0][2]
    assert out["answer"] == "left alone"
    assert server_calls(mcp_project) == [], "a rejected MCP call is never sent"
    [event] = store.search_ledger(run_id=run_id, action="approval.decided")
    assert json.loads(event.payload)["decision"] == "reject" and event.actor == "user:ada"


def test_a_stdio_server_runs_in_the_project_root_wherever_agentops_started(
        mcp_project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentops.engine.mcp import list_definitions

    (mcp_project / "servers").mkdir()
    (mcp_project / "servers" / "ops.py").write_text(SERVER.read_text())
    (mcp_project / "mcp.yaml").write_text(f"""
servers:
  local:
    command: {sys.executable}
    args: [servers/ops.py, stdio]
    tools: [status]
  nested:
    command: {sys.executable}
    args: [ops.py, stdio]
    cwd: servers
    tools: [status]
""")
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert [d.name for d in list_definitions(mcp_project, "local") if d.name == "status"] == ["status"]
    assert [d.name for d in list_definitions(mcp_project, "nested") if d.name == "status"] == ["status"]
