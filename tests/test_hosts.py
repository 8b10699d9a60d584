"""Three hosts in network namespaces: PostgreSQL and Redis on one, a Celery worker on each of two others. One
worker host is cut off mid-run: the run finishes on the other, and the cut-off worker, back on the network, is
fenced (its write under the old epoch changes nothing and is recorded as a lost lease).

Traffic goes only to the namespaces' own addresses (10.231.N.x, inside namespaces the test creates) or to
loopback inside them; the namespaces are deleted afterwards, whatever happened.
"""

from __future__ import annotations

import collections
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.netns_hosts import Hosts, unavailable
from tests.pg_server import find_bin_dir
from tests.test_scale_out import FLOWS

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"hosts in network namespaces: {REASON}")

STALE_AFTER = 2.0
PG_PORT, REDIS_PORT = 5432, 6379


class Site:
    """The hosts, the servers on `db` and the environment every agentops process gets."""

    def __init__(self, hosts: Hosts, root: Path, marks: Path, pg_dir: Path) -> None:
        self.hosts, self.root, self.marks, self.pg_dir = hosts, root, marks, pg_dir
        db = hosts.ip("db")
        self.env = {**os.environ, "AGENTOPS_PROJECT_DIR": str(root),
                    "AGENTOPS_DATABASE_URL": f"postgresql+psycopg://postgres@{db}:{PG_PORT}/agentops",
                    "AGENTOPS_BROKER_URL": f"redis://{db}:{REDIS_PORT}/0",
                    "AGENTOPS_STALE_AFTER_SECONDS": str(STALE_AFTER), "AGENTOPS_HEARTBEAT_SECONDS": "0.2",
                    "SCALE_MARKS": str(marks)}
        for name in [n for n in self.env if n.startswith("OTEL_")]:
            del self.env[name]

    def psql(self, sql: str) -> list[str]:
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        done = self.hosts.run("db", str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres",
                              "-d", "agentops", "-At", "-c", sql)
        return [line for line in done.stdout.splitlines() if line]

    def agentops(self, host: str, *args: str) -> str:
        return self.hosts.run(host, sys.executable, "-m", "agentops.cli", *args, env=self.env).stdout

    def start(self, host: str, *args: str) -> object:
        return self.hosts.start(host, sys.executable, "-m", "agentops.cli", *args, env=self.env,
                                log=self.marks / f"{host}-{args[0]}.log", cwd=self.root)

    def state(self, run_id: str) -> str:
        [state] = self.psql(f"SELECT state FROM flow_runs WHERE id = '{run_id}'")
        return state

    def events(self, run_id: str, action: str) -> list[dict]:
        rows = self.psql(f"SELECT payload FROM ledger WHERE run_id = '{run_id}' AND action = '{action}' ORDER BY seq")
        return [json.loads(r) for r in rows]

    def lines(self) -> list[str]:
        path = self.marks / "log"
        return path.read_text().splitlines() if path.exists() else []

    def wait(self, what: Callable[[], bool], message: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if time.monotonic() > deadline:
                logs = "\n".join(f"{p.name}:\n{p.read_text(errors='replace')[-2500:]}"
                                 for p in self.marks.glob("*.log"))
                ledger = "\n".join(self.psql("SELECT actor || ' ' || action || ' ' || payload FROM ledger "
                                              "ORDER BY seq"))
                raise AssertionError(f"{message} within {timeout}s; ledger:\n{ledger}\nlogs:\n{logs}")
            time.sleep(0.2)


def _start_servers(hosts: Hosts, pg_dir: Path) -> None:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed")
    user = pwd.getpwnam("postgres")
    os.chown(pg_dir, user.pw_uid, user.pw_gid)
    as_pg = ["runuser", "-u", "postgres", "--"]
    hosts.run("db", *as_pg, str(bin_dir / "initdb"), "-D", str(pg_dir / "data"), "-U", "postgres", "--auth=trust",
              "-E", "UTF8", "--no-sync")
    (pg_dir / "data" / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n"
                                                 f"host all all 10.231.{hosts.subnet}.0/24 trust\n")
    hosts.start("db", *as_pg, str(bin_dir / "postgres"), "-D", str(pg_dir / "data"), "-p", str(PG_PORT),
                "-c", f"listen_addresses=127.0.0.1,{hosts.ip('db')}", "-c", f"unix_socket_directories={pg_dir}",
                "-c", "fsync=off", "-c", "synchronous_commit=off")
    hosts.start("db", "redis-server", "--port", str(REDIS_PORT), "--bind", f"127.0.0.1 {hosts.ip('db')}",
                "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", str(pg_dir))
    deadline = time.monotonic() + 30
    while True:
        ready = hosts.run("db", str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(PG_PORT), check=False)
        pong = hosts.run("db", "redis-cli", "-h", "127.0.0.1", "-p", str(REDIS_PORT), "ping", check=False)
        if ready.returncode == 0 and pong.stdout.strip() == "PONG":
            break
        assert time.monotonic() < deadline, f"servers on db: {ready.stdout} {pong.stdout} {pong.stderr}"
        time.sleep(0.2)
    hosts.run("db", *as_pg, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres",
              "agentops")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    hosts = Hosts(["db", "w1", "w2"])
    pg_dir = Path(tempfile.mkdtemp(prefix="agentops-hosts-pg-"))
    try:
        hosts.create()
        _start_servers(hosts, pg_dir)
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        for worker in ("w1", "w2"):  # the namespaces are wired: a worker host reaches the database host
            hosts.run(worker, str(bin_dir / "pg_isready"), "-h", hosts.ip("db"), "-p", str(PG_PORT), "-t", "10")
        root = tmp_path / "project"
        (root / "flows").mkdir(parents=True)
        (root / "pyproject.toml").write_text('[project]\nname = "hosts-project"\n')
        (root / "flows" / "scale.py").write_text(FLOWS)
        marks = tmp_path / "marks"
        marks.mkdir()
        found = Site(hosts, root, marks, pg_dir)
        found.agentops("db", "init")
        yield found
    finally:
        made = list(hosts.namespaces)
        hosts.close()
        shutil.rmtree(pg_dir, ignore_errors=True)
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ns for ns in made if ns in left], f"namespaces left behind: {left}"


