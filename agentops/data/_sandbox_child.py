"""The sandbox's child: runs model-written code over one dataset and writes the result to its scratch dir.

Started by agentops.data.sandbox as `python -I _sandbox_child.py` in a session of its own, with a minimal
environment and a fresh scratch directory as cwd; the job (code, data file, limits) arrives as JSON on stdin.
Self-contained on purpose: it imports nothing from agentops (the kernel layers live in _sandbox_kernel.py).

Four processes, each forked from the one before:
1. The supervisor (this one, outside every namespace): a child subreaper with a wall-clock alarm. However the
   question ends, it kills and reaps every process left under it, setsid() or double fork or not.
2. The holder: enters new user, mount, network, PID, IPC and UTS namespaces (the supervisor writes its uid map:
   root inside is nobody outside when the parent runs as root, else the parent's own uid), opens the files the
   code may see and builds the file view from them, and becomes that uid.
3. Init, PID 1 of the new PID namespace: mounts a fresh /proc, pivots into the view, starts the worker and reaps.
   When it exits, the kernel kills everything left in the namespace.
4. The worker: drops every capability, sets its resource limits (RLIMIT_NPROC counts per user namespace, so it
   holds for root too), applies Landlock and seccomp before any thread exists, refuses to go on unless what the
   settings require is in force, and only then loads the data and runs the code under an audit hook.
Where the kernel refuses namespaces (containers often do), the holder is the worker and seccomp, Landlock and the
supervisor's reaping are what hold.

The layers inside the worker, outermost first:
- seccomp: no sockets, no new processes (threads only), no exec, namespaces, mounts, ptrace or BPF;
- Landlock: reads of Python's own prefixes, system libraries and the data file only, writes of the scratch dir
  only, no exec, no TCP, no signals out. This also binds C extensions (DuckDB, Arrow), which audit hooks cannot see;
- a locked DuckDB connection (external access off) behind `execute_sql_query`;
- an audit hook (PEP 578) that refuses opens outside the allowed paths, process creation, sockets, ctypes,
  subinterpreters and imports of modules that do their own file I/O or spawn, with a message naming what it refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

if __package__ or TYPE_CHECKING:
    from agentops.data import _sandbox_kernel as kernel
else:  # run as a script (-I leaves its own directory off sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _sandbox_kernel as kernel

    del sys.path[0]

MAX_ROWS = 10_000
MAX_TEXT = 20_000
OUTCOME = "outcome.json"
CHART = "chart.png"
SYSTEM_READ_PATHS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache",
                     "/usr/share/zoneinfo", "/etc/localtime", "/sys/devices/system/cpu", "/sys/fs/cgroup",
                     "/proc/stat", "/proc/meminfo", "/proc/cpuinfo", "/proc/sys/vm/overcommit_memory", "/proc/self")
"""Shared libraries, time zones, and the CPU and memory facts DuckDB and BLAS read (/proc/self is this process)."""
IN_FORCE_NAMESPACES = "namespaces user pid net mount ipc uts"
landlock_abi = kernel.landlock_abi


def _prefixes() -> list[str]:
    return sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)})


def _read_paths(job: dict[str, Any]) -> list[str]:
    return [*_prefixes(), *SYSTEM_READ_PATHS, os.path.realpath(job["source"]["path"])]


def _view_paths(job: dict[str, Any]) -> list[str]:
    """What the file view shows read-only: the read paths but /proc (its own, fresh) and the cgroup tree (a
    stack of mounts that DuckDB needs no more, its memory limit being set)."""
    return [p for p in _read_paths(job) if not p.startswith(("/proc/", "/sys/fs/cgroup"))]


def _why(exc: OSError) -> str:
    return f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc.strerror or exc)


# -- the process tree ----------------------------------------------------------------------------------------------

_sandbox_pid = 0
_timed_out = False


def _on_deadline(signum: int, frame: Any) -> None:
    global _timed_out
    _timed_out = True
    if _sandbox_pid:
        os.kill(_sandbox_pid, signal.SIGKILL)


def _fork(body: Callable[[], object]) -> int:
    """Fork; the child runs `body` and exits, never returning into its parent's code."""
    pid = os.fork()
    if pid:
        return pid
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    code = 0
    try:
        body()
    except BaseException:
        traceback.print_exc()
        code = 70
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _exit_code(status: int) -> int:
    """A wait status as an exit code a parent can pass on: 128 + N for death by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _sandbox_identity() -> tuple[int, int]:
    if os.geteuid() == 0:
        return kernel.SANDBOX_ID_WHEN_ROOT, kernel.SANDBOX_ID_WHEN_ROOT
    return os.getuid(), os.getgid()


def _chown_tree(top: str, uid: int, gid: int) -> None:
    if os.geteuid() != 0:
        return
    for folder, dirs, files in os.walk(top):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.chown(name, uid, gid, follow_symlinks=False)


def supervise(job: dict[str, Any]) -> int:
    """Run the sandbox to its end and leave nothing behind. Returns the sandbox's wait status."""
    global _sandbox_pid
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGALRM, _on_deadline)
    signal.setitimer(signal.ITIMER_REAL, float(job["wall_seconds"]))
    try:
        pid, why_not = _start_isolated(job)
        if pid is None and not _timed_out:
            _chown_tree(job["scratch"], os.getuid(), os.getgid())
            pid = _sandbox_pid = _fork(lambda: worker(job, {"namespaces": why_not}, isolated=False))
        status = os.waitpid(pid, 0)[1] if pid else signal.SIGKILL
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _reap_everything()
    return status


