"""API benchmark: an alert received -> its run waiting for approval, and a decision -> the run resumed, each through
the HTTP API and through the CLI.

    .venv/bin/python bench/api.py            # --runs 30 --poll 0.05 (the worker's default)

A temporary project on SQLite, with a real `agentops api` (uvicorn) and a real `agentops worker` as subprocesses,
as production runs them. The flow asks for an approval first thing, then calls a task that returns time.time() as
its body starts.

* alert -> waiting: from just before Alertmanager's notification is POSTed (a new group each time) to the run's
  AWAITING_APPROVAL row; beside it `agentops run bench_api --queue` as a shell script would start the same run
  (the CLI's cold start included: that is what the path costs).
* decision -> resumed: from just before the decision is POSTed (`/api/v1/approvals/{id}/decision`) to the first
  line of the task after the approval, in the worker; beside it `agentops approvals approve ID --as ada`.

Decisions and alerts come one at a time with a random 0..2 poll-interval gap, after one unmeasured round of each
(the API process imports the project on its first request). p50 and p99 over every one; the machine is shared and
noisy, so read the ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLOW_NAME = "bench_api"
FLOW_SOURCE = '''
import time

from agentops import flow, request_approval, task


@task
def stamp(n: int) -> float:
    return time.time()


@flow
def bench_api(n: int = 0, note: str = "") -> float:
    decision = request_approval("bench_action", {"n": n}, reason="benchmark", requester="user:maker")
    return stamp(n) if decision.approved else -1.0
'''
POLICY = f"""version: 1
tools:
  start_flow:
    verdict: allow
    constraints:
      flow: {{enum: [{FLOW_NAME}]}}
"""
ALERTS = f"""alertmanager:
  - match: {{alertname: BenchAlert}}
    flow: {FLOW_NAME}
    parameters: {{note: $note}}
