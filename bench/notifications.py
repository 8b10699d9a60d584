"""Notification benchmark: a request for approval opened → its Slack-compatible webhook message received.

    .venv/bin/python bench/notifications.py        # --runs 20

A real `agentops worker` runs as a subprocess on SQLite in a temporary project with this repository's tools and
a policy whose scale_deployment rule says `notify: [slack]`; a fake webhook on 127.0.0.1 stamps each message as it
arrives. K runs each open one request; latency is from the request's `created_at` (written in the transaction that
opens it) to the message's arrival. The worker delivers from its housekeeping, which runs about once a second, so
that interval bounds the figure; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLOW = '''
from agentops import flow, request_approval


@flow
def bench_notify(n: int) -> str:
    return request_approval("scale_deployment", {"name": "web-app", "replicas": 12}, reason=f"bench {n}",
                            requester="user:maker").kind
'''
POLICY = """
notifications:
  webhook_hosts: ["127.0.0.1:{port}"]
tools:
  scale_deployment:
    verdict: require_approval
    notify: [slack]
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    from tests.fakes.webhook import WebhookServer

    with tempfile.TemporaryDirectory() as tmp, WebhookServer() as hook:
        root = Path(tmp) / "project"
        (root / "flows").mkdir(parents=True)
        (root / "policies").mkdir()
        (root / "pyproject.toml").write_text('[project]\nname = "bench"\n')
        shutil.copytree(ROOT / "tools", root / "tools", ignore=shutil.ignore_patterns("__pycache__"))
        (root / "flows" / "bench_notify.py").write_text(FLOW)
        (root / "policies" / "bench.yaml").write_text(POLICY.format(port=hook.port))
        os.environ.update({"AGENTOPS_PROJECT_DIR": str(root), "AGENTOPS_DATABASE_URL": f"sqlite:///{tmp}/a.db",
                           "AGENTOPS_SLACK_WEBHOOK_URL": hook.url})
        from agentops.db import open_store
        from agentops.engine.project import load_project
        from agentops.engine.registry import find_flow
        from agentops.engine.runner import create_run

        load_project()
        store = open_store()
        worker = subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker"], env=os.environ.copy(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for n in range(args.runs):
                create_run(find_flow("bench_notify"), {"n": n}, store=store)
                time.sleep(0.3)
            deadline = time.time() + 120
            while len(hook.messages) < args.runs and time.time() < deadline:
                time.sleep(0.1)
        finally:
            worker.terminate()
            worker.wait(30)
        created = {a.id: a.created_at for a in store.list_approvals(status=None, limit=10_000)}
        lags = sorted(m["at"] - created[m["body"]["metadata"]["event_payload"]["approval_id"]]
                      for m in hook.messages)
    print(f"requests: {args.runs}, messages received: {len(lags)}, repeats: {hook.repeats()}")
    if lags:
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(f"request opened -> webhook message: p50 {statistics.median(lags) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
