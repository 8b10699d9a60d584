"""Engine benchmark: per-step overhead, cold start, and 200 concurrent 50 ms tasks, side by side.

    .venv/bin/python bench/engine.py

Compares agentops with plain Python and, when their venvs exist (bench/setup_competitors.sh makes
them), DBOS and Prefect on the same work, each in its own interpreter. Medians over repeats; the
machine is shared and noisy, so read ratios rather than absolute numbers.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHONS = {
    "plain": Path(sys.executable),
    "agentops": Path(sys.executable),
    "dbos": HERE / ".venv-dbos" / "bin" / "python",
    "prefect": HERE / ".venv-prefect" / "bin" / "python",
}
COLD_START = {
    "plain": ["-c", "print('hello')"],
    "agentops": ["-m", "agentops.cli", "run", "hello"],
    "dbos": [str(HERE / "_cold_dbos.py")],
    "prefect": [str(HERE / "_cold_prefect.py")],
}
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.pg_server import PostgresServer, find_bin_dir  # noqa: E402

TARGETS = {"per_step_ms": 2.1 / 4, "cold_start_s": 0.5, "concurrent_200x50ms_s": 0.25}


def cold_start(name: str, python: Path, workdir: Path, repeats: int = 5) -> float:
    samples = []
    env = {"PATH": "/usr/bin:/bin", "AGENTOPS_PROJECT_DIR": str(ROOT),
           "AGENTOPS_DATABASE_URL": f"sqlite:///{workdir / 'cold.db'}", "HOME": str(workdir)}
    subprocess.run([str(python), *COLD_START[name]], cwd=workdir, env=env, capture_output=True, check=True)
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([str(python), *COLD_START[name]], cwd=workdir, env=env, capture_output=True, check=True)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@contextlib.contextmanager
def prefect_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for Prefect's server (the test suite's server helper), stopped after."""
    server = PostgresServer()
    server.start()
    try:
        yield server.create_database("prefect").replace("postgresql+psycopg", "postgresql+asyncpg")
    finally:
        server.stop()


def main() -> None:
    rows = []
    for name, python in PYTHONS.items():
        if not python.exists():
            rows.append({"framework": name, "note": f"skipped: {python} not found (bench/setup_competitors.sh)"})
            continue
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "PYTHONPATH": str(ROOT) if name == "agentops" else ""}
            note = ""
            if name == "prefect" and find_bin_dir() is not None:
                env["PREFECT_API_DATABASE_CONNECTION_URL"] = stack.enter_context(prefect_database())
                note = "server on PostgreSQL (on SQLite it answers 503 while the database is locked)"
            done = subprocess.run([str(python), str(HERE / "_workloads.py"), name, tmp], capture_output=True,
                                  text=True, cwd=tmp, env=env)
            if done.returncode != 0:
                rows.append({"framework": name, "note": "failed: " + done.stderr.strip().splitlines()[-1]})
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1]) | {"note": note}
            row["cold_start_s"] = cold_start(name, python, Path(tmp))
            rows.append(row)
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    base = next((r for r in rows if r["framework"] == "agentops" and "per_step_ms" in r), None)
    print(f"{'framework':<10} {'per step (ms)':>14} {'cold start (s)':>15} {'200x50ms (s)':>13}  vs agentops / note")
    for r in rows:
        if "per_step_ms" not in r:
            print(f"{r['framework']:<10} {'-':>14} {'-':>15} {'-':>13}  {r['note']}")
            continue
        if r["per_step_ms"] <= 0:
            print(f"{r['framework']:<10} {'-':>14} {r['cold_start_s']:>15.3f} {r['concurrent_200x50ms_s']:>13.3f}  "
                  "per step unusable: t(1000 steps) < t(100 steps), its client was retrying server errors")
            continue
        ratio = ""
        if base and r is not base:
            ratio = (f"step x{r['per_step_ms'] / base['per_step_ms']:.1f}, "
                     f"cold x{r['cold_start_s'] / base['cold_start_s']:.1f}, "
                     f"fan-out x{r['concurrent_200x50ms_s'] / base['concurrent_200x50ms_s']:.1f}")
        print(f"{r['framework']:<10} {r['per_step_ms']:>14.3f} {r['cold_start_s']:>15.3f} "
              f"{r['concurrent_200x50ms_s']:>13.3f}  {'; '.join(x for x in (ratio, r.get('note')) if x)}")
    print(f"targets: per step <= {TARGETS['per_step_ms']:.3f} ms (a quarter of DBOS's 2.1 ms), "
          f"cold start < {TARGETS['cold_start_s']} s, 200x50ms < {TARGETS['concurrent_200x50ms_s']} s")


if __name__ == "__main__":
    main()