def _start_isolated(job: dict[str, Any]) -> tuple[int | None, str]:
    """Fork the holder into its namespaces; (pid, '') once init has entered the view, else (None, why not)."""
    global _sandbox_pid
    reports_r, reports_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = _fork(lambda: _holder(job, reports_w, go_r, reports_r, go_w))
    _sandbox_pid = pid
    os.close(reports_w)
    os.close(go_r)
    with os.fdopen(reports_r) as reports, os.fdopen(go_w, "w") as go:
        said = reports.readline().strip()
        if said == "unshared":
            try:
                uid, gid = _sandbox_identity()
                kernel.write_id_maps(pid, uid, gid)
                _chown_tree(job["scratch"], uid, gid)
                go.write("go\n")
                go.flush()
            except OSError as exc:
                said = f"unavailable: uid map: {_why(exc)}"
            else:
                said = reports.readline().strip()
    if said == "ready":
        return pid, ""
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None, said or "unavailable: the sandbox stopped while entering its namespaces"


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (and now, if it already has)."""
    kernel.prctl(kernel.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def _holder(job: dict[str, Any], reports_w: int, go_r: int, *unused: int) -> None:
    for fd in unused:
        os.close(fd)
    supervisor = os.getppid()
    _die_with_parent(supervisor)
    report = os.fdopen(reports_w, "w", buffering=1)
    try:
        kernel.unshare(kernel.SANDBOX_NAMESPACES)
    except OSError as exc:
        report.write(f"unavailable: {_why(exc)}\n")
        return
    report.write("unshared\n")
    with os.fdopen(go_r) as go:
        if go.readline() != "go\n":
            return
    try:
        kernel.FileView(job["view"], _view_paths(job), [os.path.realpath(job["scratch"])]).build(become=(0, 0))
    except OSError as exc:
        report.write(f"unavailable: file view: {_why(exc)}\n")
        return
    _die_with_parent(supervisor)  # again: entering the user namespace and changing uid cleared it
    init = _fork(lambda: _init(job, report))
    report.close()
    os._exit(_exit_code(os.waitpid(init, 0)[1]))


def _init(job: dict[str, Any], report: Any) -> NoReturn:
    kernel.prctl(kernel.PR_SET_PDEATHSIG, signal.SIGKILL)  # its parent, the holder, is outside this PID namespace
    try:
        kernel.FileView.enter()
    except OSError as exc:
        report.write(f"unavailable: file view: {_why(exc)}\n")
        os._exit(0)
    report.write("ready\n")
    report.close()
    child = _fork(lambda: worker(job, {"namespaces": IN_FORCE_NAMESPACES}, isolated=True))
    while True:
        pid, status = os.wait()
        if pid == child:
            os._exit(_exit_code(status))


def _children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as handle:
            return [int(pid) for pid in handle.read().split()]
    except OSError:
        pids = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == me:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
        return pids


def _reap_everything() -> None:
    """Kill and reap every process left under this subreaper, until there is none (orphans come back here)."""
    while True:
        for pid in _children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _exit_like(status: int) -> NoReturn:
    """End this process the way the sandbox ended, so that the parent sees a signal death as one."""
    code = _exit_code(status)
    sig = code - 128
    if sig in (signal.SIGKILL, signal.SIGXCPU, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGTERM):
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(code)


# -- what must be in force -----------------------------------------------------------------------------------------


def _in_force(status: str) -> bool:
    return not status.startswith("unavailable")


def describe_layers(layers: dict[str, str]) -> str:
    """'landlock abi 7; namespaces user pid net mount ipc uts; seccomp', naming what is missing and why."""
    return "; ".join(status if _in_force(status) else f"{name} {status}" for name, status in layers.items())


def kernel_refusal(layers: dict[str, str], require_landlock: bool, require_isolation: bool) -> str | None:
    """Why the code must not run given the layers in force, or None. Each guarantee needs one kernel mechanism:
    no network (network namespace or seccomp), bounded processes that die with the question (PID namespace and
    a per-namespace RLIMIT_NPROC, or seccomp), and no file but the dataset's (mount namespace or Landlock)."""
    landlock, namespaces, seccomp = (layers.get(k, "unavailable: not tried") for k in ("landlock", "namespaces",
                                                                                        "seccomp"))
    if require_landlock and not _in_force(landlock):
        return (f"Landlock is required but {landlock} (set AGENTOPS_SANDBOX_REQUIRE_LANDLOCK=false to run "
                "model-written code without it)")
    if not require_isolation or _in_force(namespaces):
        return None
    gaps = []
    if not _in_force(seccomp):
        gaps.append(f"from the network and from starting processes (namespaces {namespaces}; seccomp {seccomp})")
    if not _in_force(landlock):
        gaps.append(f"from files outside the dataset (namespaces {namespaces}; landlock {landlock})")
    if not gaps:
        return None
    return (f"the kernel cannot cut model-written code off {' or '.join(gaps)}; set "
            "AGENTOPS_SANDBOX_REQUIRE_ISOLATION=false to run it anyway")


