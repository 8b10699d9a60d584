"""The embedded engine's short path: `import agentops` and `agentops run` on SQLite stay off the heavy libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from agentops.core.ledger import verify_rows
from agentops.db.records import LogRecord, RunRecord, StepRecord
from agentops.db.schema import FlowRun, LogLine, StepRun

HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "streamlit", "pandasai", "langchain_core", "pandas", "celery", "kombu",
         "opentelemetry")

REPORT_HEAVY = f"""
import json, sys
from agentops.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"exit": code, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""


def _cli_reporting_imports(*args: str, env: dict[str, str] | None = None) -> tuple[str, dict]:
    """Run the CLI in a fresh interpreter; returns its output and which heavy modules it imported."""
    script = f"import sys\nsys.argv = {['agentops', *args]!r}\n{REPORT_HEAVY}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    *output, report = done.stdout.strip().splitlines()
    return "\n".join(output), json.loads(report)


def test_import_agentops_imports_no_database_model_or_ui_library() -> None:
    done = subprocess.run([sys.executable, "-c", f"import sys, agentops\n"
                           f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_running_a_flow_on_sqlite_never_imports_sqlalchemy(sqlite_project: Path) -> None:
    (sqlite_project / "flows" / "greeter.py").write_text(
        "from agentops import flow, task, get_run_logger\n\n\n"
        "@task(log_prints=True)\ndef shout(name: str) -> str:\n"
        "    print('shouting at', name)\n    return name.upper()\n\n\n"
        "@flow\ndef greeter(name: str = 'world') -> str:\n    get_run_logger().info('greeting %s', name)\n"
        "    return shout(name) + '!'\n")
    first, report = _cli_reporting_imports("run", "greeter", "-p", "name=ada")
    assert report["exit"] == 0
    assert "sqlalchemy" in report["heavy"]  # the first run creates the schema through Alembic
    assert "COMPLETED" in first

    output, report = _cli_reporting_imports("run", "greeter", "-p", "name=bob")
    assert report == {"exit": 0, "heavy": []}
    assert 'result: "BOB!"' in output
    assert "shouting at bob" in output and "greeting bob" in output

    from agentops.db import open_store

    store = open_store()
    runs = store.list_runs(flow="greeter")
    assert [r.state for r in runs] == ["COMPLETED", "COMPLETED"]
    steps = store.steps_for_run(runs[0].id)
    assert [(s.name, s.state, s.output) for s in steps] == [("shout", "COMPLETED", '"BOB"')]
    history = store.search_ledger(run_id=runs[0].id, limit=100, ascending=True)
    assert [(e.action, json.loads(e.payload)["state"]) for e in history if e.action == "run.state"][-1] == (
        "run.state", "COMPLETED")
    assert ("step.state", 1) in [(e.action, e.step_no) for e in history]
    report = verify_rows(store.iter_ledger())
    assert report.ok and report.count >= 2 * len(history)


GREETER = ("from agentops import flow, task\n\n\n@task\ndef shout(name: str) -> str:\n    return name.upper()\n\n\n"
           "@flow\ndef greeter(name: str = 'world') -> str:\n    return shout(name) + '!'\n")


def test_the_polling_worker_and_queued_runs_never_import_celery(sqlite_project: Path) -> None:
    (sqlite_project / "flows" / "greeter.py").write_text(GREETER)
    output, report = _cli_reporting_imports("run", "greeter", "--queue")
    assert report["exit"] in (0, None) and "queued run" in output
    assert not {"celery", "kombu"} & set(report["heavy"])
    output, report = _cli_reporting_imports("worker", "--burst")
    assert report["exit"] in (0, None) and "stopped after 1 runs" in output
    assert not {"celery", "kombu"} & set(report["heavy"])


def test_reading_runs_and_approvals_imports_no_model_ui_or_data_library(sqlite_project: Path) -> None:
    (sqlite_project / "flows" / "greeter.py").write_text(GREETER)
    output, report = _cli_reporting_imports("run", "greeter", "--json")
    run_id = json.loads(output)["run_id"]
    for command in (("runs", "list"), ("runs", "show", run_id), ("approvals", "list"), ("flows", "list")):
        output, report = _cli_reporting_imports(*command)
        assert report["exit"] in (0, None), (command, output)
        assert not {"langchain_core", "streamlit", "pandas", "pandasai", "celery"} & set(report["heavy"]), command


def test_the_polling_worker_on_postgresql_with_a_broker_set_imports_celery_only_to_send(project: Path) -> None:
    """With dispatch on, nothing loads Celery until a commit has a run to send: a worker with nothing to
    recover drains the queue without it."""
    from agentops.db import open_store

    if open_store().is_sqlite:
        pytest.skip("a broker needs PostgreSQL")
    (project / "flows" / "greeter.py").write_text(GREETER)
    _, report = _cli_reporting_imports("run", "greeter")
    assert report["exit"] in (0, None)
    env = {**os.environ, "AGENTOPS_BROKER_URL": "redis://127.0.0.1:1/0"}
    output, report = _cli_reporting_imports("worker", "--burst", env=env)
    assert report["exit"] in (0, None) and "stopped after 0 runs" in output
    assert not {"celery", "kombu"} & set(report["heavy"])


@pytest.mark.parametrize(("record", "table"), [(RunRecord, FlowRun), (StepRecord, StepRun), (LogRecord, LogLine)])
def test_records_carry_exactly_the_columns_and_defaults_of_their_tables(record: type, table: type) -> None:
    columns = table.__table__.columns
    assert {f.name for f in fields(record)} == {c.name for c in columns}
    for f in fields(record):
        column = columns[f.name]
        table_default = column.default.arg if column.default is not None else None
        if f.default is MISSING:
            assert not column.nullable and table_default is None, f.name
        else:
            assert f.default == table_default, f.name


def _new_run(store, run_id: str) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    store.create_run({"id": run_id, "flow_name": "f", "created_at": now, "updated_at": now}, [])


def test_a_state_change_expecting_no_state_changes_nothing(store) -> None:  # type: ignore[no-untyped-def]
    _new_run(store, "r1")
    assert store.set_run_state("r1", "CANCELLED", [], expect=[]) is False
    assert store.set_run_state("r1", "CANCELLED", [], expect=["RUNNING"]) is False
    assert store.get_run("r1").state == "PENDING"
    assert store.set_run_state("r1", "CANCELLED", [], expect=["PENDING", "RUNNING"]) is True
    assert store.get_run("r1").state == "CANCELLED"


def test_both_sqlite_paths_open_the_file_the_url_names(tmp_path: Path) -> None:
    from agentops.db import open_store

    url = f"sqlite:///{tmp_path / 'with space.db'}?timeout=30".replace(" ", "%20")
    store = open_store(url)
    _new_run(store, "r1")
    assert [r.id for r in store.list_runs()] == ["r1"]  # written by sqlite3, read back through SQLAlchemy
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["with space.db"]


def test_an_unknown_column_is_refused_before_anything_is_written(store) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    with pytest.raises(ValueError, match="not columns of RunRecord: colour"):
        store.create_runs([{"id": "r1", "flow_name": "f", "created_at": now, "updated_at": now},
                           {"id": "r2", "flow_name": "f", "created_at": now, "updated_at": now, "colour": "red"}], [])
    assert store.list_runs() == []
