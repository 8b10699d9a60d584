"""`agentops demo --exit` from the CLI: the incident and its approval happen again on a second run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from agentops.db import open_store
from tests.app_fixtures import ROOT


def agentops(project: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "agentops.cli", *args], cwd=project, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_second_demo_restores_web_app_and_waits_for_approval_again(sqlite_project: Path) -> None:
    for folder in ("flows", "tools", "prompts", "policies"):
        shutil.copytree(ROOT / folder, sqlite_project / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    first = agentops(sqlite_project, "demo", "--exit")
    assert "(incident_response) is AWAITING_APPROVAL" in first
    unwrapped = " ".join(first.split())
    assert re.search(r"- start_flow: run_id [0-9a-f]{32}, flow incident_response, state PENDING", unwrapped)
    approval_id = re.search(r"waiting for approval ([0-9a-f]{12})", first).group(1)
    [pending] = [a for a in open_store().list_approvals() if a.id.startswith(approval_id)]
    agentops(sqlite_project, "approvals", "approve", pending.id, "--as", "ada")
    agentops(sqlite_project, "worker", "--burst")
    assert open_store().deployment("web-app").replicas == 12

    second = agentops(sqlite_project, "demo", "--exit")
    assert "restored the simulated web-app from 12 to 6 replicas" in second
    [restored] = open_store().search_ledger(action="demo.deployment_restored")
    assert restored.actor == "system:demo" and '"replicas_before":12' in restored.payload.replace(" ", "")
    assert "(incident_response) is AWAITING_APPROVAL" in second
    assert "scale_deployment" in second.split("restored")[1]
