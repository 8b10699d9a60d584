"""Evidence packs: the ledger, its signed checkpoints and the public key, checkable offline without the database.

    DIR/events.jsonl       every event, one per line, each column exactly as stored (payload as its JSON text)
    DIR/checkpoints.jsonl  the signed checkpoints, in the checkpoint file's line format
    DIR/public_key.pem     the Ed25519 public key that signed them
    DIR/MANIFEST.json      format, time, counts, the last event and the high-water mark, each file's sha256
    DIR/README.md          what the files are and how to check them, with agentops or by hand

The export signs a checkpoint of the head first, so the whole pack is covered by a signature.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agentops.core import checkpoints
from agentops.core.checkpoints import Checkpoint
from agentops.core.ledger import LedgerRow, VerifyReport, verify_rows
from agentops.db import open_store
from agentops.errors import ConfigError, LedgerError
from agentops.service.audit import audit_checkpoint, checkpoint_from_row, file_checkpoints, signing_key

PACK_FORMAT = "agentops-evidence-pack/1"
EVENT_FIELDS = ("seq", "ts", "actor", "action", "run_id", "step_no", "approval_id", "payload", "policy_hash",
                "prev_hash", "hash")
FILES = ("events.jsonl", "checkpoints.jsonl", "public_key.pem", "README.md")

README = """# agentops evidence pack

Written by `agentops audit export --pack` at {created}. It holds the whole audit ledger ({events} events) and
the {checkpoints} signed checkpoints of its head, so it can be checked on another machine without the database:

    agentops audit verify --pack DIR --public-key KEY.pem

Pass the public key you hold (or compare the fingerprint below with one published elsewhere): the pack's
own `public_key.pem` only shows which key signed it. Key fingerprint (sha256 of the raw Ed25519 key):
{fingerprint}

## Checking it by hand

- `events.jsonl`: one event per line, in `seq` order, with every column as stored. An event's `hash` is the
  sha256 hex of these fields joined by the byte 0x1f, as UTF-8: `prev_hash`, `repr(float(ts))` (Python's
  shortest round-trip form), `actor`, `action`, `run_id`, `step_no` (decimal), `approval_id`, `policy_hash`,
  `payload` (absent values as empty strings). The first event's `prev_hash` is 64 zeros; each later one is
  the previous event's `hash`; `seq` runs 1, 2, 3... without gaps.
- `checkpoints.jsonl`: one signed checkpoint per line, `{{"v","seq","hash","count","ts","key","sig"}}`. `sig`
  is the base64 Ed25519 signature of the bytes `agentops ledger checkpoint v1\\n` followed by the compact,
  sorted-key JSON of the other fields. Each checkpoint must match the event at its `seq` (its `hash`) and
  the number of events up to it (`count`).
- A run's parameters and result and a step's output are bound in through `parameters_digest`,
  `result_digest` and `output_digest` in the payloads (sha256 hex of the stored JSON text; the latest
  event per run or step counts). The values themselves are not in the pack.
