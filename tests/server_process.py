"""Starting and stopping a real server binary for a test: wait until it answers (the product's launcher's wait),
stop it by its PID."""

from __future__ import annotations

import subprocess

from agentops.backends.prometheus_launch import wait_until_ready

__all__ = ["stop_process", "wait_until_ready"]


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(20)