# -- the audit hook ------------------------------------------------------------------------------------------------

DENIED_EVENTS = {
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "socket.__new__", "socket.connect",
    "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname",
    "socket.gethostbyaddr", "socket.getnameinfo", "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function",
    "ctypes.cdata", "sqlite3.connect", "sqlite3.load_extension", "os.link", "os.symlink", "resource.setrlimit",
    "resource.prlimit", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "urllib.Request",
    "http.client.connect", "ftplib.connect", "smtplib.connect", "webbrowser.open", "os.startfile",
    "sys.remote_exec", "os.setuid", "os.setgid", "os.chroot", "mmap.__new__", "cpython.PyInterpreterState_New",
}
"""cpython.PyInterpreterState_New: a subinterpreter would start with no audit hook of ours."""
WRITE_PATH_EVENTS = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
                     "os.setxattr", "os.removexattr", "os.chflags", "os.lchflags", "os.mkfifo", "os.mknod",
                     "os.chdir", "shutil.rmtree"}
READ_PATH_EVENTS = {"os.listdir", "os.scandir", "os.getxattr", "os.listxattr", "glob.glob", "glob.glob/2",
                    "os.walk", "os.fwalk"}
DENIED_IMPORTS = ("ctypes", "_ctypes", "_posixsubprocess", "multiprocessing", "_multiprocessing", "_posixshmem",
                  "duckdb", "_duckdb", "pyarrow", "cffi", "_cffi_backend", "socket", "_socket", "ssl", "_ssl",
                  "sqlite3", "_sqlite3", "mmap", "pty", "fcntl", "resource", "pandasai", "agentops", "requests",
                  "httpx", "urllib3", "urllib.request", "http.client", "ftplib", "smtplib", "telnetlib",
                  "webbrowser", "_xxsubinterpreters", "_interpreters", "_xxinterpchannels", "_interpchannels",
                  "_interpqueues", "_testcapi", "_testinternalcapi", "_testmultiphase", "_testsinglephase",
                  "_testbuffer", "_testimportmultiple", "_testclinic", "_xxtestfuzz", "_sandbox_kernel")