- `MANIFEST.json` lists each file's sha256; it is not signed (the checkpoints are).
"""


@dataclass(frozen=True)
class PackSummary:
    directory: Path
    events: int
    checkpoints: int
    key_fingerprint: str
    signed: Checkpoint | None
    """The checkpoint the export signed (None when the head was signed already, or could not be)."""
    not_signed: str | None = None
    """Why the head could not be signed (the chain since the last checkpoint does not verify)."""


def export_pack(directory: Path) -> PackSummary:
    """Write an evidence pack into `directory`, which must not exist or be empty; nothing is left half-written."""
    directory = directory.absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"--pack {directory}: exists and is not an empty directory")
    if not directory.parent.is_dir():
        raise ConfigError(f"--pack {directory}: the directory {directory.parent} does not exist")
    store = open_store()
    unsigned = None
    try:
        signed = audit_checkpoint(store)
    except LedgerError as exc:  # a broken ledger is exported as it is: the pack's check will show the break
        signed, unsigned = None, str(exc)
    public = signing_key().public_key()
    from_file, problem = file_checkpoints()
    if problem:
        raise LedgerError(f"cannot export: {problem}; `agentops audit verify` says more")
    partial = directory.parent / f".{directory.name}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir(mode=0o700)
    try:
        with store.ledger_snapshot() as snap:
            every = from_file + [checkpoint_from_row(row) for row in snap.checkpoints()]
            count, last = _write_events(partial / "events.jsonl", snap.events())
            head = snap.head()
        unique = {(cp.seq, cp.hash, cp.count, cp.ts, cp.key, cp.sig): cp for cp in every}
        ordered = sorted(unique.values(), key=lambda cp: (cp.seq, cp.ts))
        (partial / "checkpoints.jsonl").write_text("".join(cp.line() + "\n" for cp in ordered))
        (partial / "public_key.pem").write_bytes(checkpoints.public_pem(public))
        fingerprint = checkpoints.fingerprint(public)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (partial / "README.md").write_text(README.format(created=created, events=count, checkpoints=len(ordered),
                                                         fingerprint=fingerprint))
        manifest = {"format": PACK_FORMAT, "created_at": created, "events": count,
                    "last_event": {"seq": last[0], "hash": last[1]} if last else None,
                    "high_water_mark": {"seq": head[0], "hash": head[1]} if head else None,
                    "checkpoints": len(ordered), "key_fingerprint": fingerprint, "not_signed": unsigned,
                    "files": {name: _sha256(partial / name) for name in FILES}}
        (partial / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if directory.exists():
            directory.rmdir()
        os.rename(partial, directory)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return PackSummary(directory, count, len(ordered), fingerprint, signed, unsigned)


def _write_events(path: Path, rows: Iterator[LedgerRow]) -> tuple[int, tuple[int, str] | None]:
    count, last = 0, None
    with path.open("w") as out:
        for row in rows:
            out.write(json.dumps(dict(zip(EVENT_FIELDS, row, strict=True)), separators=(",", ":"),
                                 ensure_ascii=False) + "\n")
            count, last = count + 1, (row[0], row[-1])
    return count, last


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _BadPack(Exception):
    pass


def verify_pack(directory: Path, *, public_key: Path | None = None) -> VerifyReport:
    """Check an evidence pack offline: its files against the manifest, the checkpoints' signatures (with the
    pinned `public_key`, or the pack's own), and the chain against each checkpoint."""
    try:
        manifest = _manifest(directory)
        for name, digest in manifest["files"].items():
            if name not in FILES or not (directory / name).is_file() or _sha256(directory / name) != digest:
                raise _BadPack(f"{directory / name} does not match MANIFEST.json (changed, cut short or removed "
                               "since the export)")
        key = checkpoints.load_public_key(directory / "public_key.pem")
        fingerprint = checkpoints.fingerprint(key)
        notes = ["offline: the pack holds no stored values; their digests are in the events"]
        if public_key is not None:
            pinned = checkpoints.fingerprint(checkpoints.load_public_key(public_key))
            if pinned != fingerprint:
                raise _BadPack(f"the pack is signed by key sha256:{fingerprint}, not by the key given with "
                               f"--public-key (sha256:{pinned})")
        else:
            notes.append("checked with the pack's own public_key.pem: pass --public-key to pin the key you trust")
        found, problem = checkpoints.read_lines(directory / "checkpoints.jsonl")
        checked, problem = (found, problem) if problem else checkpoints.check(found, key)
        if problem:
            raise _BadPack(problem)
        mark = manifest.get("high_water_mark") or {"seq": 0, "hash": "0" * 64}
        report = verify_rows(_pack_events(directory / "events.jsonl"), checkpoints=checked,
                             head=(mark["seq"], mark["hash"]))
    except _BadPack as exc:
        return VerifyReport(False, 0, problem=str(exc), in_chain=False)
    except (KeyError, TypeError, AttributeError) as exc:
        return VerifyReport(False, 0, problem=f"{directory / 'MANIFEST.json'} is damaged ({exc!r})", in_chain=False)
    return replace(report, key_fingerprint=fingerprint, notes=tuple(notes))


def _manifest(directory: Path) -> dict[str, Any]:
    path = directory / "MANIFEST.json"
    if not directory.is_dir():
        raise ConfigError(f"--pack {directory}: no such directory")
    if not path.is_file():
        raise ConfigError(f"--pack {directory}: not an evidence pack (no MANIFEST.json)")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise _BadPack(f"{path} is damaged: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise _BadPack(f"{path} is damaged: no list of files")
    if manifest.get("format") != PACK_FORMAT:
        raise ConfigError(f"{path}: format {manifest.get('format')!r} is not {PACK_FORMAT}")
    return manifest


def _pack_events(path: Path) -> Iterator[LedgerRow]:
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict) or set(obj) != set(EVENT_FIELDS):
                    raise ValueError("not an event")
                row = tuple(obj[name] for name in EVENT_FIELDS)
                if not _typed(row):
                    raise ValueError("a field has the wrong type")
            except ValueError as exc:
                raise _BadPack(f"{path}:{number}: {exc}") from None
            yield row


_TEXT, _OPTIONAL_TEXT = (str,), (str, type(None))
_EVENT_TYPES = ((int,), (int, float), _TEXT, _TEXT, _OPTIONAL_TEXT, (int, type(None)), _OPTIONAL_TEXT, _TEXT,
                _OPTIONAL_TEXT, _TEXT, _TEXT)


def _typed(row: tuple[Any, ...]) -> bool:
    return all(type(value) in types for value, types in zip(row, _EVENT_TYPES, strict=True))
