"""The audit ledger for every face: verify, checkpoint, search, export.

Checkpoints are signed with the key at `ledger_key_path` (created on first use, mode 0600) and appended to
`<checkpoint_path>/checkpoints.jsonl` before the database gets its copy. Verification reads that file first,
then walks the chain and the rows it binds in one snapshot of the database.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentops.core import checkpoints, serialization
from agentops.core.checkpoints import Checkpoint
from agentops.core.ledger import Anchor, Bindings, VerifyReport, verify_rows
from agentops.db import Store, open_store
from agentops.engine.mcp_trust import PinEvents, StoredPin
from agentops.errors import AgentOpsError, ConfigError, LedgerError
from agentops.settings import get_settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from agentops.db.schema import LedgerEvent

log = logging.getLogger("agentops.audit")


# -- where the key and the checkpoints live ------------------------------------------------------------------


def _usable_dir(path: Path, default: Path, what: str, setting: str) -> Path:
    """`path`'s directory; the default one is created, a configured one must exist."""
    if path.is_dir():
        return path
    if path == default:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path
    raise ConfigError(f"{setting}: the {what} directory {path} does not exist")


def signing_key() -> Ed25519PrivateKey:
    """The checkpoint signing key, created (mode 0600) if it does not exist yet."""
    settings = get_settings()
    path = settings.ledger_key_path
    if path.exists():
        return checkpoints.load_private_key(path)
    default = settings.state_dir / "ledger-signing-key.pem"
    _usable_dir(path.parent, default.parent, "ledger key file's", "AGENTOPS_LEDGER_KEY_FILE")
    return checkpoints.create_private_key(path)


def verifying_key(public_key: Path | None = None) -> Ed25519PublicKey | None:
    """The public key checkpoints are checked with: `public_key` if given, else the signing key's, if any."""
    if public_key is not None:
        return checkpoints.load_public_key(public_key)
    path = get_settings().ledger_key_path
    return checkpoints.load_private_key(path).public_key() if path.exists() else None


def checkpoint_file(*, create: bool) -> Path:
    settings = get_settings()
    directory = settings.checkpoint_path
    if create:
        _usable_dir(directory, settings.state_dir / "checkpoints", "checkpoint", "AGENTOPS_CHECKPOINT_DIR")
    elif settings.checkpoint_dir is not None and not directory.is_dir():
        raise ConfigError(f"AGENTOPS_CHECKPOINT_DIR: the checkpoint directory {directory} does not exist")
    return directory / checkpoints.FILE_NAME


def checkpoint_from_row(row: dict[str, Any]) -> Checkpoint:
    """A checkpoint from its copy in table ledger_checkpoints."""
    return Checkpoint(row["seq"], row["hash"], row["count"], row["ts"], row["key_fingerprint"], row["signature"],
                      source=f"table ledger_checkpoints (id {row['id']})")


# -- checkpoints -------------------------------------------------------------------------------------------


def audit_checkpoint(store: Store | None = None) -> Checkpoint | None:
    """Sign the chain's head now, if it moved since the last checkpoint; None if there was nothing new.

    A checkpoint is only signed over a chain that verifies from the previous checkpoint (or from the first
    event) to the head; otherwise LedgerError says why and nothing is signed.
    """
    store = store or open_store()
    key = signing_key()
    public = key.public_key()
    path = checkpoint_file(create=True)
    anchor = _last_anchor(store, public)  # before the head: a checkpoint another process signs meanwhile is older
    head = store.ledger_head()
    if head is None:
        raise LedgerError("refusing to sign a checkpoint: the ledger's high-water mark (table ledger_head) is gone;"
                          " run `agentops audit verify`")
    if head[0] == (anchor.seq if anchor else 0):
        return None
    rows = itertools.takewhile(lambda row: row[0] <= head[0], store.iter_ledger(after=anchor.seq if anchor else 0))
    report = verify_rows(rows, start=anchor, head=head)
    if not report.ok:
        raise LedgerError(f"refusing to sign a checkpoint: {report.line()}")
    cp = checkpoints.sign(key, seq=head[0], hash=head[1], count=report.count, ts=time.time())
    checkpoints.append_line(path, cp)
    store.add_checkpoint({"seq": cp.seq, "hash": cp.hash, "count": cp.count, "ts": cp.ts,
                          "key_fingerprint": cp.key, "signature": cp.sig})
    return cp


def _last_anchor(store: Store, public: Ed25519PublicKey) -> Anchor | None:
    """The newest checkpoint in the database, once its signature and its row are checked."""
    rows = store.latest_checkpoints(1)
    if not rows:
        return None
    cp = checkpoint_from_row(rows[0])
    _, problem = checkpoints.check([cp], public)
    if problem is None and store.ledger_hash_at(cp.seq) != cp.hash:
        problem = f"event seq {cp.seq} no longer matches the checkpoint signed at {time.ctime(cp.ts)}"
    if problem is not None:
        raise LedgerError(f"refusing to sign a checkpoint: {problem}; run `agentops audit verify`")
    return Anchor(cp.seq, cp.hash, cp.count, cp.ts)


