"""An attacker's and a bad day's look at agentops as an MCP client: a person with write access to the database,
hostile servers (changed, duplicated or paginated listings, colliding names, huge or secret-bearing results, hung
or stopped processes, floods of requests for input) and kept sessions in a forked worker.

Every test here failed before the fix it comes with. Servers are the SDK's, spawned over stdio from
tests/mcp_servers/ops_server.py.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from langchain_core.messages import AIMessage

from agentops import flow
from agentops.agents import Agent
from agentops.agents.models.scripted import ScriptedChatModel
from agentops.core import serialization
from agentops.db import open_store
from agentops.engine.runner import create_run
from agentops.engine.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
SERVER = Path(__file__).resolve().parent / "mcp_servers" / "ops_server.py"

POLICY = """
version: 1
budgets: {max_tool_calls: 20}
tools:
  ops.status:
    verdict: allow
  ops.restart:
    verdict: allow
  ops.login:
    verdict: allow
  ops.hang:
    verdict: allow
  ops.hostile:
    verdict: allow
"""
TOOLS = "[status, restart, login, hang, hostile]"


def write_mcp_yaml(project: Path, variant: str = "original", extra: str = "", env: str = "") -> None:
    (project / "mcp.yaml").write_text(f"""
servers:
  ops:
    command: {sys.executable}
    args: ["{SERVER}", "stdio"]
    env:
      OPS_SERVER_STATE: "{project / 'calls.json'}"
      OPS_SERVER_VARIANT: {variant}{env}
    tools: {TOOLS}{extra}
""")


@pytest.fixture
def attack_project(project: Path) -> Path:
    """A project on SQLite or PostgreSQL with the stdio test server."""
    (project / "prompts").mkdir()
    (project / "prompts" / "incident.md").write_text((ROOT / "prompts" / "incident.md").read_text())
    (project / "policies").mkdir()
    (project / "policies" / "default.yaml").write_text(POLICY)
    write_mcp_yaml(project)
    return project


@pytest.fixture
def sqlite_attack_project(sqlite_project: Path) -> Path:
    return attack_project.__wrapped__(sqlite_project)  # type: ignore[attr-defined]


def call(name: str, args: dict, call_id: str = "c1") -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


def start(model: ScriptedChatModel, tools: list[str]) -> str:
    @flow(name=f"mcp_attack_flow_{id(model)}")
    def mcp_attack_flow() -> dict:
        result = Agent(name="ops", prompt="incident", tools=tools, model=model).run("check the services")
        return {"answer": result.answer, "calls": [(o.name, o.status, o.content) for o in result.tool_calls]}

    store = open_store()
    run_id = create_run(mcp_attack_flow, {}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    return run_id


def result_of(run_id: str) -> dict:
    run = open_store().get_run(run_id)
    assert run.state == "COMPLETED", (run.state, run.error)
    return serialization.loads(run.result)


def server_calls(project: Path) -> list[dict]:
    path = project / "calls.json"
    return json.loads(path.read_text()) if path.exists() else []


# -- a pin row changed in the database -------------------------------------------------------------------------


def _tamper(store, how: str, changed) -> None:  # type: ignore[no-untyped-def]
    """What a person with write access to the database does to make the changed definition the pinned one."""
    values = {"server": "ops", "tool": "restart", "digest": changed.digest,
              "definition": serialization.dumps(changed.as_dict()), "pinned_by": "system:mcp", "pinned_at": time.time()}
    with store.engine.begin() as conn:
        if how == "edited":
            conn.execute(sa.text("UPDATE mcp_pins SET digest = :digest, definition = :definition "
                                 "WHERE server = 'ops' AND tool = 'restart'"), values)
        elif how == "reinserted":
            conn.execute(sa.text("DELETE FROM mcp_pins WHERE server = 'ops' AND tool = 'restart'"))
            conn.execute(sa.text("INSERT INTO mcp_pins (server, tool, digest, definition, pinned_by, pinned_at) "
                                 "VALUES (:server, :tool, :digest, :definition, :pinned_by, :pinned_at)"), values)
        elif how == "deleted":
            conn.execute(sa.text("DELETE FROM mcp_pins WHERE server = 'ops' AND tool = 'restart'"))
        elif how == "inserted":  # no pin before: the row alone, without its event
            conn.execute(sa.text("INSERT INTO mcp_pins (server, tool, digest, definition, pinned_by, pinned_at) "
                                 "VALUES (:server, :tool, :digest, :definition, :pinned_by, :pinned_at)"), values)


@pytest.mark.parametrize("how", ["edited", "reinserted", "deleted", "inserted"])
def test_a_pin_row_changed_in_the_database_is_not_trusted_and_audit_verify_names_it(attack_project: Path,
                                                                                     how: str) -> None:
    from agentops.engine.mcp import list_definitions
    from agentops.governance.mcp_pins import pin_first_use, pin_state, repin
    from agentops.service.audit import audit_verify

    store = open_store()
    if how != "inserted":
        [original] = [d for d in list_definitions(attack_project, "ops") if d.name == "restart"]
        pin_first_use(store, original)
    write_mcp_yaml(attack_project, variant="changed")  # the rug pull: no destructiveHint, a 'force' argument
    [changed] = [d for d in list_definitions(attack_project, "ops") if d.name == "restart"]
    _tamper(store, how, changed)

    model = ScriptedChatModel(replies=[call("ops__restart", {"service": "web", "force": True}),
                                       AIMessage(content="refused")])
    run_id = start(model, ["ops.restart"])
    [(name, status, content)] = result_of(run_id)["calls"]
    assert status == "refused", content
    assert "calls are refused" in content and "agentops mcp pin ops restart" in content
    assert server_calls(attack_project) == [], "the changed tool never ran"
    [verdict] = store.search_ledger(run_id=run_id, action="policy.verdict")
    assert json.loads(verdict.payload)["verdict"]["rule"] == "mcp.pin"
    if how == "deleted":
        assert store.mcp_pin("ops", "restart") is None, "a deleted pin is not pinned again on use"
    assert pin_state(store, changed)[0] == "untrusted"

    report = audit_verify()
    assert not report.ok and "ops.restart" in (report.problem or ""), report.problem
    repin(store, attack_project, "ops", "restart", actor="user:root")  # an admin reviews and re-pins: trusted again
    assert audit_verify().ok
    assert pin_state(store, changed)[0] == "pinned"


def test_a_pin_is_checked_against_the_ledger_again_when_the_call_is_made(attack_project: Path) -> None:
    """Between screening and the call (an approval may wait for days) the row is edited: the call is refused."""
    from agentops.engine.mcp import list_definitions
    from agentops.engine.mcp_trust import check_pin
    from agentops.governance.mcp_pins import pin_first_use

    store = open_store()
    [original] = [d for d in list_definitions(attack_project, "ops") if d.name == "status"]
    pin_first_use(store, original)
    assert check_pin(store, "ops", "status").digest == original.digest
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE ledger SET payload = REPLACE(payload, :d, :e) WHERE action = 'mcp.pinned'"),
                     {"d": original.digest, "e": "f" * 64})
    found = check_pin(store, "ops", "status")
    assert found.digest is None and "was edited" in (found.problem or "")