@pytest.mark.timeout(300)  # the namespaces are deleted in a finally, which a pytest-timeout kill would skip
def test_a_worker_host_cut_off_mid_run_loses_the_run_to_the_other_and_is_fenced_when_back(site: Site) -> None:
    site.start("db", "scheduler")  # holds the lease and runs the sweeper
    site.start("w1", "worker", "--celery", "-c", "1")
    (site.marks / "hold-n").write_text("held")
    out = site.agentops("db", "run", "scaled", "-p", "tag=n", "--queue", "--json")
    run_id = json.loads(out)["run_id"]
    site.wait(lambda: "hold n" in site.lines(), "w1 reached the held step")
    [claim] = [e for e in site.events(run_id, "run.state") if e["state"] == "RUNNING"]
    site.start("w2", "worker", "--celery", "-c", "1")
    site.hosts.cut("w1")
    try:
        site.wait(lambda: len([e for e in site.events(run_id, "run.state") if e["state"] == "RUNNING"]) == 2,
                  "the sweeper recovered the cut-off host's run and w2 claimed it")
        site.wait(lambda: site.lines().count("hold n") == 2, "w2 replayed the first step and reached the held one")
    finally:
        site.hosts.reconnect("w1")
    (site.marks / "hold-n").unlink()  # both go on: w2 to the end, w1 to its next write, under its old epoch
    site.wait(lambda: site.state(run_id) == "COMPLETED", "the run completed on w2")
    site.wait(lambda: bool(site.events(run_id, "run.lease_lost")), "w1, back on the network, found its lease gone")
    states = [e["state"] for e in site.events(run_id, "run.state")]
    assert states == ["PENDING", "RUNNING", "CRASHED", "RUNNING", "COMPLETED"], states
    [lost] = site.events(run_id, "run.lease_lost")
    [epoch] = site.psql(f"SELECT epoch FROM flow_runs WHERE id = '{run_id}'")
    assert lost["epoch"] == claim["epoch"] < lost["current_epoch"] == int(epoch), "the cut-off worker held an old epoch"
    actors = dict(row.split("|", 1) for row in site.psql(
        f"SELECT action || '|' || actor FROM ledger WHERE run_id = '{run_id}' "
        "AND action = 'run.lease_lost'"))
    claimed_by = site.psql(f"SELECT actor FROM ledger WHERE run_id = '{run_id}' AND action = 'run.state' "
                           "AND payload LIKE '%\"RUNNING\"%' ORDER BY seq")
    assert len(claimed_by) == 2 and claimed_by[0] != claimed_by[1], "two worker processes claimed it"
    assert actors["run.lease_lost"] == claimed_by[0], "the fenced one is the cut-off host's worker"
    counts = collections.Counter(site.lines())
    assert counts["first n"] == 1, "the completed step ran once"
    assert counts["hold n"] == 2, "both hosts went through the held step"
    effects = [line for line in counts if line.startswith("effect n ")]
    assert len(effects) == 1 and counts[effects[0]] == 1, f"the keyed effect happened once: {effects}"