class Checkpointer:
    """The workers' housekeeping job: sign a checkpoint every N events or T seconds (see settings).

    A failure is logged and retried after T seconds: a ledger that cannot be signed (broken, or its key or
    directory unusable) does not stop the worker, and is not signed either.
    """

    def __init__(self) -> None:
        self._retry_at = 0.0

    def __call__(self, store: Store) -> None:
        settings = get_settings()
        now = time.time()
        if now < self._retry_at:
            return
        head = store.ledger_head()
        latest = store.latest_checkpoints(1)
        last_seq, last_ts = (latest[0]["seq"], latest[0]["ts"]) if latest else (0, 0.0)
        if head is not None and head[0] == last_seq:
            return
        if head is not None and head[0] - last_seq < settings.checkpoint_every_events and (
                now - last_ts < settings.checkpoint_every_seconds):
            return
        try:
            audit_checkpoint(store)
        except AgentOpsError as exc:
            self._retry_at = now + settings.checkpoint_every_seconds
            log.error("ledger checkpoint not signed: %s", exc)
        except Exception:
            self._retry_at = now + settings.checkpoint_every_seconds
            log.exception("ledger checkpoint not signed")


# -- verification ------------------------------------------------------------------------------------------


def file_checkpoints() -> tuple[list[Checkpoint], str | None]:
    """The checkpoint file's checkpoints, or its first bad line. Read it before the database's snapshot, so that
    every checkpoint it holds is of events the snapshot can see."""
    return checkpoints.read_lines(checkpoint_file(create=False))


def audit_verify(*, public_key: Path | None = None) -> VerifyReport:
    """Check the checkpoints' signatures, the chain against each of them and the store's high-water mark, and
    the stored values the chain binds, all in one snapshot of the database."""
    store = open_store()
    from_file, problem = file_checkpoints()
    if problem:
        return VerifyReport(False, 0, problem=problem, in_chain=False)
    with store.ledger_snapshot() as snap:
        every = from_file + [checkpoint_from_row(row) for row in snap.checkpoints()]
        checked, fingerprint, failed = _checked(every, public_key)
        if failed:
            return failed
        head = snap.head()
        bindings = Bindings()
        pinned = PinEvents()
        report = verify_rows(pinned.tap(snap.events()), checkpoints=checked, head=head, bindings=bindings)
        if not report.ok:
            return replace(report, key_fingerprint=fingerprint)
        if head is None:
            return replace(report, ok=False, in_chain=False, problem="the ledger's high-water mark (table "
                         "ledger_head) is gone: a cut tail or a forged append cannot be told from the real thing")
        values, bad = bindings.check(snap.bound_values())
        pin_problems = pinned.problems(StoredPin(*row) for row in snap.mcp_pins())
    if bad is not None:
        return replace(report, ok=False, in_chain=False, first_bad_seq=bad.seq, problem=bad.problem,
                     values_checked=values - 1, key_fingerprint=fingerprint)
    if pin_problems:
        seq, problem = pin_problems[0]
        more = f" (and {len(pin_problems) - 1} more MCP pins)" if len(pin_problems) > 1 else ""
        return replace(report, ok=False, in_chain=False, first_bad_seq=seq, problem=problem + more,
                       values_checked=values, key_fingerprint=fingerprint)
    return replace(report, values_checked=values, key_fingerprint=fingerprint)


def _checked(every: list[Checkpoint], public_key: Path | None) -> tuple[list[Checkpoint], str | None,
                                                                         VerifyReport | None]:
    """The checkpoints with their signatures checked, the key's fingerprint, or a failed report."""
    key = verifying_key(public_key)
    if key is None:
        if every:
            raise ConfigError(f"{len(every)} signed checkpoints but no key to check them: the ledger key file "
                              f"{get_settings().ledger_key_path} does not exist; pass --public-key FILE")
        return [], None, None
    checked, problem = checkpoints.check(every, key)
    fingerprint = checkpoints.fingerprint(key)
    if problem:
        return [], fingerprint, VerifyReport(False, 0, problem=problem, in_chain=False, key_fingerprint=fingerprint)
    return checked, fingerprint, None


# -- search and export -------------------------------------------------------------------------------------


def audit_search(**filters: Any) -> list[LedgerEvent]:
    return open_store().search_ledger(**filters)


def ledger_record(ev: LedgerEvent) -> dict[str, Any]:
    return {"seq": ev.seq, "ts": ev.ts, "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ev.ts)) +
            f".{int((ev.ts % 1) * 1e6):06d}Z", "actor": ev.actor, "action": ev.action, "run_id": ev.run_id,
            "step_no": ev.step_no, "approval_id": ev.approval_id,
            "payload": serialization.loads(ev.payload, f"ledger event {ev.seq} payload"),
            "policy_hash": ev.policy_hash, "prev_hash": ev.prev_hash, "hash": ev.hash}


def audit_export(*, since: float | None = None, until: float | None = None) -> Iterator[str]:
    """JSON lines, one per event, oldest first, for a SIEM."""
    import json

    st = open_store()
    after = 0
    while True:
        batch = st.search_ledger(since=since, until=until, limit=5000, ascending=True, after_seq=after)
        if not batch:
            return
        for ev in batch:
            yield json.dumps(ledger_record(ev), separators=(",", ":"), sort_keys=True)
        after = batch[-1].seq or after


def audit_count() -> int:
    return open_store().ledger_count()
