"""http_request sends an Idempotency-Key derived from its step's idempotency key with every POST: the same key when
the step runs again (a resume after kill -9 mid-call), a different one for another step, none with a GET.

Against a local HTTP server that counts the keys it receives; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from agentops.db import open_store
from agentops.engine.project import load_project
from agentops.engine.registry import find_flow
from agentops.engine.runner import create_run
from agentops.engine.toolkit import ToolCallInfo, current_tool_call, load_tools
from agentops.engine.worker import Worker
from tests.fakes.http_base import FakeServer

HOOK_FLOW = '''
import os
from agentops import flow
from agentops.agents import Agent


@flow
def deploy_hook() -> dict:
    base = os.environ["HOOK_URL"]
    hooks = Agent(name="hooks", prompt="incident", tools=["http_request"])
    status = hooks.use("http_request", url=base + "/status", method="GET")
    deploy = hooks.use("http_request", url=base + "/deploy", method="POST", body={"version": "1.2.3"})
    notify = hooks.use("http_request", url=base + "/notify", method="POST", body={"text": "deployed 1.2.3"})
    return {"statuses": [o.status for o in (status, deploy, notify)]}
'''


def allow_port(project: Path, port: int) -> None:
    """The project's policy allows this server's port, as an operator would name it (without one, only 80/443)."""
    policy = project / "policies" / "default.yaml"
    policy.write_text(policy.read_text().replace('"127.0.0.1:8080"', f'"127.0.0.1:{port}"'))


class KeyCountingAPI(FakeServer):
    """Answers every request and keeps its Idempotency-Key; holds the first POST to `hold_path` until released."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_path: str | None = None
        self.holding = threading.Event()
        self.release = threading.Event()

    def handle(self, request: dict[str, Any]) -> tuple[int, Any]:
        if request["method"] == "POST" and request["path"] == self.hold_path:
            self.hold_path = None
            self.holding.set()
            self.release.wait(120)
        return 200, {"ok": True}

    def keys(self, method: str, path: str) -> list[str | None]:
        return [r["headers"].get("Idempotency-Key") for r in self.requests
                if r["method"] == method and r["path"] == path]


def test_a_post_resumed_after_kill_9_sends_the_same_key_and_other_steps_their_own(ops_db_project: Path,
                                                                                  monkeypatch) -> None:
    (ops_db_project / "flows" / "deploy_hook.py").write_text(HOOK_FLOW)
    load_project()
    store = open_store()
    with KeyCountingAPI() as api:
        monkeypatch.setenv("HOOK_URL", api.url)
        allow_port(ops_db_project, api.port)
        api.hold_path = "/deploy"
        run_id = create_run(find_flow("deploy_hook"), {}, store=store)
        worker = subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker"], env=os.environ.copy(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert api.holding.wait(90), "the worker never made the POST"
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
        finally:
            if worker.poll() is None:
                worker.kill()
        api.release.set()
        rescuer = Worker(store, stale_after=0.5, poll_seconds=0.01)
        deadline = time.time() + 30
        while rescuer.recover_crashed() != [run_id]:
            assert time.time() < deadline, "the killed worker's run was never recovered"
            time.sleep(0.1)
        rescuer.run(burst=True)

    run = store.get_run(run_id)
    assert run.state == "COMPLETED" and json.loads(run.result or "{}")["statuses"] == ["ok"] * 3
    assert api.keys("GET", "/status") == [None], "the GET ran once, before the crash, with no key"
    deploy = api.keys("POST", "/deploy")
    assert len(deploy) == 2 and deploy[0] == deploy[1] and str(deploy[0]).startswith(f"{run_id}:")
    [notify] = api.keys("POST", "/notify")
    assert notify is not None and notify.startswith(f"{run_id}:") and notify != deploy[0]


def test_the_key_is_the_steps_own_and_a_get_carries_none(ops_project: Path) -> None:
    tool = load_tools(ops_project)["http_request"]

    def call(key: str | None, method: str, path: str) -> None:
        token = current_tool_call.set(ToolCallInfo("run3", 1, key)) if key else None
        try:
            tool.invoke({"url": api.url + path, "method": method, "body": {"n": 1} if method == "POST" else None})
        finally:
            if token is not None:
                current_tool_call.reset(token)

    with KeyCountingAPI() as api:
        allow_port(ops_project, api.port)
        for key, method, path in [("run3:4", "POST", "/a"), ("run3:4", "POST", "/a"), ("run3:5", "POST", "/a"),
                                  ("run3:6", "GET", "/a"), (None, "POST", "/b"), (None, "POST", "/b")]:
            call(key, method, path)
    assert api.keys("POST", "/a") == ["run3:4", "run3:4", "run3:5"]
    assert api.keys("GET", "/a") == [None]
    outside = api.keys("POST", "/b")
    assert len(set(outside)) == 2 and all(str(k).startswith("adhoc:") for k in outside), \
        "outside a run every call is its own effect"
