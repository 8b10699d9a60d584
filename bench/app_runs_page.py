"""Runs page benchmark: render time with 100,000 runs in the database.

    .venv/bin/python bench/app_runs_page.py [--runs 100000]

Renders app/app_pages/runs.py through streamlit.testing.v1.AppTest (the whole script, as a browser
session would run it) against a SQLite database holding N runs: the first page, a filtered page, a deep
page, and one run's detail. "plain SQL" is the same page's two queries (count + 50 rows) through sqlite3
with no app around them, the floor for any UI. Medians of repeated renders; cached query results are
cleared before each render so every render hits the database.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_S = 1.0
STATES = ["COMPLETED"] * 8 + ["FAILED", "AWAITING_APPROVAL", "CANCELLED", "CRASHED"]
FLOWS = ["incident_response", "sales_analysis", "predictive_scaling", "hello"]


def fill(count: int) -> str:
    from agentops.db import open_store
    from agentops.engine.runner import new_run_id

    store = open_store()
    now = time.time()
    for start in range(0, count, 10_000):
        rows = []
        for i in range(start, min(count, start + 10_000)):
            created = now - (count - i) * 30.0
            rows.append({"id": new_run_id(), "flow_name": random.choice(FLOWS), "parameters": "{}",
                         "state": random.choice(STATES), "trigger": random.choice(["manual", "chat", "schedule"]),
                         "created_at": created, "updated_at": created, "started_at": created,
                         "ended_at": created + random.random() * 5})
        store.create_runs(rows, [])
    return rows[-1]["id"]


def log_in_bench_user() -> None:
    """The page checks a session cookie on every run: open one for an admin and hand it to the page as a browser's
    websocket handshake would (AppTest has no browser)."""
    from types import SimpleNamespace

    import streamlit.runtime.context

    from agentops import service

    service.add_user("bench", "admin", "bench-password")
    issued = service.sessions.log_in("bench", "bench-password")
    assert issued is not None
    connection = SimpleNamespace(cookies={service.sessions.SESSION_COOKIE: issued.cookie}, headers=(),
                                 remote_ip="127.0.0.1")
    streamlit.runtime.context._get_client_context = lambda: connection  # type: ignore[assignment]


def render(page_setup, repeats: int = 7) -> float:  # type: ignore[no-untyped-def]
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    samples = []
    for _ in range(repeats):
        st.cache_data.clear()
        at = AppTest.from_file(str(ROOT / "app" / "app_pages" / "runs.py"), default_timeout=60)
        page_setup(at)
        t0 = time.perf_counter()
        at.run()
        samples.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
    return statistics.median(samples)


def plain_sql(db: str, where: str = "", offset: int = 0, repeats: int = 7) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with sqlite3.connect(db) as conn:
            conn.execute(f"SELECT count(*) FROM flow_runs {where}").fetchone()
            conn.execute(f"SELECT * FROM flow_runs {where} ORDER BY created_at DESC LIMIT 50 OFFSET ?",
                         (offset,)).fetchall()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    count = parser.parse_args().runs
    random.seed(3)
    sys.path.insert(0, str(ROOT / "app"))
    with tempfile.TemporaryDirectory() as tmp:
        db = f"{tmp}/runs.db"
        os.environ.update(AGENTOPS_DATABASE_URL=f"sqlite:///{db}", AGENTOPS_PROJECT_DIR=str(ROOT))
        t0 = time.perf_counter()
        last_run = fill(count)
        log_in_bench_user()
        print(f"{count:,} runs inserted in {time.perf_counter() - t0:.1f} s\n")

        def deep_page(at) -> None:  # type: ignore[no-untyped-def]
            at.session_state["runs-page"] = count // 50 // 2

        def filtered(at) -> None:  # type: ignore[no-untyped-def]
            at.session_state["runs-state"] = "FAILED"

        def detail(at) -> None:  # type: ignore[no-untyped-def]
            at.query_params["run"] = last_run

        cases = [("first page", lambda at: None, ""), ("state = FAILED", filtered, "WHERE state = 'FAILED'"),
                 (f"page {count // 100:,} (offset {count // 2:,})", deep_page, ""), ("one run's detail", detail, "")]
        print(f"{'case':<30} {'app render (median)':>20} {'plain SQL':>10} {'ratio':>7}  target < {TARGET_S:.0f} s")
        for label, setup, where in cases:
            app = render(setup)
            offset = count // 2 if "offset" in label else 0
            sql = plain_sql(db, where, offset)
            verdict = "met" if app < TARGET_S else "MISSED"
            print(f"{label:<30} {app * 1000:>17.0f} ms {sql * 1000:>7.1f} ms {app / sql:>6.0f}x  {verdict}")


if __name__ == "__main__":
    main()
