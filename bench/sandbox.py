"""Sandbox benchmark: what one model-written answer costs in the sandbox, against a bare interpreter doing the same.

    .venv/bin/python bench/sandbox.py [--repeats 5] [--checkout /work/main]

Times, as medians over the sample sales data:
- sandbox: run_sandboxed() of `result = len(df)`, with every layer this kernel has (namespaces, the file view,
  seccomp, Landlock, the audit hook) and the four processes of the sandbox's tree;
- bare interpreter: `python -I -c` importing numpy, pandas and duckdb and loading the same CSV, no isolation,
  in the child's environment.
The difference is the price of the isolation. --checkout runs another checkout's sandbox (e.g. main's, for the
cost of a change). The machine is shared and noisy: read the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if "--checkout" in sys.argv:
    ROOT = Path(sys.argv[sys.argv.index("--checkout") + 1]).resolve()
sys.path.insert(0, str(ROOT))

from agentops.data import SandboxLimits, resolve_dataset, run_sandboxed  # noqa: E402
from agentops.data.sandbox import child_environment  # noqa: E402

BARE = ("import sys\nclass NoArrow:\n    def find_spec(self, name, *rest):\n"
        "        if name.split('.')[0] == 'pyarrow':\n            raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoArrow())\n"  # the sandbox keeps pyarrow out; so does the baseline
        "import duckdb, numpy, pandas\n"
        "con = duckdb.connect(config={'threads': 1})\n"
        "print(len(con.execute(\"SELECT * FROM read_csv_auto('%s')\").df()))")


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkout", help="the agentops checkout whose sandbox to time (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").mkdir()
        shutil.copyfile(ROOT / "data" / "sales.csv", Path(tmp) / "data" / "sales.csv")
        dataset = resolve_dataset("sales", Path(tmp))
        limits = SandboxLimits(wall_seconds=120)
        layers = run_sandboxed("result = {'type': 'number', 'value': len(df)}", dataset, limits=limits).kernel_sandbox
        sandbox = median_seconds(lambda: run_sandboxed("result = {'type': 'number', 'value': len(df)}", dataset,
                                                       limits=limits), args.repeats)
        env = child_environment(Path(tmp))  # the same single-threaded BLAS as the sandbox's child
        bare = median_seconds(lambda: subprocess.run([sys.executable, "-I", "-c", BARE % dataset.path], check=True,
                                                     capture_output=True, env=env), args.repeats)
    print(f"checkout: {ROOT}\nlayers: {layers}\n")
    print("| path | median s | vs bare |\n|---|---|---|")
    print(f"| sandbox (every layer) | {sandbox:.3f} | {sandbox / bare:.2f}x |")
    print(f"| bare interpreter | {bare:.3f} | 1.00x |")
    print(f"\nisolation costs {1000 * (sandbox - bare):.0f} ms per answer")


if __name__ == "__main__":
    main()