"""


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"n": len(ordered), "p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]}


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.002) -> Any:
    deadline = time.time() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def notification(group: str) -> dict[str, Any]:
    labels = {"alertname": "BenchAlert", "severity": "page"}
    return {"version": "4", "groupKey": group, "status": "firing", "receiver": "agentops", "groupLabels": labels,
            "commonLabels": labels, "commonAnnotations": {"summary": "bench"}, "externalURL": "",
            "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "bench"},
                        "fingerprint": uuid.uuid4().hex[:16]}]}


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "agentops.cli", *argv], cwd=cwd, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(runs: int, poll: float, tmp: Path) -> dict[str, dict[str, float]]:
    project = tmp / "project"
    for folder in ("flows", "policies"):
        (project / folder).mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "bench-api"\n')
    (project / "flows" / f"{FLOW_NAME}.py").write_text(FLOW_SOURCE)
    (project / "policies" / "bench.yaml").write_text(POLICY)
    (project / "alerts.yaml").write_text(ALERTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTOPS_")}
    env |= {"AGENTOPS_PROJECT_DIR": str(project), "AGENTOPS_DATABASE_URL": f"sqlite:///{tmp / 'agentops.db'}",
            "AGENTOPS_WORKER_POLL_SECONDS": repr(poll)}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AGENTOPS_")})

    from agentops import service
    from agentops.core import serialization
    from agentops.db import close_stores, open_store
    from agentops.governance.users import add_user
    from agentops.service import tokens
    from tests.pg_server import _free_port

    close_stores()
    store = open_store()
    add_user(store, "maker", "operator", None)
    add_user(store, "ada", "approver", None)
    receiver = {"Authorization": f"Bearer {tokens.add_token('alertmanager', 'operator')}"}
    approver = {"Authorization": f"Bearer {tokens.add_token('ada-api', 'approver')}"}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    api = start(["api", "--port", str(port)], env, project, tmp / "api.log")
    worker = start(["worker"], env, project, tmp / "worker.log")
    results: dict[str, list[float]] = {k: [] for k in ("alert_api", "alert_cli", "decide_api", "decide_cli")}
    waiting: list[tuple[str, str, bool]] = []  # (run id, which face decides it, measured)
    try:
        wait_until(lambda: _answers(url), 60, "the API", interval=0.05)

        def paused(run_id: str) -> bool:
            for process, name in ((api, "api"), (worker, "worker")):
                if process.poll() is not None:
                    raise RuntimeError(f"the {name} exited: {(tmp / f'{name}.log').read_text()[-2000:]}")
            found = store.get_run(run_id)
            return found is not None and found.state == "AWAITING_APPROVAL"

        with httpx.Client(timeout=30) as client:
            for i in range(-1, runs):  # round -1 warms both faces up (the API process imports the project's
                for face in ("api", "cli"):  # flows and reads its policy on the first request); not measured
                    time.sleep(random.uniform(0, 2 * poll))
                    t0 = time.time()
                    if face == "api":
                        answer = client.post(f"{url}/api/v1/alerts/alertmanager", json=notification(f"bench-{i}"),
                                             headers=receiver)
                        if answer.status_code != 201:
                            raise RuntimeError(f"the alert was not started: {answer.text}")
                        run_id = answer.json()["run_id"]
                    else:
                        out = subprocess.run([sys.executable, "-m", "agentops.cli", "run", FLOW_NAME, "--queue",
                                              "--as", "maker", "-p", f"n={i}"], cwd=project, env=env,
                                             capture_output=True, text=True, check=True)
                        run_id = next(w for w in out.stdout.split() if len(w) == 32)
                    wait_until(lambda r=run_id: paused(r), 30, f"run {run_id} to wait")  # type: ignore[misc]
                    if i >= 0:
                        results[f"alert_{face}"].append(time.time() - t0)
                    waiting.append((run_id, face, i >= 0))
            for run_id, face, measured in waiting:
                [request] = service.pending_approvals_for(run_id)
                time.sleep(random.uniform(0, 2 * poll))
                t0 = time.time()
                if face == "api":
                    answer = client.post(f"{url}/api/v1/approvals/{request.id}/decision", headers=approver,
                                         json={"decision": "approve", "args_digest": request.args_digest})
                    if answer.status_code != 200:
                        raise RuntimeError(f"the decision was refused: {answer.text}")
                else:
                    subprocess.run([sys.executable, "-m", "agentops.cli", "approvals", "approve", request.id,
                                    "--as", "ada", "--digest", request.args_digest], cwd=project, env=env,
                                   capture_output=True, check=True)
                done = wait_until(lambda r=run_id: _finished(store.get_run(r)), 30,  # type: ignore[misc]
                                  f"run {run_id} to finish")
                if done.state != "COMPLETED":
                    raise RuntimeError(f"run {run_id} {done.state}: {done.error}")
                if measured:
                    results[f"decide_{face}"].append(serialization.loads(done.result) - t0)
    finally:
        stop(worker)
        stop(api)
        close_stores()
    return {k: quantiles(v) for k, v in results.items()}


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/openapi.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _finished(row: Any) -> Any:
    return row if row is not None and row.state in ("COMPLETED", "FAILED") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="alerts and decisions per face (default 30)")
    parser.add_argument("--poll", type=float, default=None,
                        help="worker poll interval in seconds (default: AGENTOPS_WORKER_POLL_SECONDS's default)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.poll is None:
        from agentops.settings import Settings

        args.poll = Settings.model_fields["worker_poll_seconds"].default
    random.seed(args.seed)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the subprocesses are stopped too

    with tempfile.TemporaryDirectory(prefix="agentops-bench-api-") as tmp:
        q = run(args.runs, args.poll, Path(tmp))

    print(f"the API beside the CLI, in ms: {args.runs} each, one at a time, worker poll {args.poll * 1000:.0f} ms, "
          "SQLite, `agentops api` and `agentops worker` as subprocesses\n")
    print(f"{'path':<38} {'face':<44} {'n':>4} {'p50':>8} {'p99':>8}  {'p50 vs CLI':>10}")
    rows = [("alert received -> run waiting", "POST /api/v1/alerts/alertmanager", q["alert_api"], q["alert_cli"]),
            ("alert received -> run waiting", "agentops run --queue (a new process)", q["alert_cli"], q["alert_cli"]),
            ("decision -> run resumed (next step)", "POST /api/v1/approvals/{id}/decision", q["decide_api"],
             q["decide_cli"]),
            ("decision -> run resumed (next step)", "agentops approvals approve (a new process)", q["decide_cli"],
             q["decide_cli"])]
    for path, face, measured, cli in rows:
        ratio = f"x{measured['p50'] / cli['p50']:.2f}" if cli["p50"] > 0 else "-"
        print(f"{path:<38} {face:<44} {measured['n']:>4} {measured['p50'] * 1000:>8.1f} "
              f"{measured['p99'] * 1000:>8.1f}  {ratio:>10}")
    print("\nThe CLI rows include a Python process's start and agentops' import (what a script shelling out pays); "
          "the API rows include the HTTP round trip, the policy's start_flow step and the worker's poll.")


if __name__ == "__main__":
    main()
