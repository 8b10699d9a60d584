"""Real-browser fixtures: Debian's Chromium through Playwright, and `agentops serve` on 127.0.0.1.

Never `playwright install`: the browser is /usr/bin/chromium (`apt-get install chromium`; .ci/run does it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentops.cli.serve import free_port, wait_for_port
from tests import app_fixtures

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)  # expect() has its own 5 s default; the suite runs four workers on two cores
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shot = tmp_path_factory.mktemp("screenshots") / f"{request.node.name}.png"
        tab.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failure: {shot}")
    context.close()


@dataclass
class Served:
    url: str
    incident: app_fixtures.PendingIncident
    process: subprocess.Popen[bytes]


def serve(project: Path) -> Iterator[Served]:
    """`agentops serve` (scheduler, worker and app) for `project`, stopped by its PID afterwards."""
    incident = app_fixtures.pending_incident()
    port = free_port()
    log = (project / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "agentops.cli", "serve", "--host", "127.0.0.1", "--port",
                                str(port)], env=os.environ.copy(), cwd=project, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_for_port("127.0.0.1", port, timeout=90):
            raise RuntimeError(f"agentops serve did not listen on {port}: {(project / 'serve.log').read_text()}")
        yield Served(f"http://127.0.0.1:{port}", incident, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        log.close()


@pytest.fixture
def served(ops_project: Path) -> Iterator[Served]:
    app_fixtures.app_project(ops_project)
    yield from serve(ops_project)
