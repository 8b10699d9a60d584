"""`agentops demo` from the CLI: a demo database laid anew each time, so a second demo leaves an approval waiting
again with the policy and its rate limits as written; the sales schedule at weekday 09:00 plus one run at start;
a port in use is one error line; roles and creators as the README says."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agentops import service
from agentops.db import close_stores, open_store
from agentops.errors import PermissionDenied
from agentops.settings import reset_settings
from tests.app_fixtures import ROOT


def agentops(project: Path, *args: str, env: dict[str, str] | None = None,
             code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "agentops.cli", *args], cwd=project, env=env or os.environ.copy(),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == code, done.stdout + done.stderr
    return done


@pytest.fixture
def demo_project(sqlite_project: Path) -> Path:
    for folder in ("flows", "tools", "prompts", "policies", "data"):
        shutil.copytree(ROOT / folder, sqlite_project / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return sqlite_project


def use_demo_database(project: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    folder = project / ".agentops" / "demo"
    monkeypatch.setenv("AGENTOPS_DATABASE_URL", f"sqlite:///{folder / 'agentops.db'}")
    monkeypatch.setenv("AGENTOPS_CHECKPOINT_DIR", str(folder / "checkpoints"))
    close_stores()
    reset_settings()
    return os.environ.copy()


def test_a_second_demo_starts_clean_and_waits_for_approval_again(demo_project: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    own = open_store()
    first = agentops(demo_project, "demo", "--exit").stdout
    unwrapped = " ".join(first.split())
    assert "laid anew for this demo" in unwrapped
    assert re.search(r"\(incident_response\): waiting for approval [0-9a-f]{32}: scale_deployment\(name=web-app, "
                     r"replicas=12\)", unwrapped), unwrapped
    assert "state PENDING" not in unwrapped and "(sales_analysis): completed" in unwrapped
    assert own.list_runs() == []  # the project's own database is not the demo's

    env = use_demo_database(demo_project, monkeypatch)
    [pending] = service.list_approvals()
    agentops(demo_project, "approvals", "approve", pending.id, "--as", "ada", env=env)
    agentops(demo_project, "worker", "--burst", env=env)
    assert open_store().deployment("web-app").replicas == 12
    [schedule] = open_store().list_schedules()
    assert (schedule.cron, schedule.timezone, schedule.interval_seconds) == ("0 9 * * 1-5", "Europe/Berlin", None)
    fires = datetime.fromtimestamp(schedule.next_fire_at, ZoneInfo("Europe/Berlin"))
    assert (fires.hour, fires.minute, fires.weekday() < 5) == (9, 0, True)
    reports = [m for m in open_store().outbox_list() if m.subject.startswith("Sales analysis")]
    assert len(reports) == 1 and reports[0].to == "managers@example.com"

    close_stores()
    second = " ".join(agentops(demo_project, "demo", "--exit").stdout.split())
    assert re.search(r"\(incident_response\): waiting for approval [0-9a-f]{32}: scale_deployment\(name=web-app, "
                     r"replicas=12\)", second), second
    assert open_store().deployment("web-app").replicas == 6 and len(open_store().list_approvals()) == 1
    assert service.audit_verify().ok
    policy = (demo_project / "policies" / "default.yaml").read_text()
    assert "rate_limit: {max: 3, per_seconds: 3600, key: name}" in policy


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("command", [["demo"], ["serve"], ["ui"]])
def test_a_port_in_use_is_one_error_line_and_exit_2(demo_project: Path, taken_port: int,
                                                   command: list[str]) -> None:
    done = agentops(demo_project, *command, "--port", str(taken_port), code=2)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(f"error: port {taken_port} on 127.0.0.1 is already in use")
    assert not (demo_project / ".agentops" / "demo").exists()  # the demo laid nothing down


def test_make_demo_passes_its_port() -> None:
    done = subprocess.run(["make", "-n", "demo", "PORT=8600"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "agentops demo --port 8600" in done.stdout


def test_schedules_are_for_operators_and_admins(demo_project: Path) -> None:
    for name, role in (("ada", "approver"), ("otto", "operator"), ("root", "admin"), ("vera", "viewer")):
        service.add_user(name, role, "correct horse battery")
    for who in ("ada", "vera"):
        with pytest.raises(PermissionDenied, match=f"role '{'approver' if who == 'ada' else 'viewer'}'"):
            service.schedules.add_schedule("hello", cron="0 9 * * 1-5", user=who)
    sid = service.schedules.add_schedule("hello", cron="0 9 * * 1-5", user="otto")
    service.schedules.add_schedule("hello", cron="0 10 * * 1-5", user="root")
    with pytest.raises(PermissionDenied):
        service.schedules.pause_schedule(sid, user="ada")
    done = agentops(demo_project, "schedules", "add", "hello", "--cron", "0 9 * * 1-5", "--as", "ada", code=2)
    assert done.stderr.startswith("error: ") and "approver" in done.stderr


def test_a_run_or_chat_without_an_acting_user_is_recorded_as_the_os_user(demo_project: Path) -> None:
    agentops(demo_project, "run", "hello", "-p", "name=Ada")
    agentops(demo_project, "chat", "say hello to Bob")
    runs = service.list_runs()
    assert runs and {r.created_by for r in runs} == {getpass.getuser()}
    messages = [e for e in service.audit_search(action="chat.message")]
    assert [e.actor for e in messages] == [f"user:{getpass.getuser()}"]


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
