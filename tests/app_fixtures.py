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


def add_repository_content(project: Path) -> None:
    """The repository's flows, sample data and app, next to the tools/prompts/policies of `ops_project`."""
    for path in (ROOT / "flows").glob("*.py"):
        shutil.copy(path, project / "flows" / path.name)
    for folder in ("data", "app"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, project / folder, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))


def copy_tools(project: Path) -> None:
    """The repository's tools, so that a policy naming them passes the load-time check against their schemas."""
    shutil.copytree(ROOT / "tools", project / "tools", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


def app_project(ops_project: Path) -> Path:
    add_repository_content(ops_project)
    add_users()
    from agentops.engine.project import load_project

    load_project()
    return ops_project


def add_users() -> None:
    from agentops import service

    for name, (role, password) in USERS.items():
        service.add_user(name, role, password)


def pending_incident(deployment: str = "web-app") -> PendingIncident:
    """incident_response on the seeded cluster: the playbook proposes scaling web-app beyond the bound."""
    from agentops import service
    from agentops.db import open_store
    from agentops.engine.worker import Worker

    run_id = service.start_run("incident_response", {"deployment": deployment, "note": "95% CPU"}, user="otto")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    pending = service.pending_approvals_for(run_id)
    assert service.get_run(run_id).state == "AWAITING_APPROVAL" and len(pending) == 1, service.get_run(run_id)
    return PendingIncident(run_id, pending[0].id)
