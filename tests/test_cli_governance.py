"""Approvals, users and the audit ledger through the CLI, as an operator would use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.app_fixtures import copy_tools
from tests.test_cli import agentops

FLOWS = '''
from agentops import flow, request_approval


@flow
def risky(replicas: int) -> dict:
    decision = request_approval("scale_deployment", {"name": "web-app", "replicas": replicas}, reason="hot")
    return {"kind": decision.kind, "args": decision.args, "message": decision.message}
'''


@pytest.fixture
def gov_project(sqlite_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (sqlite_project / "flows" / "risky.py").write_text(FLOWS)
    copy_tools(sqlite_project)
    (sqlite_project / "policies").mkdir()
    (sqlite_project / "policies" / "default.yaml").write_text(
        "tools:\n  scale_deployment:\n    verdict: require_approval\n")
    monkeypatch.setenv("AGENTOPS_USER_PASSWORD", "correct horse battery")
    for name, role in [("alice", "approver"), ("vic", "viewer")]:
        assert agentops("users", "add", name, "--role", role).returncode == 0
    return sqlite_project


def test_approve_edit_reject_from_the_cli(gov_project: Path) -> None:
    run_id = json.loads(agentops("run", "risky", "-p", "replicas=12", "--json").stdout)["run_id"]
    pending = json.loads(agentops("approvals", "list", "--json").stdout)
    assert [(a["action"], a["args"]) for a in pending] == [("scale_deployment", {"name": "web-app", "replicas": 12})]
    appr = pending[0]["id"]

    denied = agentops("approvals", "approve", appr, "--as", "vic")
    assert denied.returncode == 2 and "role 'viewer'" in denied.stderr
    bad_json = agentops("approvals", "edit", appr, "--args", "{replicas: 8", "--as", "alice")
    assert bad_json.returncode == 2 and "--args is not valid JSON" in bad_json.stderr

    edited = agentops("approvals", "edit", appr, "--args", '{"name": "web-app", "replicas": 8}', "--as", "alice")
    assert edited.returncode == 0, edited.stderr
    again = agentops("approvals", "approve", appr, "--as", "alice")
    assert again.returncode == 2 and "already edited" in again.stderr
    assert agentops("worker", "--burst").returncode == 0
    shown = json.loads(agentops("runs", "show", run_id, "--json").stdout)
    assert shown["run"]["result"] == {"kind": "edit", "args": {"name": "web-app", "replicas": 8},
                                                  "message": None}

    second = json.loads(agentops("run", "risky", "-p", "replicas=30", "--json").stdout)["run_id"]
    appr2 = json.loads(agentops("approvals", "list", "--json").stdout)[0]["id"]
    assert agentops("approvals", "reject", appr2, "--reason", "too many", "--as", "alice").returncode == 0
    agentops("worker", "--burst")
    result = json.loads(agentops("runs", "show", second, "--json").stdout)["run"]["result"]
    assert result["kind"] == "reject" and result["message"] == "too many"


def test_users_add_refuses_duplicates_and_bad_roles(gov_project: Path) -> None:
    dup = agentops("users", "add", "alice", "--role", "approver")
    assert dup.returncode == 2 and dup.stderr.strip() == "error: user 'alice' already exists"
    bad = agentops("users", "add", "zed", "--role", "emperor")
    assert bad.returncode == 2 and "unknown role 'emperor'" in bad.stderr
    stdin = agentops("users", "add", "carol", "--role", "operator", "--password-stdin", stdin="s3cret-password\n")
    assert stdin.returncode == 0
    users = {u["name"]: u["role"] for u in json.loads(agentops("users", "list", "--json").stdout)}
    assert users == {"alice": "approver", "vic": "viewer", "carol": "operator"}


def test_audit_verify_and_export_detect_tampering(gov_project: Path, tmp_path: Path) -> None:
    agentops("run", "risky", "-p", "replicas=3")
    ok = json.loads(agentops("audit", "verify", "--json").stdout)
    assert ok["ok"] and ok["count"] >= 5
    out = tmp_path / "ledger.jsonl"
    assert agentops("audit", "export", "--since", "2000-01-01", "-o", str(out)).returncode == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == ok["count"] and lines[0]["action"] == "user.created"
    assert all("password" not in json.dumps(x) or "[REDACTED]" in json.dumps(x) for x in lines)

    from agentops.db import open_store

    with open_store().engine.begin() as conn:
        conn.execute(text("UPDATE ledger SET actor = 'user:mallory' WHERE seq = 2"))
    broken = agentops("audit", "verify")
    assert broken.returncode == 1 and "BROKEN at event seq=2" in broken.stdout
