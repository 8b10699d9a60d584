"""The repository's flows refuse bad parameters as their types say, before anything is written: one `error:`
line, exit 2, no run row, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import Field

from agentops import flow, service
from agentops.db import open_store
from agentops.errors import ParameterError
from tests.app_fixtures import add_repository_content

BAD = [
    (["predictive_scaling", "-p", "deployment=nosuch"], "unknown deployment 'nosuch' (known: api, checkout"),
    (["predictive_scaling", "-p", "capacity_per_replica=-5"], "'capacity_per_replica': Input should be greater than 0"),
    (["predictive_scaling", "-p", "horizon_hours=0"], "'horizon_hours': Input should be greater than 0"),
    (["incident_response", "-p", "deployment=nosuch"], "unknown deployment 'nosuch'"),
    (["incident_response", "-p", "deployment=web-app; DROP TABLE runs"], "unknown deployment"),
    (["sales_analysis", "-p", "dataset=nosuch"], "unknown dataset 'nosuch'"),
    (["sales_analysis", "-p", "dataset=../../etc/passwd"], "unknown dataset"),
    (["sales_analysis", "-p", 'recipients=["not an address"]'], "'recipients.0'"),
    (["sales_analysis", "-p", "recipients=[]"], "'recipients'"),
    (["hello", "-p", "name="], "'name'"),
]


@pytest.fixture
def repo_project(ops_db_project: Path) -> Path:
    add_repository_content(ops_db_project)
    return ops_db_project


@pytest.mark.parametrize(("args", "says"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_flow_parameter_is_one_error_line_exit_2_and_no_run(repo_project: Path, args: list[str],
                                                                   says: str) -> None:
    done = subprocess.run([sys.executable, "-m", "agentops.cli", "run", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert says in lines[0]
    assert open_store().list_runs() == []


def test_the_same_checks_hold_for_queued_runs_schedules_and_the_chat(repo_project: Path) -> None:
    with pytest.raises(ParameterError, match="unknown deployment 'nosuch'"):
        service.start_run("predictive_scaling", {"deployment": "nosuch"}, queue=True)
    service.add_user("olga", "operator", "correct horse battery")
    with pytest.raises(ParameterError, match="greater than 0"):
        service.schedules.add_schedule("predictive_scaling", cron="0 9 * * 1-5",
                                       parameters={"capacity_per_replica": -5}, user="olga")
    assert service.schedules.list_schedules() == []
    with pytest.raises(ParameterError, match="unknown deployment 'nosuch'"):
        service.chat.start_flow_tool("olga").func(flow="incident_response", parameters={"deployment": "nosuch"})
    assert open_store().list_runs() == []


def test_a_deployment_added_to_the_cluster_is_accepted(repo_project: Path) -> None:
    import time

    open_store().upsert_deployment({"name": "billing", "namespace": "default", "replicas": 2, "base_load": 1.0,
                                    "cpu_percent": 20.0, "error_rate": 0.0, "p95_latency_ms": 100.0,
                                    "updated_at": time.time()})
    run_id = service.start_run("predictive_scaling", {"deployment": "billing"}, queue=True)
    assert json.loads(service.get_run(run_id).parameters)["deployment"] == "billing"


def test_annotated_constraints_and_literals_hold_on_any_flow(project: Path) -> None:
    @flow(name="typed_params")
    def typed_params(count: Annotated[int, Field(gt=0, le=10)] = 1,
                     mode: Literal["fast", "safe"] = "safe") -> int:
        return count

    assert typed_params.validate_parameters({"count": "3", "mode": "fast"}) == {"count": 3, "mode": "fast"}
    for bad in ({"count": 0}, {"count": 11}, {"mode": "reckless"}):
        with pytest.raises(ParameterError):
            typed_params.validate_parameters(bad)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
