"""Signed checkpoints of the ledger's head, and the append-only files that keep them outside the database.

A checkpoint says "the chain had `count` events up to `seq`, ending in `hash`, at `ts`", signed with an
Ed25519 key the database does not hold. Anyone with the public key can check it, so a checkpoint kept
where the database's writers cannot reach (WORM storage, another host, a transparency log) shows a cut
tail, an emptied table or a recomputed chain for what they are.

The line format is one JSON object per line: {"v", "seq", "hash", "count", "ts", "key", "sig"}; `sig` is
the base64 Ed25519 signature of SIGNED_PREFIX followed by the sorted-key compact JSON of the other fields
(`key` is the sha256 hex of the raw public key). `cryptography` is imported only when a key is used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentops.errors import AgentOpsError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = 1
SIGNED_PREFIX = b"agentops ledger checkpoint v1\n"
FILE_NAME = "checkpoints.jsonl"
_FIELDS = ("v", "seq", "hash", "count", "ts", "key")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed head of the chain. `source` says where it was read from (not signed)."""

    seq: int
    hash: str
    count: int
    ts: float
    key: str
    """sha256 hex of the raw Ed25519 public key that signed it."""
    sig: str
    source: str = field(default="", compare=False)

    def signed_bytes(self) -> bytes:
        body = {"v": FORMAT, "seq": self.seq, "hash": self.hash, "count": self.count, "ts": self.ts, "key": self.key}
        return SIGNED_PREFIX + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        return json.dumps({"v": FORMAT, "seq": self.seq, "hash": self.hash, "count": self.count, "ts": self.ts,
                           "key": self.key, "sig": self.sig}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def parse(cls, obj: Any, source: str) -> Checkpoint:
        """A checkpoint from its JSON object; ValueError naming the problem if it is not one."""
        if not isinstance(obj, dict) or set(obj) != {*_FIELDS, "sig"}:
            raise ValueError(f"{source}: not a checkpoint (fields {', '.join(_FIELDS)}, sig expected)")
        if obj["v"] != FORMAT:
            raise ValueError(f"{source}: checkpoint format {obj['v']!r} is not {FORMAT}")
        seq, count, ts = obj["seq"], obj["count"], obj["ts"]
        if not (type(seq) is int and type(count) is int and isinstance(ts, int | float) and seq >= 0
                and 0 <= count <= seq and all(isinstance(obj[k], str) for k in ("hash", "key", "sig"))):
            raise ValueError(f"{source}: checkpoint fields have the wrong types or values")
        return cls(seq, obj["hash"], count, float(ts), obj["key"], obj["sig"], source)


# -- keys -----------------------------------------------------------------------------------------------


def fingerprint(public_key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def create_private_key(path: Path) -> Ed25519PrivateKey:
    """A new key written to `path` (mode 0600, never over an existing file)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_private_key(path)  # another process created it first
    except OSError as exc:
        raise AgentOpsError(f"cannot create the ledger key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise AgentOpsError(f"cannot read the ledger key file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AgentOpsError(f"the ledger key file {path} is open to other users (mode {stat.S_IMODE(mode):04o}): "
                            f"chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise AgentOpsError(f"the ledger key file {path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AgentOpsError(f"the ledger key file {path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A PEM public key, or the public half of a PEM private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AgentOpsError(f"cannot read the public key {path}: {exc.strerror}") from None
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise AgentOpsError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AgentOpsError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


# -- signing and checking ----------------------------------------------------------------------------------


def sign(key: Ed25519PrivateKey, *, seq: int, hash: str, count: int, ts: float) -> Checkpoint:
    unsigned = Checkpoint(seq, hash, count, ts, fingerprint(key.public_key()), "")
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode()
    return Checkpoint(seq, hash, count, ts, unsigned.key, signature)


def check(checkpoints: Iterable[Checkpoint], public_key: Ed25519PublicKey) -> tuple[list[Checkpoint], str | None]:
    """The checkpoints, one per seq, sorted; or the first problem: a bad signature, another key, or two
    signed checkpoints that disagree about the same event."""
    from cryptography.exceptions import InvalidSignature

    expected_key = fingerprint(public_key)
    by_seq: dict[int, Checkpoint] = {}
    for cp in checkpoints:
        if cp.key != expected_key:
            return [], (f"{cp.source}: checkpoint of seq {cp.seq} names key sha256:{cp.key[:16]}…, not the "
                        f"verifying key sha256:{expected_key[:16]}… (forged, or signed by another key)")
        try:
            public_key.verify(base64.b64decode(cp.sig, validate=True), cp.signed_bytes())
        except (InvalidSignature, ValueError):
            return [], f"{cp.source}: checkpoint of seq {cp.seq} has a bad signature (the checkpoint was altered)"
        seen = by_seq.setdefault(cp.seq, cp)
        if (seen.hash, seen.count) != (cp.hash, cp.count):
            return [], (f"{seen.source} and {cp.source}: two signed checkpoints disagree about event seq {cp.seq} "
                        "(the key signed a rewritten chain)")
    return sorted(by_seq.values(), key=lambda c: c.seq), None


# -- files ---------------------------------------------------------------------------------------------------


def append_line(path: Path, cp: Checkpoint) -> None:
    """Append one checkpoint (one write with O_APPEND, then fsync): lines from several processes never mix."""
    data = (cp.line() + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise AgentOpsError(f"cannot append to the checkpoint file {path}: {exc.strerror}") from None
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(path: Path) -> tuple[list[Checkpoint], str | None]:
    """The checkpoints in a JSONL file (none if it does not exist), or the first line that is not one."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return [], None
    except (OSError, UnicodeDecodeError) as exc:
        return [], f"cannot read {path}: {exc}"
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        source = f"{path}:{number}"
        try:
            out.append(Checkpoint.parse(json.loads(line), source))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return [], str(exc) if str(exc).startswith(source) else f"{source}: not JSON ({exc})"
    return out, None