"""Refused under any name: a module whose dotted name has one of these as a part ('x._posixsubprocess' loads the
same C module), or whose file is one of these ('anything' loaded from _socket.cpython-311-x86_64-linux-gnu.so)."""
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class Refused(PermissionError):
    """The sandbox refused an operation."""


def _within(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _real(path: Any) -> str | None:
    if isinstance(path, int) or path is None:
        return None
    return os.path.realpath(os.path.join(os.getcwd(), os.fsdecode(path)))


def denied_module(name: str, filename: Any = None) -> bool:
    """Whether importing `name` (from `filename`, when the loader names one) is refused."""
    parts = name.split(".")
    for denied in DENIED_IMPORTS:
        if "." in denied:
            if name == denied or name.startswith(denied + "."):
                return True
        elif denied in parts:
            return True
    if isinstance(filename, str | bytes):
        stem = os.path.basename(os.fsdecode(filename)).split(".")[0]
        return stem != "__init__" and denied_module(stem)
    return False


def install_audit_hook(read_roots: tuple[str, ...], write_roots: tuple[str, ...], refusals: list[str]) -> None:
    """Refuse, from now on, what sandboxed code must not do. Each refusal is logged in `refusals` and raised."""

    def refuse(what: str) -> None:
        refusals.append(what)
        raise Refused(f"sandbox refused {what}")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path = _real(args[0])
            if path is None:
                return
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
            if writing and not _within(path, write_roots):
                refuse(f"writing {path} (only the scratch directory is writable)")
            if not writing and not _within(path, read_roots + write_roots):
                refuse(f"reading {path} (outside the dataset and scratch directory)")
        elif event in DENIED_EVENTS:
            refuse(f"{event} (not allowed in the sandbox)")
        elif event in WRITE_PATH_EVENTS:
            path = _real(args[0]) if args else None
            if path is not None and not _within(path, write_roots):
                refuse(f"{event} on {path} (outside the scratch directory)")
        elif event == "os.rename":
            for target in args[:2]:
                path = _real(target)
                if path is not None and not _within(path, write_roots):
                    refuse(f"{event} on {path} (outside the scratch directory)")
        elif event in READ_PATH_EVENTS:
            path = _real(args[0]) if args and args[0] is not None else os.getcwd()
            if path is not None and not _within(path, read_roots + write_roots):
                refuse(f"{event} of {path} (outside the dataset and scratch directory)")
        elif event == "import" and denied_module(str(args[0]), args[1] if len(args) > 1 else None):
            refuse(f"import of {args[0]} (not available in the sandbox)")

    sys.addaudithook(hook)


def _forget_denied_modules() -> None:
    """Drop what the setup imported and the code must not reach: a later import then goes through the hook."""
    for name in list(sys.modules):
        if denied_module(name):
            del sys.modules[name]
    subprocess = sys.modules.get("subprocess")  # imported by matplotlib; Popen is refused by the hook
    if subprocess is not None:
        subprocess._posixsubprocess = None  # type: ignore[attr-defined]
        subprocess._fork_exec = None  # type: ignore[attr-defined]


# -- the job -------------------------------------------------------------------------------------------------------


def _load(job: dict[str, Any]) -> tuple[Any, Any]:
    """The dataset as a DataFrame, and a DuckDB connection over it that cannot reach files, locked."""
    import duckdb

    con = duckdb.connect(config={"threads": 1, "memory_limit": job["duckdb_memory"]})
    source = job["source"]
    path = source["path"].replace("'", "''")
    if source["kind"] == "csv":
        relation = f"read_csv_auto('{path}')"
    elif source["kind"] == "parquet":
        relation = f"read_parquet('{path}')"
    else:
        con.execute(f"ATTACH '{path}' AS source_db (READ_ONLY)")
        relation = 'source_db."' + source["table"].replace('"', '""') + '"'
    df = con.execute(f"SELECT * FROM {relation}").df()
    if source["kind"] == "duckdb":
        con.execute("DETACH source_db")
    con.register(job["table"], df)
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return df, con


def _table(value: Any, pd: Any) -> dict[str, Any]:
    frame = value.to_frame() if isinstance(value, pd.Series) else value
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    frame.columns = [str(c) for c in frame.columns]
    head = frame.head(MAX_ROWS)
    rows = json.loads(head.to_json(orient="values", date_format="iso", default_handler=str))
    return {"type": "dataframe", "columns": list(head.columns), "rows": rows, "row_count": len(frame)}


def _result(namespace: dict[str, Any], scratch: str, pd: Any, np: Any) -> dict[str, Any]:
    if "result" not in namespace:
        raise ValueError("the code did not set `result` (expected {'type': ..., 'value': ...})")
    result = namespace["result"]
    kind, value = (result.get("type"), result.get("value")) if isinstance(result, dict) else (None, result)
    if kind == "dataframe" and isinstance(value, dict | list):
        value = pd.DataFrame(value)
    if isinstance(value, pd.DataFrame | pd.Series):
        return _table(value, pd)
    if kind == "plot" or type(value).__name__ == "Figure":
        return _plot(value, scratch)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float) and kind in (None, "number"):
        return {"type": "number", "value": value if value == value else None}
    return {"type": "string", "value": str(value)[:MAX_TEXT]}


