"""Bad settings and damaged rows: one `error:` line, exit code 2, no traceback, and nothing written."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

FLOWS = '''
from agentops import flow, request_approval, task


@task
def double(x: int) -> int:
    return 2 * x


@flow
def doubler(x: int = 2) -> int:
    return double(x)


@flow
def gated() -> str:
    return request_approval("scale_deployment", {"name": "web-app", "replicas": 3}, reason="test").kind
'''


@pytest.fixture
def cli_project(sqlite_project: Path) -> Path:
    (sqlite_project / "flows" / "doubler.py").write_text(FLOWS)
    return sqlite_project


def agentops(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentops.cli", *args], capture_output=True, text=True,
                          env=os.environ | env, timeout=120)


def assert_one_error_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert expected in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def run_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM flow_runs").fetchone()[0]


def database_of(project: Path) -> Path:
    return Path(os.environ["AGENTOPS_DATABASE_URL"].removeprefix("sqlite:///"))


@pytest.mark.parametrize(("env", "expected"), [
    ({"AGENTOPS_DATABASE_URL": "mysql://u@localhost/db"}, "unknown scheme 'mysql'"),
    ({"AGENTOPS_DATABASE_URL": "postgresql+nosuch://u@localhost/db"}, "unknown scheme 'postgresql+nosuch'"),
    ({"AGENTOPS_DATABASE_URL": "not a url"}, "unknown scheme"),
    ({"AGENTOPS_DATABASE_URL": "postgresql+psycopg2://u@localhost/db"}, "the driver 'psycopg2' is not installed"),
    ({"AGENTOPS_STALE_AFTER_SECONDS": "abc"}, "AGENTOPS_STALE_AFTER_SECONDS='abc': Input should be a valid number"),
    ({"AGENTOPS_HEARTBEAT_SECONDS": "0"}, "AGENTOPS_HEARTBEAT_SECONDS='0': Input should be greater than 0"),
    ({"AGENTOPS_TASK_WORKERS": "many"}, "AGENTOPS_TASK_WORKERS='many'"),
    ({"AGENTOPS_SHADOW_POLICY": "perhaps"}, "AGENTOPS_SHADOW_POLICY='perhaps'"),
    ({"AGENTOPS_MODEL": "nonsense-model"}, "AGENTOPS_MODEL='nonsense-model': no known provider"),
    ({"AGENTOPS_MODEL": "anthropic:claude-x"}, "package langchain-anthropic is not installed"),
    ({"AGENTOPS_BROKER_URL": "redis://127.0.0.1:6379/0"}, "AGENTOPS_BROKER_URL needs PostgreSQL"),
    ({"AGENTOPS_BROKER_URL": "http://127.0.0.1:6379/0"}, "a broker URL starts with one of redis://"),
    ({"AGENTOPS_BROKER_QUEUE": "two words"}, "AGENTOPS_BROKER_QUEUE='two words'"),
    ({"AGENTOPS_FLOW_QUEUES": '{"doubler": "two words"}'}, "flow 'doubler': queue name 'two words'"),
    ({"AGENTOPS_FLOW_QUEUES": '{"doubler": ""}'}, "flow 'doubler': queue name ''"),
    ({"AGENTOPS_FLOW_QUEUES": '{"doubler": "unacked"}'}, "flow 'doubler': queue name 'unacked' is one of the broker"),
    ({"AGENTOPS_FLOW_QUEUES": '{"doubler": "_kombu.binding.agentops"}'}, "queue name '_kombu.binding.agentops' is"),
    ({"AGENTOPS_KUBERNETES_NAMESPACE": "prod/../kube-system"}, "AGENTOPS_KUBERNETES_NAMESPACE='prod/../kube-system"),
    ({"AGENTOPS_KUBERNETES_NAMESPACE": "prod\n"}, "a Kubernetes namespace is 1 to 63 lowercase letters"),
    ({"AGENTOPS_BROKER_QUEUE": "unacked_index"}, "queue name 'unacked_index' is one of the broker's own Redis keys"),
    ({"AGENTOPS_BROKER_QUEUE": "agentops\n"}, "queue name 'agentops\\n': use 1 to 200"),
    ({"AGENTOPS_FLOW_QUEUES": '["reports"]'}, "AGENTOPS_FLOW_QUEUES=['reports']: Input should be a valid dict"),
    ({"AGENTOPS_FLOW_QUEUES": '{"doubler": '}, "setting AGENTOPS_FLOW_QUEUES: not valid JSON"),
    ({"AGENTOPS_BROKER_VISIBILITY_TIMEOUT_SECONDS": "50"}, "=50 is below twice AGENTOPS_STALE_AFTER_SECONDS=30"),
])
def test_a_bad_setting_is_one_line_and_no_run(cli_project: Path, env: dict[str, str], expected: str) -> None:
    assert agentops("run", "doubler").returncode == 0
    db = database_of(cli_project)
    before = run_count(db)
    assert_one_error_line(agentops("run", "doubler", **env), expected)
    assert_one_error_line(agentops("run", "doubler", "--queue", **env), expected)
    assert run_count(db) == before


def test_a_password_in_a_bad_database_url_is_never_shown(cli_project: Path) -> None:
    done = agentops("runs", "list", AGENTOPS_DATABASE_URL="postgresql://ops:hunter2-secret@127.0.0.1:1/agentops")
    assert_one_error_line(done, "cannot open the database postgresql+psycopg://ops:***@127.0.0.1:1/agentops")
    assert "hunter2" not in done.stderr + done.stdout


def test_a_password_in_a_bad_broker_url_is_never_shown(cli_project: Path) -> None:
    done = agentops("run", "doubler", AGENTOPS_BROKER_URL="http://agentops:hunter2-secret@127.0.0.1:6379/0")
    assert_one_error_line(done, "AGENTOPS_BROKER_URL=<hidden>")
    assert "hunter2" not in done.stdout + done.stderr


@pytest.mark.parametrize(("args", "env", "expected"), [
    (("worker", "--celery"), {}, "agentops worker --celery needs AGENTOPS_BROKER_URL"),
    (("worker", "-Q", "two words"), {}, "queue name 'two words'"),
    (("worker", "--burst", "-Q", "ok", "-Q", "a/b"), {}, "queue name 'a/b'"),
    (("worker", "--burst", "-Q", "unacked_mutex"), {}, "queue name 'unacked_mutex' is one of the broker's own"),
    (("worker", "--burst", "-Q", "_kombu.binding.reports"), {}, "queue name '_kombu.binding.reports' is one of"),
    (("worker", "--celery", "-Q", "x" * 201), {"AGENTOPS_BROKER_URL": "redis://127.0.0.1:1/0"}, "queue name 'xxx"),
    (("worker", "--celery", "--burst"), {}, "--burst is for the polling worker"),
    (("worker", "--celery"), {"AGENTOPS_BROKER_URL": "redis://127.0.0.1:1/0"}, "needs PostgreSQL"),
])
def test_a_worker_that_cannot_take_runs_from_a_broker_says_why(cli_project: Path, args: tuple[str, ...],
                                                               env: dict[str, str], expected: str) -> None:
    assert_one_error_line(agentops(*args, **env), expected)


@pytest.mark.parametrize("queue", ["reports; rm -rf /", "unacked", "_kombu.binding.agentops"])
def test_a_flow_routed_to_a_bad_queue_name_is_one_line_and_no_run(cli_project: Path, queue: str) -> None:
    assert agentops("run", "doubler").returncode == 0
    before = run_count(database_of(cli_project))
    (cli_project / "flows" / "routed.py").write_text(
        f'from agentops import flow\n\n\n@flow(queue="{queue}")\ndef badly_routed() -> int:\n    return 1\n')
    assert_one_error_line(agentops("run", "doubler", "--queue"), f"queue name '{queue}'")
    assert run_count(database_of(cli_project)) == before


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(cli_project: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("these are my notes, not a database\n")
    assert_one_error_line(agentops("run", "doubler", AGENTOPS_DATABASE_URL=f"sqlite:///{notes}"),
                          f"{notes} is not a SQLite database")
    assert notes.read_text() == "these are my notes, not a database\n"


def test_a_sqlite_url_into_a_missing_directory_is_not_created(cli_project: Path, tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "agentops.db"
    assert_one_error_line(agentops("run", "doubler", AGENTOPS_DATABASE_URL=f"sqlite:///{missing}"),
                          f"the directory {missing.parent} does not exist")
    assert not missing.parent.exists()


def test_a_missing_project_directory_is_not_created(cli_project: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-project"
    assert_one_error_line(agentops("--project", str(missing), "runs", "list"), "is not a directory")
    assert_one_error_line(agentops("runs", "list", AGENTOPS_PROJECT_DIR=str(missing)),
                          "AGENTOPS_PROJECT_DIR")
    assert not missing.exists()


def test_the_default_state_directory_is_still_created_on_first_use(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    (project / "flows").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "fresh"\n')
    (project / "flows" / "doubler.py").write_text(FLOWS)
    env = {k: v for k, v in os.environ.items() if k != "AGENTOPS_DATABASE_URL"}
    done = subprocess.run([sys.executable, "-m", "agentops.cli", "--project", str(project), "run", "doubler"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (project / ".agentops" / "agentops.db").is_file()


@pytest.mark.parametrize(("table", "column", "command", "expected"), [
    ("ledger", "payload", ["audit", "export"], "ledger event 1 payload is not valid JSON"),
    ("approvals", "args", ["approvals", "list", "--json"], "arguments is not valid JSON"),
])
def test_a_damaged_json_column_is_named_in_one_line(cli_project: Path, table: str, column: str,
                                                   command: list[str], expected: str) -> None:
    assert agentops("run", "gated").returncode == 0
    with sqlite3.connect(database_of(cli_project)) as conn:
        conn.execute(f"UPDATE {table} SET {column} = '{{not json'")
    assert_one_error_line(agentops(*command), expected)


@pytest.mark.parametrize(("table", "column", "expected"), [
    ("flow_runs", "parameters", "parameters is not valid JSON"),
    ("step_runs", "output", "the recorded output of task 'double' does not decode"),
])
def test_a_damaged_row_fails_the_resumed_run_with_its_name(cli_project: Path, table: str, column: str,
                                                           expected: str) -> None:
    run_id = json.loads(agentops("run", "doubler", "--json").stdout)["run_id"]
    with sqlite3.connect(database_of(cli_project)) as conn:
        conn.execute("UPDATE flow_runs SET state = 'CRASHED' WHERE id = ?", (run_id,))
        conn.execute(f"UPDATE {table} SET {column} = '{{not json'")
    done = agentops("runs", "resume", run_id)
    assert "Traceback" not in done.stdout + done.stderr
    shown = json.loads(agentops("runs", "show", run_id, "--json").stdout)
    assert shown["run"]["state"] == "FAILED" and expected in shown["run"]["error"], shown["run"]


@pytest.mark.parametrize("command", ["ui", "serve"])
def test_a_project_without_the_app_says_so_and_starts_nothing(cli_project: Path, command: str) -> None:
    assert not (cli_project / "app").exists()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert_one_error_line(agentops(command, "--port", str(port)), f"no Streamlit app at {cli_project / 'app'}")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
