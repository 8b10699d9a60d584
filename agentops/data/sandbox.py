"""Run model-written Python over a dataset in a separate, locked-down process tree.

The child (agentops/data/_sandbox_child.py, with the kernel layers in _sandbox_kernel.py) starts in Python's
isolated mode with a fixed environment (no secrets: no API keys, no AGENTOPS_*), in a fresh scratch directory.
Where the kernel allows it, the code runs in its own user, network, PID, mount and IPC namespaces: no network
interface at all, an unprivileged uid outside (nobody when agentops runs as root), a file view holding only the
interpreter, system libraries, the data file (read-only) and the scratch dir, and a PID namespace whose end
kills every process the code started. Inside, it holds no capability, runs under CPU, memory, file-size,
open-file and process limits, and under seccomp (no sockets, no new processes, no exec, no namespaces, mounts
or ptrace) and Landlock (reads of the dataset and Python's own files, writes of the scratch dir). An audit
hook refuses the same operations in-process, with messages that name them. A supervisor outside every
namespace enforces the wall-clock limit and kills and reaps whatever is left when the question ends.

Each guarantee rests on at least one kernel mechanism, and the code is refused (one line saying what is
missing) unless AGENTOPS_SANDBOX_REQUIRE_ISOLATION / _REQUIRE_LANDLOCK say otherwise: no network (network
namespace, or seccomp), bounded processes that die with the question (PID namespace with RLIMIT_NPROC, or
seccomp), and no file outside the dataset (mount namespace, or Landlock). The code sees `df` (the dataset),
`pd`, `np`, `execute_sql_query(sql)` (DuckDB over the dataset) and, when it plots, `plt`; it sets `result` the
way pandasai code does: {"type": "dataframe" | "number" | "string" | "plot", "value": ...}.

This is a boundary for code a model wrote, built from the kernel's own isolation; a kernel bug is out of scope.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentops.data.datasets import Dataset
from agentops.errors import AgentOpsError
from agentops.settings import get_settings

CHILD_SCRIPT = Path(__file__).with_name("_sandbox_child.py")
MAX_OUTCOME_BYTES = 20 * 1024 * 1024
PLOT_WORDS = ("plt", "matplotlib", "plot", "chart", "savefig", "figure")
SUPERVISOR_GRACE_SECONDS = 5.0
"""The supervisor stops the sandbox at the wall-clock limit itself; this process kills its group only if the
supervisor has not ended this long after."""


class SandboxError(AgentOpsError):
    """Model-written code failed in the sandbox: an exception, a refused operation, a timeout or a limit."""


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 30.0
    """Killed (with its process group) after this long."""
    cpu_seconds: int = 10
    memory_bytes: int = 2 * 1024**3
    """Address space (RLIMIT_AS)."""
    file_bytes: int = 50 * 1024**2
    """Largest file the code may write (RLIMIT_FSIZE)."""
    open_files: int = 256
    processes: int = 32
    """Processes and threads of the sandbox's user namespace, its own supervisor and init included
    (RLIMIT_NPROC; seccomp already refuses new processes, so this bounds threads)."""
    require_landlock: bool = True
    """Refuse to run the code where Landlock cannot be applied (AGENTOPS_SANDBOX_REQUIRE_LANDLOCK)."""
    require_isolation: bool = True
    """Refuse to run the code where the kernel cannot cut it off from the network, bound and reap its processes,
    and hide every file but the dataset's (AGENTOPS_SANDBOX_REQUIRE_ISOLATION)."""
    in_process_checks: bool = True
    """False leaves the audit hook out, so that tests can prove the kernel layers hold on their own."""


@dataclass
class SandboxOutput:
    kind: str
    """dataframe | number | string | plot"""
    value: Any = None
    """Rows (lists, in `columns` order) for a dataframe; the number or text otherwise."""
    columns: list[str] = field(default_factory=list)
    row_count: int = 0
    chart_png: bytes | None = None
    sql: list[str] = field(default_factory=list)
    """Every query the code ran through execute_sql_query, in order, as the child reports it. Code that tampers
    with its own process can falsify this and `refusals`; the generated code, recorded too, is what ran."""
    refusals: list[str] = field(default_factory=list)
    """Operations the sandbox refused but the code survived (it caught the error), as the child reports them."""
    stdout: str = ""
    kernel_sandbox: str = ""
    """The kernel layers in force ('landlock abi 7; namespaces user pid net mount ipc uts; seccomp'), and why any
    one is missing."""
    seconds: float = 0.0

    def records(self) -> list[dict[str, Any]]:
        if self.kind != "dataframe":
            return []
        return [dict(zip(self.columns, row, strict=False)) for row in self.value or []]


