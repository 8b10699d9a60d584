"""A project with the repository's flows, demo users, and an incident waiting for approval (app tests)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USERS = {"ada": ("approver", "ada-approves"), "otto": ("operator", "otto-operates"),
         "vera": ("viewer", "vera-views"), "root": ("admin", "root-administers")}


@dataclass
class PendingIncident:
    run_id: str
    approval_id: str


def add_repository_flows(project: Path) -> None:
    for path in (ROOT / "flows").glob("*.py"):
        shutil.copy(path, project / "flows" / path.name)
    if (ROOT / "data").is_dir():
        shutil.copytree(ROOT / "data", project / "data", dirs_exist_ok=True)


def add_users() -> None:
    from agentops import service

    for name, (role, password) in USERS.items():
        service.add_user(name, role, password)


def pending_incident(deployment: str = "web-app") -> PendingIncident:
    """incident_response on the seeded cluster: the playbook proposes scaling web-app beyond the bound."""
    from agentops import service
    from agentops.worker import Worker

    run_id = service.start_run("incident_response", {"deployment": deployment, "note": "95% CPU"}, user="otto")
    Worker(service.store(), poll_seconds=0.01).run(burst=True)
    pending = service.pending_approvals_for(run_id)
    assert service.get_run(run_id).state == "AWAITING_APPROVAL" and len(pending) == 1
    return PendingIncident(run_id, pending[0].id)
