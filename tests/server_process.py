"""Starting and stopping a real server binary for a test: wait until it answers, stop it by its PID."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_until_ready(process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str,
                     log: Path | None = None, timeout: float = 30, interval: float = 0.1,
                     not_yet: tuple[type[BaseException], ...] = (OSError,)) -> None:
    """Poll `ready` (one of the `not_yet` errors counts as not yet) until it says yes; RuntimeError with the log's
    tail if the process exits or `timeout` passes first."""
    deadline = time.time() + timeout
    while True:
        try:
            if ready():
                return
        except not_yet:
            pass
        if time.time() > deadline or process.poll() is not None:
            tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{what} did not start:\n{tail}".rstrip())
        time.sleep(interval)


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
