"""One project (SQLite, seeded backends, demo users, the repository's flows and app) for a whole test module, so
a module serves the app once; the environment it sets is undone when the module ends."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import app_fixtures
from tests.conftest import ROOT, _reset_process_state, make_project
from tests.e2e.conftest import Served, serve


@contextmanager
def served_project(tmp_path_factory: pytest.TempPathFactory, name: str,
                   prepare: Callable[[Path], None] | None = None) -> Iterator[Served]:
    """`prepare(project)` runs after the content is copied and before the app is served (a policy, a flow)."""
    base = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as monkeypatch:
        project = make_project(base, f"sqlite:///{base / 'agentops.db'}", monkeypatch)
        for folder in ("tools", "prompts", "policies"):
            shutil.copytree(ROOT / folder, project / folder, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        from agentops.service.setup import init_project

        list(init_project())
        if prepare is not None:
            prepare(project)
        app_fixtures.app_project(project)
        try:
            yield from serve(project)
        finally:
            _reset_process_state()