def _plot(value: Any, scratch: str) -> dict[str, Any]:
    target = os.path.join(scratch, CHART)
    if hasattr(value, "savefig"):
        value.savefig(target, format="png", dpi=80)
    elif isinstance(value, str):
        source = os.path.realpath(os.path.join(scratch, value))
        if not source.startswith(scratch + "/") or not os.path.isfile(source):
            raise ValueError(f"the plot result names {value!r}, which is not a chart file the code wrote")
        with open(source, "rb") as src, open(target, "wb") as dst:
            dst.write(src.read())
    else:
        import matplotlib.pyplot as plt

        plt.gcf().savefig(target, format="png", dpi=80)
    return {"type": "plot", "value": CHART}


def apply_rlimits(limits: list[list[int]]) -> None:
    """CPU, memory, file-size, open-file and process limits, set here rather than by the parent between fork and
    exec (which is unsafe in the parent's threaded processes). Limits the platform does not enforce are skipped."""
    for which, value in limits:
        hard = value + 1 if which == resource.RLIMIT_CPU else value
        try:
            resource.setrlimit(which, (value, hard))
        except (ValueError, OSError):
            continue


class _NoPyArrow:
    """Refuses every import of pyarrow: it reads and writes files in C++, where the audit hook cannot see it,
    and pandas reaches it through its own modules if it is importable at all."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("pyarrow is not available in the sandbox")


def worker(job: dict[str, Any], layers: dict[str, str], *, isolated: bool) -> None:
    """Lock this process down, then run the job (or refuse to) and write the outcome to the scratch dir."""
    with contextlib.suppress(OSError):  # an unprivileged process without namespaces has none to drop
        kernel.drop_capabilities()
    if isolated:  # init is its parent; outside namespaces the supervisor reaps it
        kernel.prctl(kernel.PR_SET_PDEATHSIG, signal.SIGKILL)
    limits = list(job.get("rlimits") or [])
    if isolated:  # counted per user namespace; outside one it would count every process of the user
        limits.append([resource.RLIMIT_NPROC, int(job["processes"])])
    apply_rlimits(limits)
    scratch = os.path.realpath(job["scratch"])
    os.chdir(scratch)
    read_paths = _read_paths(job)
    layers["landlock"] = kernel.apply_landlock(read_paths, [scratch])
    layers["seccomp"] = kernel.apply_seccomp()
    layers = {name: layers[name] for name in ("landlock", "namespaces", "seccomp")}
    outcome: dict[str, Any] = {"ok": False, "sql": [], "refusals": [], "kernel_sandbox": describe_layers(layers)}
    started = time.perf_counter()

    def write_outcome() -> None:
        outcome["seconds"] = round(time.perf_counter() - started, 3)
        with open(os.path.join(scratch, OUTCOME), "w") as handle:
            json.dump(outcome, handle, default=str)

    refusal = kernel_refusal(layers, job["require_landlock"], job["require_isolation"])
    data_file = os.path.realpath(job["source"]["path"])
    if not refusal and not os.access(data_file, os.R_OK):
        refusal = (f"the sandbox's unprivileged user (nobody, when agentops runs as root) cannot read {data_file}; "
                   "make the file readable by others (chmod o+r)")
    if refusal:
        outcome["error"], outcome["refused"] = refusal, True
        write_outcome()
        return
    run(job, scratch, read_paths, outcome)
    write_outcome()


def run(job: dict[str, Any], scratch: str, read_paths: list[str], outcome: dict[str, Any]) -> None:
    os.makedirs(os.path.join(scratch, "exports", "charts"), exist_ok=True)
    sys.meta_path.insert(0, _NoPyArrow())

    import numpy as np
    import pandas as pd

    plt: ModuleType | None = None
    if job.get("plotting"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot

        plt = matplotlib.pyplot
    try:
        df, con = _load(job)
    except Exception as exc:
        outcome["error"] = f"the sandbox could not load the dataset: {type(exc).__name__}: {str(exc)[:300]}"
        return

    def execute_sql_query(sql_query: str) -> Any:
        """Run DuckDB SQL over the dataset (the table named in the prompt); returns a DataFrame."""
        outcome["sql"].append(str(sql_query))
        return con.execute(str(sql_query)).df()

    prefixes = tuple(_prefixes())
    sys.path[:] = [p for p in sys.path if _within(os.path.realpath(p or "."), prefixes)]
    _forget_denied_modules()
    if job.get("in_process_checks", True):
        install_audit_hook((*prefixes, os.path.realpath(job["source"]["path"])), (scratch,), outcome["refusals"])

    namespace: dict[str, Any] = {"__name__": "__sandbox__", "df": df, "pd": pd, "np": np,
                                 "execute_sql_query": execute_sql_query}
    if plt is not None:
        namespace["plt"] = plt
    try:
        exec(compile(job["code"], "<generated code>", "exec"), namespace)
        outcome["result"] = _result(namespace, scratch, pd, np)
        outcome["ok"] = True
    except MemoryError:
        outcome["error"] = f"MemoryError: the code ran out of memory (limit {job['memory_limit_text']})"
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (None, 0) and "result" in namespace:
            outcome["result"], outcome["ok"] = _result(namespace, scratch, pd, np), True
        else:
            frames = traceback.extract_tb(exc.__traceback__)
            line = next((f.lineno for f in reversed(frames) if f.filename == "<generated code>"), None)
            where = f" (line {line})" if line else ""
            outcome["error"] = f"{type(exc).__name__}{where}: {str(exc)[:500]}"


def main() -> NoReturn:
    job = json.loads(sys.stdin.read())
    _exit_like(supervise(job))


if __name__ == "__main__":
    main()