def child_environment(home: Path) -> dict[str, str]:
    """The child's whole environment: nothing inherited from this process, so no secrets can leak through it."""
    return {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(home), "TMPDIR": str(home), "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(home / ".matplotlib"), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _rlimits(limits: SandboxLimits) -> list[tuple[int, int]]:
    wanted = [(resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_AS, limits.memory_bytes),
              (resource.RLIMIT_FSIZE, limits.file_bytes), (resource.RLIMIT_NOFILE, limits.open_files),
              (resource.RLIMIT_CORE, 0)]
    out = []
    for which, value in wanted:
        _, hard = resource.getrlimit(which)
        out.append((which, value if hard == resource.RLIM_INFINITY else min(value, hard)))
    return out


def _seed_font_cache(home: Path) -> None:
    """Copy this process's matplotlib font list into the child's config dir, so it does not rebuild it each run."""
    try:
        import matplotlib
        import matplotlib.font_manager

        target = home / ".matplotlib"
        target.mkdir(exist_ok=True)
        for cached in Path(matplotlib.get_cachedir()).glob("fontlist-*.json"):
            shutil.copyfile(cached, target / cached.name)
    except Exception:
        return


def _fmt_bytes(count: int) -> str:
    return f"{count / 1024**3:.0f} GiB" if count >= 1024**3 else f"{count / 1024**2:.0f} MiB"


def run_sandboxed(code: str, dataset: Dataset, *, table: str | None = None,
                  limits: SandboxLimits | None = None) -> SandboxOutput:
    """Run `code` over the dataset in the sandbox. SandboxError (one line) when it fails in any way."""
    if limits is None:
        settings = get_settings()
        limits = SandboxLimits(require_landlock=settings.sandbox_require_landlock,
                               require_isolation=settings.sandbox_require_isolation)
    plotting = any(word in code for word in PLOT_WORDS)
    workdir = Path(tempfile.mkdtemp(prefix="agentops-sandbox-"))
    scratch = workdir / "scratch"
    scratch.mkdir()
    (workdir / "view").mkdir()
    if plotting:
        _seed_font_cache(scratch)
    job = {"code": code, "scratch": str(scratch), "table": table or dataset.name, "plotting": plotting,
           "source": {"kind": dataset.kind, "path": str(dataset.path), "table": dataset.table},
           "duckdb_memory": f"{limits.memory_bytes // 3 // 1024**2}MB",
           "memory_limit_text": _fmt_bytes(limits.memory_bytes), "rlimits": _rlimits(limits),
           "processes": limits.processes, "wall_seconds": limits.wall_seconds, "view": str(workdir / "view"),
           "require_landlock": limits.require_landlock, "require_isolation": limits.require_isolation,
           "in_process_checks": limits.in_process_checks}
    started = time.perf_counter()
    try:
        with (workdir / "stdout.txt").open("wb") as out, (workdir / "stderr.txt").open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-I", str(CHILD_SCRIPT)], stdin=subprocess.PIPE, stdout=out,
                                    stderr=err, cwd=scratch, env=child_environment(scratch), close_fds=True,
                                    start_new_session=True)
            try:
                proc.communicate(json.dumps(job).encode(), timeout=limits.wall_seconds + SUPERVISOR_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise _timeout(limits) from None
            finally:
                if proc.poll() is None:
                    _kill_group(proc)
        seconds = time.perf_counter() - started
        if proc.returncode == -signal.SIGKILL and seconds >= limits.wall_seconds:
            raise _timeout(limits)  # the supervisor's own alarm stopped the sandbox
        return _read_outcome(proc.returncode, workdir, scratch, limits, seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _timeout(limits: SandboxLimits) -> SandboxError:
    return SandboxError(f"the generated code ran longer than {limits.wall_seconds:g} s and was stopped")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _read_regular(path: Path) -> bytes | None:
    """The file the sandbox wrote, or None: never through a symlink, a FIFO or a device it planted there,
    and never more than MAX_OUTCOME_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_OUTCOME_BYTES:
            return None
        return handle.read(MAX_OUTCOME_BYTES + 1)


def _read_outcome(returncode: int, workdir: Path, scratch: Path, limits: SandboxLimits,
                  seconds: float) -> SandboxOutput:
    written = _read_regular(scratch / "outcome.json")
    if returncode == -signal.SIGXCPU:
        raise SandboxError(f"the generated code used more than {limits.cpu_seconds} s of CPU and was stopped")
    if returncode == -signal.SIGKILL and written is None:
        raise SandboxError(f"the generated code was killed (CPU limit {limits.cpu_seconds} s, memory limit "
                           f"{_fmt_bytes(limits.memory_bytes)})")
    if written is None or len(written) > MAX_OUTCOME_BYTES:
        last = (_tail(workdir / "stderr.txt").strip().splitlines() or [f"exit status {returncode}"])[-1]
        raise SandboxError(f"the generated code stopped without a result: {' '.join(last.split())[:300]}")
    try:
        outcome = json.loads(written)
    except ValueError:
        raise SandboxError("the sandbox wrote an unreadable result") from None
    if not outcome.get("ok"):
        error = " ".join(str(outcome.get("error") or "unknown error").split())
        if outcome.get("refused"):
            raise SandboxError(f"the generated code was not run: {error}")
        raise SandboxError(f"the generated code failed: {error}")
    result = outcome.get("result") or {}
    output = SandboxOutput(kind=str(result.get("type")), sql=list(outcome.get("sql") or []),
                           refusals=list(outcome.get("refusals") or []), stdout=_tail(workdir / "stdout.txt"),
                           kernel_sandbox=str(outcome.get("kernel_sandbox", "")), seconds=seconds)
    if output.kind == "dataframe":
        output.columns = [str(c) for c in result.get("columns") or []]
        output.value, output.row_count = result.get("rows") or [], int(result.get("row_count") or 0)
    elif output.kind == "plot":
        output.chart_png = _read_regular(scratch / "chart.png")
        if output.chart_png is None:
            raise SandboxError("the generated code returned a plot but no chart file was written")
        if not output.chart_png.startswith(b"\x89PNG"):
            raise SandboxError("the generated code's chart is not a PNG image")
    else:
        output.value = result.get("value")
    return output
