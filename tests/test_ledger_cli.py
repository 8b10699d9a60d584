"""`agentops audit verify|checkpoint|export --pack` as an operator and an auditor use them: exit 1 names what is
missing or rewritten, exit 2 is bad input, and an evidence pack is checked offline with the database gone."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from agentops.core.ledger import Event

FLOWS = '''
from agentops import flow, task


@task
def pick(n: int) -> dict:
    return {"replicas": n}


@flow
def picker(n: int = 3) -> dict:
    return pick(n)
'''


def agentops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentops.cli", *args], capture_output=True, text=True,
                          env=env or os.environ.copy(), timeout=600)


@pytest.fixture
def ledger_project(project: Path) -> Path:
    (project / "flows" / "picker.py").write_text(FLOWS)
    return project


def tamper(sql: str, **params: object) -> None:
    from agentops.db import open_store

    with open_store().engine.begin() as conn:
        conn.execute(text(sql), params)


def test_verify_exits_1_naming_a_cut_tail_and_2_on_bad_input(ledger_project: Path) -> None:
    assert agentops("run", "picker", "-p", "n=4", "--queue").returncode == 0
    assert agentops("worker", "--burst").returncode == 0
    signed = ledger_project / ".agentops" / "checkpoints" / "checkpoints.jsonl"
    assert json.loads(signed.read_text().splitlines()[0])["seq"] >= 1  # its housekeeping signed the head
    assert agentops("audit", "checkpoint").returncode == 0
    ok = json.loads(agentops("audit", "verify", "--json").stdout)
    assert ok["ok"] and ok["values_checked"] == 3 and ok["uncovered"] == 0 and ok["count"] > 4

    tamper("DELETE FROM ledger WHERE seq > :s", s=ok["count"] - 2)
    broken = agentops("audit", "verify")
    assert broken.returncode == 1 and f"BROKEN at event seq={ok['count'] - 1}: events" in broken.stdout
    report = json.loads(agentops("audit", "verify", "--json").stdout)
    assert report["missing"] == [ok["count"] - 1, ok["count"]] and not report["ok"]

    for args, message in [(("--public-key", "nowhere.pem"),
                           "error: cannot read the public key nowhere.pem: No such file or directory"),
                          (("--pack", "nowhere"), "error: --pack nowhere: no such directory")]:
        bad = agentops("audit", "verify", *args)
        assert bad.returncode == 2 and bad.stderr.strip() == message and bad.stdout == ""


def test_checkpoint_says_when_there_is_nothing_new(ledger_project: Path) -> None:
    from agentops.db import open_store

    open_store().append_events([Event(actor="user:ada", action="test.event")])
    first = json.loads(agentops("audit", "checkpoint", "--json").stdout)
    again = agentops("audit", "checkpoint")
    assert first["signed"] and first["seq"] == 1 and "nothing new to sign" in again.stdout


def fix_manifest(pack: Path, **changes: object) -> None:
    """The careful forger: make MANIFEST.json agree with the files again."""
    manifest = json.loads((pack / "MANIFEST.json").read_text())
    manifest["files"] = {name: hashlib.sha256((pack / name).read_bytes()).hexdigest() for name in manifest["files"]}
    (pack / "MANIFEST.json").write_text(json.dumps({**manifest, **changes}))


def test_an_evidence_pack_verifies_offline_with_the_database_gone(ledger_project: Path, tmp_path: Path,
                                                                   db_url: str) -> None:
    for n in (2, 5):
        assert agentops("run", "picker", "-p", f"n={n}").returncode == 0
    exported = agentops("audit", "export", "--pack", str(tmp_path / "pack"))
    assert exported.returncode == 0, exported.stderr
    assert "evidence pack" in exported.stdout and "signed checkpoints" in exported.stdout
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == [
        "MANIFEST.json", "README.md", "checkpoints.jsonl", "events.jsonl", "public_key.pem"]

    # another machine: a copy of the pack, the public key the auditor holds, no database, no project key
    trusted_key = tmp_path / "trusted.pem"
    shutil.copy(tmp_path / "pack" / "public_key.pem", trusted_key)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "pack", elsewhere / "pack")
    shutil.rmtree(ledger_project / ".agentops")
    for db_file in tmp_path.glob("agentops.db*"):
        db_file.unlink()
    (elsewhere / "pyproject.toml").write_text('[project]\nname = "auditor"\n')
    gone = ("postgresql+psycopg://nobody@127.0.0.1:1/gone" if db_url.startswith("postgresql")
            else f"sqlite:///{tmp_path / 'no-such-dir' / 'gone.db'}")
    env = {**os.environ, "AGENTOPS_DATABASE_URL": gone, "AGENTOPS_PROJECT_DIR": str(elsewhere)}
    pack = str(elsewhere / "pack")

    def verify(*extra: str) -> subprocess.CompletedProcess[str]:
        return agentops("audit", "verify", "--pack", pack, *extra, env=env)

    checked = verify("--public-key", str(trusted_key), "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] and report["uncovered"] == 0 and report["count"] == report["latest_checkpoint"]["seq"] > 8
    unpinned = verify()
    assert unpinned.returncode == 0 and "pass --public-key to pin" in unpinned.stdout
    assert not (elsewhere / ".agentops").exists() and not (tmp_path / "no-such-dir").exists()

    events, manifest = Path(pack, "events.jsonl"), Path(pack, "MANIFEST.json")
    original, original_manifest = events.read_text(), manifest.read_text()
    lines = original.splitlines(keepends=True)
    edited = json.loads(lines[3])
    events.write_text("".join([*lines[:3], json.dumps({**edited, "actor": "user:mallory"}) + "\n", *lines[4:]]))
    assert "MANIFEST.json" in verify("--public-key", str(trusted_key)).stdout  # the manifest's digests first
    fix_manifest(Path(pack))
    broken = verify("--public-key", str(trusted_key))
    assert broken.returncode == 1 and f"BROKEN at event seq={edited['seq']}: contents" in broken.stdout

    last = json.loads(lines[-4])
    events.write_text("".join(lines[:-3]))
    fix_manifest(Path(pack), high_water_mark={"seq": last["seq"], "hash": last["hash"]})
    cut = verify("--public-key", str(trusted_key), "--json")
    assert cut.returncode == 1 and json.loads(cut.stdout)["missing"] == [last["seq"] + 1, last["seq"] + 3]

    # a whole new pack from a forger's key verifies against its own key, never against the pinned one
    events.write_text(original)
    manifest.write_text(original_manifest)
    forger = tmp_path / "forger.pem"
    from agentops.core import checkpoints

    key = checkpoints.create_private_key(forger)
    resigned = [checkpoints.sign(key, seq=c.seq, hash=c.hash, count=c.count, ts=c.ts)
                for c in checkpoints.read_lines(Path(pack, "checkpoints.jsonl"))[0]]
    Path(pack, "checkpoints.jsonl").write_text("".join(c.line() + "\n" for c in resigned))
    Path(pack, "public_key.pem").write_bytes(checkpoints.public_pem(key.public_key()))
    fix_manifest(Path(pack))
    assert verify().returncode == 0
    pinned = verify("--public-key", str(trusted_key))
    assert pinned.returncode == 1 and "not by the key given with --public-key" in pinned.stdout


def test_export_pack_refuses_a_used_directory_and_leaves_nothing_behind(ledger_project: Path,
                                                                         tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    refused = agentops("audit", "export", "--pack", str(used))
    assert refused.returncode == 2 and refused.stderr.startswith("error: --pack ") and "not an empty" in refused.stderr
    mixed = agentops("audit", "export", "--pack", str(tmp_path / "p"), "--since", "2026-01-01")
    assert mixed.returncode == 2 and "--pack holds the whole ledger" in mixed.stderr
    assert not (tmp_path / "p").exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]
    assert [p.name for p in used.iterdir()] == ["notes.txt"]


def test_init_creates_a_private_key_and_signs_the_head(sqlite_project: Path) -> None:
    assert agentops("users", "add", "ada", "--role", "admin", "--no-password").returncode == 0
    done = agentops("init")
    assert done.returncode == 0, done.stderr
    key = sqlite_project / ".agentops" / "ledger-signing-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600 and "ledger checkpoint: seq " in " ".join(done.stdout.split())
    again = agentops("init")
    assert "the head is signed already" in " ".join(again.stdout.split())
    assert agentops("audit", "verify").returncode == 0
