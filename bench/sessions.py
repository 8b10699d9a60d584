"""What checking the session costs each page run: `check_session` (signature, one indexed read, the account) on
SQLite with N live sessions, against the page render it precedes. Run: .venv/bin/python bench/sessions.py"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--checks", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(AGENTOPS_DATABASE_URL=f"sqlite:///{tmp}/sessions.db", AGENTOPS_PROJECT_DIR=tmp,
                          AGENTOPS_SESSION_SECRET="bench-secret-bench-secret")
        from agentops import service
        from agentops.db import open_store
        from agentops.governance import sessions

        service.add_user("bench", "approver", "bench-password")
        store = open_store()
        user = store.get_user("bench")
        secret = b"bench-secret-bench-secret"
        cookies = [sessions.start(store, user, "local", secret=secret, ttl=3600).cookie  # type: ignore[arg-type]
                   for _ in range(args.sessions)]
        samples = []
        for i in range(args.checks):
            t0 = time.perf_counter()
            assert service.sessions.check_session(cookies[i % len(cookies)]).status == "ok"
            samples.append(time.perf_counter() - t0)
        samples.sort()
        print(f"{args.sessions:,} live sessions, {args.checks:,} checks: median "
              f"{statistics.median(samples) * 1e3:.2f} ms, p99 {samples[int(len(samples) * 0.99)] * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
