"""The sandbox for model-written code: what it gives the code, and every way out tried by generated code.

The escapes run through the real sandbox with the audit hook left out (`in_process_checks=False`), so that what
stops them is the kernel: once with every layer, and once each on a kernel that refuses namespaces (as a
container's seccomp profile does), seccomp, or Landlock (tests/sandbox_harness.py makes the kernel refuse them).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from agentops.data import SandboxError, SandboxLimits, resolve_dataset, run_sandboxed
from agentops.data._sandbox_child import denied_module, kernel_refusal
from agentops.data._sandbox_kernel import landlock_abi
from agentops.data.datasets import Dataset

ROOT = Path(__file__).resolve().parent.parent
QUICK = SandboxLimits(wall_seconds=30)
EVERY_LAYER = f"landlock abi {landlock_abi()}; namespaces user pid net mount ipc uts; seccomp"


@pytest.fixture(scope="module")
def sales_frame() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "sales.csv", parse_dates=["date"])


@pytest.fixture(scope="module")
def sales(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The sample data as a dataset outside any project."""
    data = tmp_path_factory.mktemp("sandbox-project") / "data"
    data.mkdir()
    shutil.copyfile(ROOT / "data" / "sales.csv", data / "sales.csv")
    return resolve_dataset("sales", data.parent)


@pytest.fixture(scope="module")
def kernel_has_every_layer() -> None:
    """Skip where this kernel lacks a layer the test needs; the sandbox itself refuses to run there."""
    if landlock_abi() < 1:
        pytest.skip("this kernel has no Landlock")
    if "Seccomp_filters:" not in Path("/proc/self/status").read_text():
        pytest.skip("this kernel has no seccomp filters")
    # unshare() in a fresh single-threaded interpreter, as the sandbox's own is (pytest's has threads)
    probe = ("import importlib.util as u, sys\ns = u.spec_from_file_location('k', sys.argv[1])\n"
             "k = u.module_from_spec(s)\ns.loader.exec_module(k)\nk.unshare(k.SANDBOX_NAMESPACES)")
    kernel_file = ROOT / "agentops" / "data" / "_sandbox_kernel.py"
    if subprocess.run([sys.executable, "-I", "-c", probe, kernel_file], capture_output=True).returncode != 0:
        pytest.skip("this kernel refuses user, network, PID and mount namespaces to this user")


def with_name(token: str) -> list[int]:
    """Pids of live processes whose name (comm) is `token`."""
    pids = []
    for comm in glob.glob("/proc/[0-9]*/comm"):
        try:
            if Path(comm).read_text().strip() == token:
                pids.append(int(comm.split("/")[2]))
        except (OSError, ValueError):
            continue
    return pids


def harness(job: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "tests.sandbox_harness"], input=json.dumps(job), text=True,
                          capture_output=True, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- what the code gets --------------------------------------------------------------------------------------------


def test_sandboxed_code_gets_the_dataset_and_returns_the_right_table(sales: Dataset, sales_frame: pd.DataFrame) -> None:
    code = ("totals = df.groupby('region')['revenue'].sum().sort_values()\n"
            "via_sql = execute_sql_query('SELECT COUNT(*) AS n FROM sales')\n"
            "result = {'type': 'dataframe', 'value': totals}")
    out = run_sandboxed(code, sales, limits=QUICK)
    expected = sales_frame.groupby("region")["revenue"].sum().sort_values()
    assert out.kind == "dataframe" and out.columns == ["region", "revenue"]
    assert [r["region"] for r in out.records()] == list(expected.index)
    assert [r["revenue"] for r in out.records()] == pytest.approx(list(expected.values))
    assert out.sql == ["SELECT COUNT(*) AS n FROM sales"]


def test_every_kernel_layer_is_in_force_where_the_kernel_has_them(kernel_has_every_layer: None, sales: Dataset,
                                                                  sales_frame: pd.DataFrame) -> None:
    out = run_sandboxed("result = {'type': 'number', 'value': len(df)}", sales, limits=QUICK)
    assert out.kernel_sandbox == EVERY_LAYER
    assert out.value == len(sales_frame)


