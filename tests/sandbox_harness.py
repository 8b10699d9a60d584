"""Run generated code through the real sandbox on a kernel that refuses some of its features.

`python -m tests.sandbox_harness` reads a JSON job on stdin ({"without": [...], "dataset": path, "code": ...,
"limits": {...}}), installs a seccomp filter on itself that makes the kernel refuse what "without" names, the
way a container runtime's profile or an older kernel does (unshare: EPERM, seccomp: EPERM, Landlock: ENOSYS),
then calls run_sandboxed, whose child inherits the filter, and prints the outcome as JSON. "PARENT_PID" in the
code becomes this process's pid: the process whose environment the code tries to read.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from agentops.data import _sandbox_kernel as kernel

REFUSED_BY_KERNEL = {"namespaces": ("unshare", 1), "seccomp": ("seccomp", 1), "landlock": ("landlock", 38)}
LANDLOCK_SYSCALLS = (444, 445, 446)


def refuse(features: list[str]) -> None:
    """Make this process (and every process it starts) see a kernel without `features`."""
    if not features:
        return
    machine = os.uname().machine
    table = kernel._SYSCALLS[machine]
    rules: list[tuple[int, int]] = []
    for feature in features:
        name, errno = REFUSED_BY_KERNEL[feature]
        numbers = LANDLOCK_SYSCALLS if name == "landlock" else (table[name],)
        rules += [(nr, errno) for nr in numbers]
    code: list[Any] = [(kernel._LD_W_ABS, 0, 0, kernel._NR)]
    for index, (nr, _) in enumerate(rules):
        code.append((kernel._JEQ, f"refuse{index}", 0, nr))
    code.append((kernel._RET, 0, 0, kernel._RET_ALLOW))
    for index, (_, errno) in enumerate(rules):
        code += [f"refuse{index}", (kernel._RET, 0, 0, kernel._RET_ERRNO | errno)]
    kernel.install_seccomp_filter(kernel._assemble(code), machine)


def main() -> None:
    job = json.load(sys.stdin)
    refuse(job.get("without") or [])
    from agentops.data.datasets import resolve_dataset
    from agentops.data.sandbox import SandboxError, SandboxLimits, run_sandboxed

    dataset = resolve_dataset("sales", Path(job["dataset"]).parent.parent)
    code = job["code"].replace("PARENT_PID", str(os.getpid()))
    try:
        out = run_sandboxed(code, dataset, limits=SandboxLimits(**job.get("limits", {})))
    except SandboxError as exc:
        print(json.dumps({"error": str(exc)}))
        return
    print(json.dumps({"value": out.value, "kernel_sandbox": out.kernel_sandbox, "refusals": out.refusals}))


if __name__ == "__main__":
    main()
