"""Secrets never reach storage or output: every table and every CLI JSON is searched for them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from agentops.db import open_store
from agentops.errors import ParameterError, RunFailed

PASSWORD = "hunter2-correct-horse"
API_KEY = "AKIAABCDEFGHIJKLMNOP"
OPENAI_KEY = "sk-proj-test-0123456789abcdefghij"
TOOL_SECRET = "sk-live-9876543210zyxwvutsrq"
VAULT_VALUE = "vault-value-31415926535"
SECRETS = (PASSWORD, API_KEY, OPENAI_KEY, TOOL_SECRET, VAULT_VALUE)

FLOWS = f'''
import hashlib

from pydantic import SecretStr

from agentops import flow, get_run_logger, request_approval, task


@task
def connect(host: str, password: str, headers: dict) -> dict:
    get_run_logger().info("connecting to %s with %s and %s", host, password, headers)
    return {{"host": host, "password": password, "echo": headers, "note": "key {TOOL_SECRET}"}}


@task
def explode(value: str) -> None:
    raise RuntimeError(f"the server refused {{value}}")


@flow
def leaky(host: str, password: str, api_key: str) -> dict:
    """Every way a careless flow can hand a secret to the engine."""
    out = connect(host, password, {{"Authorization": "Bearer {TOOL_SECRET}", "x": "{TOOL_SECRET}"}})
    get_run_logger().warning("api key is %s", api_key)
    decision = request_approval("send_email", {{"to": "a@example.com", "body": "use {TOOL_SECRET}"}},
                                reason="the key is {TOOL_SECRET}")
    return {{"out": out, "key": api_key, "decision": decision.kind}}


@flow
def failing(password: str) -> None:
    explode(password)


@flow
def vaulted(db_password: SecretStr) -> str:
    """Proves the flow received the real value without the value being returned."""
    return hashlib.sha256(db_password.get_secret_value().encode()).hexdigest()
'''


@pytest.fixture
def secret_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (project / "flows" / "leaky.py").write_text(FLOWS)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("VAULT_DB_PASSWORD", VAULT_VALUE)
    return project


def agentops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentops.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)


def everything_stored() -> str:
    """Every text value of every table, as one string to search."""
    store = open_store()
    chunks = []
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                chunks.extend(str(value) for value in row)
    return "\n".join(chunks)


def assert_no_secret(where: str, haystack: str) -> None:
    for secret in SECRETS:
        assert secret not in haystack, f"{secret!r} reached {where}"


@pytest.mark.timeout(600)  # a dozen CLI processes
def test_no_secret_reaches_any_table_or_any_cli_json(secret_project: Path) -> None:
    done = agentops("run", "leaky", "-p", "host=db.internal", "-p", f"password={PASSWORD}",
                    "-p", f"api_key={API_KEY}", "--json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    [approval] = json.loads(agentops("approvals", "list", "--json").stdout)
    assert approval["args"]["body"] == "use [REDACTED]"
    failed = agentops("run", "failing", "-p", f"password={PASSWORD}", "--json")
    assert json.loads(failed.stdout)["state"] == "FAILED"
    chat = agentops("chat", f"scale web-app, the key is {OPENAI_KEY} or {TOOL_SECRET}")
    outputs = [done, failed, chat]
    for args in (["runs", "show", run_id, "--json"], ["runs", "list", "--json"], ["audit", "export"],
                 ["approvals", "list", "--json"], ["runs", "show", run_id]):
        shown = agentops(*args)
        assert shown.returncode == 0, (args, shown.stderr)
        outputs.append(shown)
    for out in outputs:
        assert_no_secret(f"the output of {out.args[3:]}", out.stdout + out.stderr)
    assert_no_secret("the database", everything_stored())
    assert "[REDACTED]" in everything_stored()


def test_a_secret_parameter_reference_is_resolved_where_the_run_executes(secret_project: Path) -> None:
    done = agentops("run", "vaulted", "-p", "db_password=env:VAULT_DB_PASSWORD", "--queue", "--json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    assert agentops("worker", "--burst").returncode == 0
    shown = json.loads(agentops("runs", "show", run_id, "--json").stdout)
    assert shown["run"]["state"] == "COMPLETED"
    assert shown["run"]["result"] == hashlib.sha256(VAULT_VALUE.encode()).hexdigest()
    # --json nests the parameters, so the redactor sees the key's name and hides even the reference
    assert shown["run"]["parameters"] == {"db_password": "[REDACTED]"}
    assert_no_secret("the database", everything_stored())


def test_a_secret_value_cannot_be_queued_and_writes_nothing(secret_project: Path) -> None:
    done = agentops("run", "vaulted", "-p", f"db_password={VAULT_VALUE}", "--queue")
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "env:NAME" in done.stderr
    assert json.loads(agentops("runs", "list", "--json").stdout) == []


def test_a_missing_reference_fails_the_run_with_the_variable_named(secret_project: Path) -> None:
    done = agentops("run", "vaulted", "-p", "db_password=env:NOT_SET_ANYWHERE", "--json")
    result = json.loads(done.stdout)
    assert result["state"] == "FAILED" and "NOT_SET_ANYWHERE" in result["error"]


def test_an_inline_secret_runs_here_and_a_resume_elsewhere_refuses(secret_project: Path) -> None:
    from pydantic import SecretStr

    from agentops.engine.project import load_project
    from agentops.engine.registry import get_flow

    load_project()
    vaulted = get_flow("vaulted")
    assert vaulted(db_password=SecretStr(VAULT_VALUE)) == hashlib.sha256(VAULT_VALUE.encode()).hexdigest()
    [run] = open_store().list_runs(flow="vaulted")
    assert json.loads(run.parameters) == {"db_password": {"$secret": "inline"}}
    assert_no_secret("the database", everything_stored())
    with open_store().write() as conn:
        conn.execute(text("UPDATE flow_runs SET state = 'CRASHED' WHERE id = :id"), {"id": run.id})
    resumed = agentops("runs", "resume", run.id)
    assert "Traceback" not in resumed.stdout + resumed.stderr
    after = open_store().get_run(run.id)
    assert after is not None and after.state == "FAILED" and "passed as a value and is not stored" in after.error
    with pytest.raises((RunFailed, ParameterError)):
        vaulted(db_password="env:NOT_SET_ANYWHERE")
