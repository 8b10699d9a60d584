"""The sandbox's child process: runs model-written code over one dataset and writes the result to its scratch dir.

Started by agentops.data.sandbox as `python -I _sandbox_child.py` with a minimal environment, resource limits and
a fresh scratch directory as cwd; the job (code, data file, limits) arrives as JSON on stdin. Self-contained on
purpose: it imports nothing from agentops.

Layers, outermost first:
1. Landlock (Linux 5.13+), applied before any thread exists: the kernel allows reading only Python's own
   prefixes, system libraries and the data file, writing only the scratch dir, no exec, no TCP, no signals or
   ptrace outside the sandbox. This also binds C extensions (DuckDB, Arrow), which audit hooks cannot see.
2. A locked DuckDB connection (external access off) behind `execute_sql_query`.
3. An audit hook (PEP 578) that refuses opens outside the allowed paths, process creation, sockets, ctypes and
   imports of modules that do their own file I/O, with a message naming what was refused.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from types import ModuleType
from typing import Any

MAX_ROWS = 10_000
MAX_TEXT = 20_000
OUTCOME = "outcome.json"
CHART = "chart.png"

# -- Landlock ------------------------------------------------------------------------------------------------------

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_PR_SET_NO_NEW_PRIVS = 38
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_REMOVE_DIR, _FS_REMOVE_FILE, _FS_MAKE_CHAR, _FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
_FS_MAKE_REG, _FS_MAKE_SOCK, _FS_MAKE_FIFO, _FS_MAKE_BLOCK, _FS_MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
SYSTEM_READ_PATHS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache",
                     "/usr/share/zoneinfo", "/etc/localtime", "/sys/devices/system/cpu", "/sys/fs/cgroup",
                     "/proc/stat", "/proc/meminfo", "/proc/cpuinfo", "/proc/sys/vm/overcommit_memory", "/proc/self")
"""Shared libraries, time zones, and the CPU and memory facts DuckDB and BLAS read (/proc/self is this process)."""


def _fs_rights_for(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or this is not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return max(0, int(libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))


def apply_landlock(read_paths: list[str], write_paths: list[str]) -> str:
    """Restrict this process (and every thread and child it starts later) to the paths given. Returns a status."""
    abi = landlock_abi()
    if abi < 1:
        return "unavailable: the kernel has no Landlock"
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                    ("scoped", ctypes.c_uint64)]

    class PathBeneathAttr(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    handled = _fs_rights_for(abi)
    attr = RulesetAttr(handled, _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0,
                       _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"unavailable: create_ruleset: {os.strerror(ctypes.get_errno())}"
    read = _FS_READ_FILE | _FS_READ_DIR
    write = handled & ~(_FS_EXECUTE | _FS_MAKE_CHAR | _FS_MAKE_BLOCK | _FS_MAKE_SOCK | _FS_MAKE_FIFO | _FS_MAKE_SYM)
    rules = [(p, read) for p in read_paths] + [(p, write) for p in write_paths] + [("/dev/null", read | write)]
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            if not os.path.isdir(path):
                rights &= _FILE_RIGHTS
            rule = PathBeneathAttr(rights & handled, fd)
            result = libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule),
                                  ctypes.c_uint32(0))
            os.close(fd)
            if result < 0:
                return f"unavailable: add_rule {path}: {os.strerror(ctypes.get_errno())}"
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"unavailable: no_new_privs: {os.strerror(ctypes.get_errno())}"
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return f"unavailable: restrict_self: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(ruleset)
    return f"landlock abi {abi}"


# -- the audit hook ------------------------------------------------------------------------------------------------

DENIED_EVENTS = {
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "socket.__new__", "socket.connect",
    "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname",
    "socket.gethostbyaddr", "socket.getnameinfo", "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function",
    "ctypes.cdata", "sqlite3.connect", "sqlite3.load_extension", "os.link", "os.symlink", "resource.setrlimit",
    "resource.prlimit", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "urllib.Request",
    "http.client.connect", "ftplib.connect", "smtplib.connect", "webbrowser.open", "os.startfile",
    "sys.remote_exec", "os.setuid", "os.setgid", "os.chroot", "mmap.__new__",
}
WRITE_PATH_EVENTS = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
                     "os.setxattr", "os.removexattr", "os.chflags", "os.lchflags", "os.mkfifo", "os.mknod",
                     "os.chdir", "shutil.rmtree"}
READ_PATH_EVENTS = {"os.listdir", "os.scandir", "os.getxattr", "os.listxattr", "glob.glob", "glob.glob/2",
                    "os.walk", "os.fwalk"}
DENIED_IMPORTS = ("ctypes", "_ctypes", "_posixsubprocess", "multiprocessing", "duckdb", "_duckdb",
                  "pyarrow", "cffi", "_cffi_backend", "socket", "_socket", "ssl", "_ssl", "sqlite3", "_sqlite3",
                  "mmap", "pty", "fcntl", "resource", "pandasai", "agentops", "requests", "httpx", "urllib3",
                  "urllib.request", "http.client", "ftplib", "smtplib", "telnetlib", "webbrowser")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class Refused(PermissionError):
    """The sandbox refused an operation."""


def _within(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _real(path: Any) -> str | None:
    if isinstance(path, int) or path is None:
        return None
    return os.path.realpath(os.path.join(os.getcwd(), os.fsdecode(path)))


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
        elif event == "import":
            name = str(args[0])
            if any(name == d or name.startswith(d + ".") for d in DENIED_IMPORTS):
                refuse(f"import of {name} (not available in the sandbox)")

    sys.addaudithook(hook)


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
    """CPU, memory, file-size and open-file limits, set here rather than by the parent between fork and exec
    (which is unsafe in the parent's threaded processes). Limits the platform does not enforce are skipped."""
    import resource

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


def kernel_sandbox_refusal(status: str, required: bool) -> str | None:
    """Why the code must not run, given Landlock's status: it is required unless the operator said otherwise."""
    if status.startswith("landlock abi") or not required:
        return None
    return (f"the kernel sandbox is required but {status} (set AGENTOPS_SANDBOX_REQUIRE_LANDLOCK=false to run "
            "model-written code with the in-process checks alone)")


def main() -> None:
    job = json.loads(sys.stdin.read())
    apply_rlimits(job.get("rlimits") or [])
    scratch = os.path.realpath(job["scratch"])
    outcome: dict[str, Any] = {"ok": False, "sql": [], "refusals": []}
    started = time.perf_counter()

    def write_outcome() -> None:
        outcome["seconds"] = round(time.perf_counter() - started, 3)
        with open(os.path.join(scratch, OUTCOME), "w") as handle:
            json.dump(outcome, handle, default=str)

    prefixes = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
    data_file = os.path.realpath(job["source"]["path"])
    outcome["kernel_sandbox"] = apply_landlock([*prefixes, *SYSTEM_READ_PATHS, data_file], [scratch])
    refusal = kernel_sandbox_refusal(outcome["kernel_sandbox"], job.get("require_kernel_sandbox", True))
    if refusal:
        outcome["error"] = refusal
        write_outcome()
        return
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
    df, con = _load(job)

    def execute_sql_query(sql_query: str) -> Any:
        """Run DuckDB SQL over the dataset (the table named in the prompt); returns a DataFrame."""
        outcome["sql"].append(str(sql_query))
        return con.execute(str(sql_query)).df()

    sys.path[:] = [p for p in sys.path if _within(os.path.realpath(p or "."), tuple(prefixes))]
    for name in list(sys.modules):
        if any(name == d or name.startswith(d + ".") for d in DENIED_IMPORTS):
            del sys.modules[name]
    if "subprocess" in sys.modules:  # imported by matplotlib; Popen is refused by the hook, fork_exec is gone
        sys.modules["subprocess"]._posixsubprocess = None  # type: ignore[attr-defined]
    install_audit_hook((*prefixes, data_file), (scratch,), outcome["refusals"])

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
    write_outcome()


if __name__ == "__main__":
    main()
