"""The full demo path, headless: `agentops demo` on a bare project, then what a newcomer does in the browser.

Chat triggers incident_response; the agent proposes a scale; an approver approves it in the app; the run
completes and the cluster changes; the ledger verifies; the scheduled sales analysis lands in the outbox.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from agentops import service
from agentops.cli.serve import free_port
from agentops.db import close_stores, open_store
from agentops.settings import reset_settings
from tests.app_fixtures import ROOT
from tests.e2e.test_browser import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def demo(sqlite_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    for folder in ("flows", "tools", "prompts", "policies", "app"):
        shutil.copytree(ROOT / folder, sqlite_project / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    output = sqlite_project / "demo.out"
    with output.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "agentops.cli", "demo", "--port", str(port)],
                                   cwd=sqlite_project, env=os.environ.copy(), stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 120
            while "open http://" not in output.read_text():
                assert process.poll() is None, output.read_text()
                assert time.time() < deadline, output.read_text()
                time.sleep(0.2)
            folder = sqlite_project / ".agentops" / "demo"  # the demo's own database, laid anew at its start
            monkeypatch.setenv("AGENTOPS_DATABASE_URL", f"sqlite:///{folder / 'agentops.db'}")
            monkeypatch.setenv("AGENTOPS_CHECKPOINT_DIR", str(folder / "checkpoints"))
            close_stores()
            reset_settings()
            yield f"http://127.0.0.1:{port}", output
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def test_the_demo_loop_from_chat_to_approved_scale_verified_ledger_and_emailed_report(
        demo: tuple[str, Path], page: Page) -> None:
    url, output = demo
    printed = output.read_text()
    assert "ada   ada-approves      approver" in printed and "vera  vera-views" in printed
    run_id = next(r.id for r in service.list_runs(flow="incident_response"))
    assert service.get_run(run_id).trigger == "chat"
    [pending] = service.pending_approvals_for(run_id)
    assert pending.action == "scale_deployment" and re.search(r'"replicas":\s*12', pending.args)

    log_in(page, url, "ada")
    page.locator(f".st-key-approve-inbox-{pending.id} button").click()
    expect(page.get_by_text(f"{pending.id[:12]}: approve by ada")).to_be_visible()
    page.get_by_role("link", name="Runs").click()
    page.locator(".st-key-runs-open input").fill(run_id)
    page.locator(".st-key-runs-open input").press("Enter")
    expect(page.locator(".st-key-run-state")).to_contain_text("COMPLETED", timeout=30_000)
    page.get_by_role("link", name="Outbox, tickets, cluster").click()
    page.get_by_role("tab", name="Cluster").click()
    expect(page.locator(".st-key-cluster-web-app")).to_contain_text("12 replicas")
    page.get_by_role("link", name="Audit").click()
    page.locator(".st-key-audit-verify button").click()
    expect(page.get_by_text(re.compile(r"OK: \d+ events, chain intact"))).to_be_visible()

    sales_run = next(r.id for r in service.list_runs(flow="sales_analysis"))  # the demo's one run at start
    deadline = time.time() + 60
    while service.get_run(sales_run).state != "COMPLETED" and time.time() < deadline:
        time.sleep(0.2)
    reports = [m for m in open_store().outbox_list() if m.subject.startswith("Sales analysis")]
    assert reports and reports[0].to == "managers@example.com" and "Top 5 products by revenue" in reports[0].body
    verify = subprocess.run([sys.executable, "-m", "agentops.cli", "audit", "verify"], capture_output=True,
                            text=True, env=os.environ.copy(), timeout=60)
    assert verify.returncode == 0 and verify.stdout.startswith("OK: "), verify.stdout + verify.stderr
