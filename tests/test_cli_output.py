"""What the CLI prints, read as a person at an 80-column terminal would, and as a program reads --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.test_cli_governance import gov_project as gov_project

FLOWS = '''
from agentops import flow, request_approval


@flow
def nightly_report_for_the_whole_region(recipients: list[str], note: str = "n") -> dict:
    decision = request_approval("scale_deployment", {"name": "web-app", "replicas": 12},
                                reason="a long reason that says why twelve replicas are needed tonight, and more")
    return {"kind": decision.kind, "recipients": recipients}
'''


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "AGENTOPS_USER": "olga"}
    done = subprocess.run([sys.executable, "-m", "agentops.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def wide_project(gov_project: Path) -> Path:
    (gov_project / "flows" / "nightly.py").write_text(FLOWS)
    from tests.test_cli import agentops

    assert agentops("users", "add", "olga", "--role", "operator").returncode == 0
    return gov_project


def assert_fits(done: subprocess.CompletedProcess[str], *whole: str) -> list[str]:
    lines = done.stdout.splitlines()
    assert lines, done.stderr
    too_wide = [line for line in lines if len(line.rstrip()) > 80]
    assert not too_wide, too_wide
    for text in whole:
        assert any(text in line for line in lines), f"{text!r} is not on one line of:\n{done.stdout}"
    return lines


def test_tables_fit_80_columns_and_every_id_is_whole_on_its_line(wide_project: Path) -> None:
    run_ids = [json.loads(cli("run", "nightly_report_for_the_whole_region", "-p", 'recipients=["ops@example.com"]',
                              "--json").stdout)["run_id"] for _ in range(2)]
    approvals = json.loads(cli("approvals", "list", "--json").stdout)
    approval_ids = [a["id"] for a in approvals]
    assert len(set(approval_ids)) == 2 and all(len(i) == 32 for i in approval_ids + run_ids)

    assert_fits(cli("runs", "list"), *run_ids)
    assert_fits(cli("approvals", "list"), *approval_ids)
    assert_fits(cli("audit", "search", "--limit", "20"), *run_ids)
    assert_fits(cli("runs", "show", run_ids[0]), run_ids[0], approval_ids[0] if approvals[0]["run_id"] == run_ids[0]
                else approval_ids[1])
    assert_fits(cli("users", "list"), "alice", "olga")
    assert_fits(cli("flows", "list"), "nightly_report_for_the_whole_region")


def test_a_wide_terminal_gets_one_table_row_per_run(wide_project: Path) -> None:
    run_id = json.loads(cli("run", "nightly_report_for_the_whole_region", "-p", "recipients=[]",
                            "--json").stdout)["run_id"]
    [row] = [line for line in cli("runs", "list", columns=200).stdout.splitlines() if run_id in line]
    assert "AWAITING_APPROVAL" in row and "UTC" in row


def test_a_berlin_schedule_shows_its_wall_clock_and_utc_and_parameters_as_json(wide_project: Path) -> None:
    cli("schedules", "add", "nightly_report_for_the_whole_region", "--cron", "0 9 * * *", "--tz", "Europe/Berlin",
        "-p", 'recipients=["ops@example.com"]', "-p", "note=it's", "--as", "olga")
    [schedule] = json.loads(cli("schedules", "list", "--json").stdout)
    fires = datetime.fromisoformat(schedule["next_fire_at"])
    assert fires.utcoffset() is not None and fires.utcoffset().total_seconds() == 0
    berlin = fires.astimezone(ZoneInfo("Europe/Berlin"))
    assert (berlin.hour, berlin.minute) == (9, 0)
    utc_clock = fires.strftime("%H:%M:%S")

    listed = cli("schedules", "list").stdout
    flat = " ".join(listed.split())
    assert f"{berlin:%Y-%m-%d} 09:00:00 Europe/Berlin / {utc_clock} UTC" in flat, listed
    start = flat.index("{")
    parameters, _ = json.JSONDecoder().raw_decode(flat[start:])
    assert parameters == {"recipients": ["ops@example.com"], "note": "it's"}
    assert "['ops@example.com']" not in listed
    assert_fits(cli("schedules", "list"))


def test_runs_show_json_nests_objects_and_carries_iso_times_with_offsets(wide_project: Path) -> None:
    run_id = json.loads(cli("run", "nightly_report_for_the_whole_region", "-p", 'recipients=["a@example.com"]',
                            "--json").stdout)["run_id"]
    [approval] = json.loads(cli("approvals", "list", "--json").stdout)
    cli("approvals", "approve", approval["id"], "--as", "alice")
    cli("worker", "--burst")
    shown = json.loads(cli("runs", "show", run_id, "--json").stdout)
    assert shown["run"]["parameters"] == {"recipients": ["a@example.com"], "note": "n"}
    assert shown["run"]["result"] == {"kind": "approve", "recipients": ["a@example.com"]}
    [decided] = shown["approvals"]
    assert decided["args"] == {"name": "web-app", "replicas": 12} and decided["decision"]["kind"] == "approve"
    assert all(isinstance(step["meta"], dict | None) for step in shown["steps"])
    times = [shown["run"]["created_at"], shown["run"]["ended_at"], decided["decided_at"],
             *(h["ts"] for h in shown["history"]), *(line["ts"] for line in shown["logs"])]
    for value in times:
        parsed = datetime.fromisoformat(value)
        assert parsed.utcoffset() is not None, value
    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert listed[0]["result"] == {"kind": "approve", "recipients": ["a@example.com"]}


def test_runs_list_says_who_started_each_run_and_how_long_it_has_waited(wide_project: Path) -> None:
    run_id = json.loads(cli("run", "nightly_report_for_the_whole_region", "-p", "recipients=[]",
                            "--json").stdout)["run_id"]
    lines = assert_fits(cli("runs", "list"), run_id)
    block = lines[lines.index(run_id) + 1:]
    assert next(" ".join(line.split()) for line in block if line.split()[:1] == ["by"]) == "by olga"
    assert any(line.split()[:2] == ["duration", "waiting"] for line in block), block
    [row] = [line for line in cli("runs", "list", columns=200).stdout.splitlines() if run_id in line]
    assert " olga " in row and " waiting " in row