def test_sandboxed_code_cannot_read_environment_secrets(sales: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_TEST_SECRET", "s3cret-value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-not-leak")
    code = "import os\nresult = {'type': 'string', 'value': repr(sorted(os.environ.items()))}"
    out = run_sandboxed(code, sales, limits=QUICK)
    assert "s3cret-value" not in out.value and "sk-test-should-not-leak" not in out.value
    assert "AGENTOPS" not in out.value and "OPENAI" not in out.value and "PATH" not in out.value


def test_sandboxed_code_cannot_run_forever(sales: Dataset) -> None:
    with pytest.raises(SandboxError, match="longer than 2 s"):
        run_sandboxed("while True:\n    pass", sales, limits=SandboxLimits(wall_seconds=2))


def test_sandboxed_code_is_held_to_its_cpu_and_memory_limits(sales: Dataset) -> None:
    with pytest.raises(SandboxError, match="more than 1 s of CPU"):
        run_sandboxed("x = 0\nwhile True:\n    x += 1", sales, limits=SandboxLimits(wall_seconds=30, cpu_seconds=1))
    with pytest.raises(SandboxError, match="out of memory"):
        run_sandboxed("hog = bytearray(3 * 1024**3)\nresult = {'type': 'number', 'value': len(hog)}", sales,
                      limits=SandboxLimits(wall_seconds=30, memory_bytes=1024**3))


def test_a_dataset_the_sandbox_user_cannot_read_is_one_clear_line(kernel_has_every_layer: None,
                                                                  tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    shutil.copyfile(ROOT / "data" / "sales.csv", tmp_path / "data" / "sales.csv")
    (tmp_path / "data" / "sales.csv").chmod(0o600 if os.geteuid() == 0 else 0o000)
    with pytest.raises(SandboxError, match=r"^the generated code was not run: .* cannot read .*sales.csv; make the "
                                           r"file readable by others \(chmod o\+r\)$"):
        run_sandboxed("result = {'type': 'number', 'value': len(df)}", resolve_dataset("sales", tmp_path),
                      limits=QUICK)


# -- the in-process layer: refusals that name what was refused ------------------------------------------------------


def test_the_audit_hook_refuses_reading_another_process_environment(sales: Dataset) -> None:
    code = f"result = {{'type': 'string', 'value': open('/proc/{os.getpid()}/environ', 'rb').read()}}"
    with pytest.raises(SandboxError, match="refused reading /proc/"):
        run_sandboxed(code, sales, limits=QUICK)


def test_sandboxed_code_cannot_read_files_outside_its_data(sales: Dataset, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the-launch-codes")
    with pytest.raises(SandboxError, match=f"refused reading {secret}") as caught:
        run_sandboxed(f"result = {{'type': 'string', 'value': open({str(secret)!r}).read()}}", sales, limits=QUICK)
    assert "the-launch-codes" not in str(caught.value)
    swallowed = ("try:\n    leaked = open('/etc/passwd').read()\nexcept PermissionError:\n    leaked = ''\n"
                 "result = {'type': 'string', 'value': leaked}")
    out = run_sandboxed(swallowed, sales, limits=QUICK)
    assert out.value == "" and out.refusals == ["reading /etc/passwd (outside the dataset and scratch directory)"]


def test_sandboxed_code_cannot_write_outside_its_scratch_space(sales: Dataset, tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    code = (f"try:\n    open({str(target)!r}, 'w').write('x')\nexcept PermissionError:\n    pass\n"
            "open('note.txt', 'w').write('ok')\nresult = {'type': 'string', 'value': open('note.txt').read()}")
    out = run_sandboxed(code, sales, limits=QUICK)
    assert not target.exists()
    assert out.refusals == [f"writing {target} (only the scratch directory is writable)"]
    assert out.value == "ok", "the scratch directory is writable"


def test_sandboxed_code_cannot_spawn_a_process(sales: Dataset) -> None:
    attempts = ["subprocess.run(['id'])", "os.system('id')", "os.execv('/bin/sh', ['sh', '-c', 'id'])",
                "os.fork()"]
    code = "import os, subprocess\nran = []\n" + "".join(
        f"try:\n    {call}\n    ran.append({call!r})\nexcept PermissionError:\n    pass\n" for call in attempts)
    code += "result = {'type': 'string', 'value': repr(ran)}"
    out = run_sandboxed(code, sales, limits=QUICK)
    assert out.value == "[]"
    assert [r.split(" ")[0] for r in out.refusals] == ["subprocess.Popen", "os.system", "os.exec", "os.fork"]


def test_renamed_imports_and_private_spawners_are_refused(sales: Dataset) -> None:
    dynload = Path(glob.glob(f"{sys.base_prefix}/lib/python3*/lib-dynload/_posixsubprocess*.so")[0]).parent
    attempts = {
        "renamed": f"importlib.util.module_from_spec(importlib.util.spec_from_file_location("
                   f"'innocent._posixsubprocess', {str(next(dynload.glob('_posixsubprocess*.so')))!r}))",
        "by file": f"importlib.util.module_from_spec(importlib.util.spec_from_file_location("
                   f"'innocent', {str(next(dynload.glob('_socket*.so')))!r}))",
        "built name": "__import__('_posix' + 'subprocess')",
        "subinterpreter": "__import__('_xxsub' + 'interpreters').create()",
        "test C API": "importlib.import_module('_testcapi')",
        "fork_exec": "subprocess._fork_exec(*[None] * 23)",
        "posixsubprocess": "subprocess._posixsubprocess.fork_exec(*[None] * 23)",
    }
    code = "import importlib, importlib.util, subprocess\nran = []\n" + "".join(
        f"try:\n    {call}\n    ran.append({name!r})\nexcept (PermissionError, TypeError, AttributeError):\n    pass\n"
        for name, call in attempts.items())
    code += "result = {'type': 'string', 'value': repr(ran)}"
    out = run_sandboxed(code, sales, limits=QUICK)
    assert out.value == "[]"
    assert [r.split(" (")[0] for r in out.refusals] == [
        "import of innocent._posixsubprocess", "import of innocent", "import of _posixsubprocess",
        "import of _xxsubinterpreters", "import of _testcapi"]


def test_denied_modules_are_recognised_under_any_name() -> None:
    assert denied_module("x.y._ctypes") and denied_module("urllib.request.sub") and denied_module("_interpreters")
    assert denied_module("anything", "/usr/lib/python3.11/lib-dynload/_socket.cpython-311-x86_64-linux-gnu.so")
    assert not denied_module("pandas.io.formats.style") and not denied_module("urllib.parse")
    assert not denied_module("numpy", "/venv/lib/python3.11/site-packages/numpy/__init__.py")


def test_c_extensions_cannot_reach_files_either(sales: Dataset, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("token\nthe-launch-codes\n")
    via_duckdb = f"result = {{'type': 'dataframe', 'value': execute_sql_query(\"SELECT * FROM '{secret}'\")}}"
    with pytest.raises(SandboxError, match="disabled by configuration"):
        run_sandboxed(via_duckdb, sales, limits=QUICK)
    via_arrow = ("from pandas.core.arrays.arrow.array import pa\n"
                 f"result = {{'type': 'string', 'value': pa.OSFile({str(secret)!r}).read()}}")
    with pytest.raises(SandboxError, match="cannot import name 'pa'") as caught:
        run_sandboxed(via_arrow, sales, limits=QUICK)
    assert "the-launch-codes" not in str(caught.value)
    with pytest.raises(SandboxError, match="refused import of pyarrow"):
        run_sandboxed("import pyarrow.fs\nresult = {'type': 'string', 'value': 'reached'}", sales, limits=QUICK)


# -- what must be in force, and the refusal when it is not ----------------------------------------------------------


def test_the_code_is_refused_unless_each_guarantee_rests_on_a_kernel_mechanism() -> None:
    every = {"landlock": "landlock abi 6", "namespaces": "namespaces user pid net mount ipc uts",
             "seccomp": "seccomp"}
    no_ns = {**every, "namespaces": "unavailable: unshare: Operation not permitted"}
    assert kernel_refusal(every, require_landlock=True, require_isolation=True) is None
    assert kernel_refusal(no_ns, require_landlock=True, require_isolation=True) is None, "seccomp and Landlock hold"
    no_landlock = {**every, "landlock": "unavailable: the kernel has no Landlock"}
    refusal = kernel_refusal(no_landlock, require_landlock=True, require_isolation=True)
    assert refusal is not None and "AGENTOPS_SANDBOX_REQUIRE_LANDLOCK=false" in refusal
    assert kernel_refusal(no_landlock, require_landlock=False, require_isolation=True) is None, "the mount view holds"
    bare = {**no_ns, "seccomp": "unavailable: seccomp: Operation not permitted"}
    refusal = kernel_refusal(bare, require_landlock=True, require_isolation=True)
    assert refusal is not None and "from the network and from starting processes" in refusal
    assert "unshare: Operation not permitted" in refusal and "AGENTOPS_SANDBOX_REQUIRE_ISOLATION=false" in refusal
    files = kernel_refusal({**no_ns, "landlock": no_landlock["landlock"]}, require_landlock=False,
                           require_isolation=True)
    assert files is not None and "from files outside the dataset" in files and "network" not in files
    assert kernel_refusal(bare, require_landlock=True, require_isolation=False) is None


@pytest.mark.parametrize(("without", "limits", "expected"), [
    (["namespaces", "seccomp"], {}, "cut model-written code off from the network and from starting processes"),
    (["landlock"], {}, "Landlock is required but unavailable: the kernel has no Landlock"),
    (["landlock", "namespaces"], {"require_landlock": False}, "cut model-written code off from files outside"),
], ids=["no namespaces nor seccomp", "no landlock", "no landlock nor namespaces"])
def test_on_a_kernel_without_the_layers_the_code_is_not_run(kernel_has_every_layer: None, sales: Dataset,
                                                            tmp_path: Path, without: list[str], limits: dict[str, Any],
                                                            expected: str) -> None:
    marker = tmp_path / "ran.txt"
    code = f"open({str(marker)!r}, 'w').write('ran')\nresult = {{'type': 'string', 'value': 'ran'}}"
    got = harness({"without": without, "dataset": str(sales.path), "code": code,
                   "limits": {**limits, "wall_seconds": 30, "in_process_checks": False}})
    assert got["error"].startswith("the generated code was not run: ") and expected in got["error"]
    assert "\n" not in got["error"] and not marker.exists()


# -- every way out, stopped by the kernel ---------------------------------------------------------------------------

ESCAPES = r'''
import ctypes, json, os, socket, sqlite3, time
libc = ctypes.CDLL(None, use_errno=True)
found = {}

def named():
    libc.prctl(15, TOKEN.encode(), 0, 0, 0)

def udp():
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"escaped", ("127.0.0.1", UDP_PORT))
    return "sent"

def tcp():
    socket.create_connection(("127.0.0.1", TCP_PORT), timeout=5).sendall(b"escaped")
    return "connected"

def subinterpreter():
    import _xxsubinterpreters as interpreters
    interpreters.run_string(interpreters.create(), "import ctypes, socket\nctypes.CDLL(None).getpid()\n"
        f"socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'escaped', ('127.0.0.1', {UDP_PORT}))")
    return "sent from a subinterpreter"

def environ():
    seen = []
    for pid in ["PARENT_PID", *os.listdir("/proc")]:
        try:
            seen.append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
        except OSError:
            continue
    return seen

def database():
    return open(DB_PATH, "rb").read().decode(errors="replace")

def database_sql():
    return sqlite3.connect(f"file:{DB_PATH}?mode=ro", uri=True).execute("SELECT value FROM secrets").fetchall()

def outside_file():
    return open(SECRET_PATH).read()

def write_outside():
    open(WRITE_PATH, "w").write("escaped")
    return "written"

def setsid_grandchild():
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork() == 0:
            named()
            os.write(write, str(os.getpid()).encode())
            time.sleep(600)
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write)
    grandchild = int(os.read(read, 32))
    os.kill(grandchild, 0)
    return grandchild

def fork_bomb():
    forked = 0
    try:
        while forked < 100:
            if os.fork() == 0:
                named()
                time.sleep(600)
                os._exit(0)
            forked += 1
    except OSError as exc:
        return {"forked": forked, "stopped": str(exc)}
    return {"forked": forked, "stopped": None}

for attempt in [udp, tcp, subinterpreter, environ, database, database_sql, outside_file, write_outside,
                setsid_grandchild, fork_bomb]:
    try:
        found[attempt.__name__] = {"got": attempt()}
    except BaseException as exc:
        found[attempt.__name__] = {"refused": f"{type(exc).__name__}: {exc}"}
result = {"type": "string", "value": json.dumps(found)}
'''
MODES = {"every layer": [], "no namespaces": ["namespaces"], "no seccomp": ["seccomp"], "no landlock": ["landlock"]}


@dataclass
class Escapes:
    """What the generated code got, and what reached the outside, on a kernel without `without`."""

    without: list[str]
    found: dict[str, dict[str, Any]]
    kernel_sandbox: str
    secrets: list[str]
    write_path: Path
    udp_received: bytes | None = None
    tcp_accepted: bool = False
    left_running: list[int] = field(default_factory=list)


@pytest.fixture(scope="module", params=list(MODES))
def escapes(request: pytest.FixtureRequest, kernel_has_every_layer: None, sales: Dataset,
            tmp_path_factory: pytest.TempPathFactory) -> Escapes:
    """Listeners on loopback, a database and a file with secrets, a secret in the parent's environment; then the
    escapes, run once per kernel mode by generated code in the real sandbox, without the audit hook."""
    without = MODES[request.param]
    tmp = tmp_path_factory.mktemp("escapes")
    secrets = [f"db-{uuid.uuid4().hex}", f"file-{uuid.uuid4().hex}", f"env-{uuid.uuid4().hex}"]
    with sqlite3.connect(tmp / "agentops.db") as db:
        db.execute("CREATE TABLE secrets (value TEXT)")
        db.execute("INSERT INTO secrets VALUES (?)", (secrets[0],))
    db.close()
    (sales.path.parent.parent / "secret.txt").write_text(secrets[1])
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.create_server(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # the listeners do hear what reaches them
        probe.sendto(b"probe", udp.getsockname())
    assert udp.recv(100) == b"probe"
    socket.create_connection(tcp.getsockname()).close()
    tcp.accept()[0].close()
    token = f"sbx{uuid.uuid4().hex[:10]}"
    prelude = (f"UDP_PORT = {udp.getsockname()[1]}\nTCP_PORT = {tcp.getsockname()[1]}\nTOKEN = {token!r}\n"
               f"DB_PATH = {str(tmp / 'agentops.db')!r}\nWRITE_PATH = {str(tmp / 'escaped.txt')!r}\n"
               f"SECRET_PATH = {str(sales.path.parent.parent / 'secret.txt')!r}\n")
    limits = {"wall_seconds": 60, "in_process_checks": False, "require_landlock": "landlock" not in without}
    try:
        got = harness({"without": without, "dataset": str(sales.path), "code": prelude + ESCAPES, "limits": limits},
                      env={"AGENTOPS_TEST_SECRET": secrets[2]})
        assert "error" not in got, got
        result = Escapes(without, json.loads(got["value"]), got["kernel_sandbox"], secrets, tmp / "escaped.txt")
        udp.settimeout(0.5)
        tcp.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            result.udp_received = udp.recv(100)
        try:
            tcp.accept()[0].close()
            result.tcp_accepted = True
        except TimeoutError:
            pass
        result.left_running = with_name(token)
    finally:
        udp.close()
        tcp.close()
        for pid in with_name(token):  # only if the test is about to fail: leave nothing of ours behind
            os.kill(pid, signal.SIGKILL)
    return result


def _seccomp(escapes: Escapes) -> bool:
    return "seccomp" not in escapes.without


def test_each_kernel_mode_runs_with_the_layers_it_has(escapes: Escapes) -> None:
    layers = dict(zip(["landlock", "namespaces", "seccomp"], escapes.kernel_sandbox.split("; "), strict=True))
    for name, status in layers.items():
        assert status.startswith(f"{name} unavailable") == (name in escapes.without), escapes.kernel_sandbox


def test_udp_datagrams_do_not_leave_the_sandbox(escapes: Escapes) -> None:
    assert "refused" in escapes.found["udp"], escapes.found["udp"]
    assert escapes.udp_received is None


def test_tcp_connections_do_not_leave_the_sandbox(escapes: Escapes) -> None:
    assert "refused" in escapes.found["tcp"], escapes.found["tcp"]
    assert not escapes.tcp_accepted


def test_a_subinterpreter_with_ctypes_and_sockets_gets_nothing_out(escapes: Escapes) -> None:
    assert "refused" in escapes.found["subinterpreter"]
    assert escapes.udp_received is None and not escapes.tcp_accepted


def test_no_process_environment_with_a_secret_can_be_read(escapes: Escapes) -> None:
    assert escapes.secrets[2] not in json.dumps(escapes.found)


def test_the_database_file_cannot_be_read(escapes: Escapes) -> None:
    assert "refused" in escapes.found["database"] and "refused" in escapes.found["database_sql"]
    assert escapes.secrets[0] not in json.dumps(escapes.found)


def test_files_outside_the_dataset_cannot_be_read_or_written(escapes: Escapes) -> None:
    assert "refused" in escapes.found["outside_file"] and escapes.secrets[1] not in json.dumps(escapes.found)
    assert "refused" in escapes.found["write_outside"] and not escapes.write_path.exists()


def test_a_setsid_grandchild_does_not_outlive_the_question(escapes: Escapes) -> None:
    if _seccomp(escapes):
        assert escapes.found["setsid_grandchild"]["refused"] == "PermissionError: [Errno 1] Operation not permitted"
    else:
        assert isinstance(escapes.found["setsid_grandchild"]["got"], int), "the grandchild ran (and was alive)"
    assert escapes.left_running == []


def test_a_fork_bomb_is_bounded_and_does_not_outlive_the_question(escapes: Escapes) -> None:
    bomb = escapes.found["fork_bomb"]["got"]
    if _seccomp(escapes):
        assert bomb == {"forked": 0, "stopped": "[Errno 1] Operation not permitted"}
    else:
        assert 0 < bomb["forked"] < QUICK.processes and "Resource temporarily unavailable" in bomb["stopped"]
    assert escapes.left_running == []


def test_without_namespaces_the_supervisor_still_reaps_a_setsid_grandchild(kernel_has_every_layer: None,
                                                                           sales: Dataset) -> None:
    token = f"sbx{uuid.uuid4().hex[:10]}"
    code = f"TOKEN = {token!r}\n" + ESCAPES.split("for attempt in")[0] + (
        "result = {'type': 'number', 'value': setsid_grandchild()}")
    got = harness({"without": ["namespaces", "seccomp"], "dataset": str(sales.path), "code": code,
                   "limits": {"wall_seconds": 60, "in_process_checks": False, "require_isolation": False}})
    try:
        assert "namespaces unavailable" in got["kernel_sandbox"] and "seccomp unavailable" in got["kernel_sandbox"]
        assert isinstance(got["value"], int), "the grandchild ran, in this PID namespace"
        assert with_name(token) == []
    finally:
        for pid in with_name(token):
            os.kill(pid, signal.SIGKILL)


def test_the_parent_never_follows_what_the_code_planted_in_its_scratch_dir(kernel_has_every_layer: None,
                                                                           sales: Dataset, tmp_path: Path) -> None:
    secret = f"planted-{uuid.uuid4().hex}"
    host_file = tmp_path / "host.json"
    host_file.write_text(json.dumps({"ok": False, "error": secret}))
    host_file.chmod(0o600)
    code = (f"import os\nos.symlink({str(host_file)!r}, 'outcome.json')\nos.mkfifo('chart.png')\n"
            "os._exit(0)")  # no Landlock and no audit hook: only the parent's own care stands in the way
    got = harness({"without": ["landlock"], "dataset": str(sales.path), "code": code,
                   "limits": {"wall_seconds": 30, "in_process_checks": False, "require_landlock": False}})
    assert got["error"].startswith("the generated code stopped without a result") and secret not in got["error"]


# -- the question ends, however it ends ------------------------------------------------------------------------------

NAMED_SLEEPER = ("import ctypes, time\nctypes.CDLL(None).prctl(15, TOKEN.encode(), 0, 0, 0)\ntime.sleep(600)\n"
                 "result = {'type': 'string', 'value': 'woke'}")


def wait_for(predicate: Any, what: str, deadline_seconds: float = 60.0) -> Any:
    """Poll until `predicate()` is truthy (a generous deadline, for a loaded machine; not a timing claim)."""
    import time

    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def supervisors_of(parent: int) -> list[int]:
    pids = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            args = Path(cmdline).read_bytes().split(b"\0")
            stat = Path(cmdline).with_name("stat").read_text()
        except OSError:
            continue
        if any(a.endswith(b"_sandbox_child.py") for a in args) and int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            pids.append(int(cmdline.split("/")[2]))
    return pids


def test_killing_the_supervisor_takes_the_whole_sandbox_with_it(kernel_has_every_layer: None,
                                                                 sales: Dataset) -> None:
    from concurrent.futures import ThreadPoolExecutor

    token = f"sbx{uuid.uuid4().hex[:10]}"
    limits = SandboxLimits(wall_seconds=120, in_process_checks=False)
    with ThreadPoolExecutor(1) as pool:
        asked = pool.submit(run_sandboxed, f"TOKEN = {token!r}\n" + NAMED_SLEEPER, sales, limits=limits)
        try:
            wait_for(lambda: with_name(token), "the generated code to start")
            (supervisor,) = supervisors_of(os.getpid())
            os.kill(supervisor, signal.SIGKILL)
            with pytest.raises(SandboxError, match="was killed"):
                asked.result(timeout=120)
            wait_for(lambda: not with_name(token), "the sandboxed code to die with its supervisor")
        finally:
            for pid in with_name(token):
                os.kill(pid, signal.SIGKILL)


def test_a_sandbox_whose_parent_died_still_ends_at_its_wall_clock_limit(kernel_has_every_layer: None,
                                                                        sales: Dataset) -> None:
    token = f"sbx{uuid.uuid4().hex[:10]}"
    job = {"dataset": str(sales.path), "code": f"TOKEN = {token!r}\n" + NAMED_SLEEPER,
           "limits": {"wall_seconds": 8, "in_process_checks": False}}
    parent = subprocess.Popen([sys.executable, "-m", "tests.sandbox_harness"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, text=True)
    try:
        assert parent.stdin is not None
        parent.stdin.write(json.dumps(job))
        parent.stdin.close()
        wait_for(lambda: with_name(token), "the generated code to start")
        parent.kill()
        parent.wait()
        wait_for(lambda: not with_name(token), "the orphaned sandbox to end at its wall-clock limit")
    finally:
        parent.kill()
        for pid in with_name(token):
            os.kill(pid, signal.SIGKILL)


def test_sandboxes_running_at_once_each_get_their_own_limits_and_answer(kernel_has_every_layer: None,
                                                                        sales: Dataset,
                                                                        sales_frame: pd.DataFrame) -> None:
    from concurrent.futures import ThreadPoolExecutor

    code = ("import threading, time\nstarted = 0\ntry:\n    while started < 100:\n"
            "        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()\n        started += 1\n"
            "except RuntimeError:\n    pass\nresult = {'type': 'number', 'value': started * 100000 + len(df)}")
    with ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(lambda _: run_sandboxed(code, sales, limits=SandboxLimits(wall_seconds=120,
                                                                                       processes=16)), range(3)))
    for out in outs:
        threads, rows = divmod(out.value, 100000)
        assert rows == len(sales_frame) and 0 < threads < 16, "each sandbox counts only its own threads"
        assert out.kernel_sandbox == EVERY_LAYER
