"""The tamper-evident audit ledger: events, their hash chain, and its verification.

Each event's hash is sha256 over the previous event's hash and the event's own fields, so editing,
inserting, deleting or reordering any row breaks the chain at that row. Rows are written by
`agentops.db` inside the same transaction as the state change they describe, numbered without gaps from
a high-water mark that deleting rows never lowers.

A chain alone cannot show that its tail was cut off, or that it was recomputed from an edited row onwards:
anyone with write access can do either and leave a chain that links. Signed checkpoints of the chain's head
(`agentops.core.checkpoints`), kept outside the database, close that gap: `verify_rows` checks the chain
against each of them and names what is missing or rewritten. Events after the latest checkpoint are
covered by the chain alone.

The ledger also binds stored values into the chain: each write of a run's parameters or result and of a
step's output puts the sha256 of the stored JSON in its event (`<column>_digest`), and `Bindings` checks
the rows' current values against the latest digest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentops.core.redaction import redact
from agentops.core.serialization import canonical

GENESIS = "0" * 64


@dataclass(slots=True)
class Event:
    """One audit event before it is chained. `payload` is redacted when the event is built."""

    actor: str
    action: str
    run_id: str | None = None
    step_no: int | None = None
    approval_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    policy_hash: str | None = None
    ts: float = field(default_factory=time.time)

    def payload_text(self) -> str:
        return canonical(redact(self.payload)) if self.payload else "{}"


def event_hash(
    prev_hash: str,
    ts: float,
    actor: str,
    action: str,
    run_id: str | None,
    step_no: int | None,
    approval_id: str | None,
    payload: str,
    policy_hash: str | None,
) -> str:
    return hashlib.sha256((prev_hash + event_material(ts, actor, action, run_id, step_no, approval_id, payload,
                                                      policy_hash)).encode()).hexdigest()


def event_material(ts: float, actor: str, action: str, run_id: str | None, step_no: int | None,
                   approval_id: str | None, payload: str, policy_hash: str | None) -> str:
    """What an event's hash covers after the previous hash: `event_hash` is sha256(prev_hash + this), so a
    database can link it to a head it reads under its own lock (see agentops/db/ledger.py)."""
    return "\x1f" + "\x1f".join((repr(float(ts)), actor, action, run_id or "",
                                  "" if step_no is None else str(step_no), approval_id or "", policy_hash or "",
                                  payload))


def chain(prev_hash: str, events: Iterable[Event], first_seq: int) -> list[dict[str, Any]]:
    """Rows ready to insert, numbered from `first_seq`, each linked to the one before."""
    rows = []
    for seq, ev in enumerate(events, first_seq):
        payload = ev.payload_text()
        digest = event_hash(prev_hash, ev.ts, ev.actor, ev.action, ev.run_id, ev.step_no, ev.approval_id,
                            payload, ev.policy_hash)
        rows.append({
            "seq": seq, "ts": ev.ts, "actor": ev.actor, "action": ev.action, "run_id": ev.run_id,
            "step_no": ev.step_no, "approval_id": ev.approval_id, "payload": payload, "policy_hash": ev.policy_hash,
            "prev_hash": prev_hash, "hash": digest,
        })
        prev_hash = digest
    return rows


# -- stored values bound into the chain -------------------------------------------------------------

RUN_BOUND = ("parameters", "result")
"""Columns of flow_runs whose stored JSON is bound into the chain."""
STEP_BOUND = ("output",)
"""Columns of step_runs whose stored JSON is bound into the chain."""


def text_digest(text: str | None) -> str | None:
    """sha256 hex of stored JSON text (None stays None: 'no value' is bound too)."""
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def bind(events: Sequence[Event], action: str,
         values: Iterable[tuple[str, int | None, dict[str, str | None]]]) -> list[Event]:
    """The events with the digests of stored values added: for each (run id, step no, {column: stored text}),
    to the last `action` event of that run (and step), or else to an event of their own (`<action>.bound`)."""
    out = list(events)
    last = {(ev.run_id, ev.step_no): i for i, ev in enumerate(out) if ev.action == action}
    for run_id, step_no, columns in values:
        digests = {f"{column}_digest": text_digest(text) for column, text in columns.items()}
        i = last.get((run_id, step_no))
        if i is None:
            out.append(Event("system:store", f"{action}.bound", run_id=run_id, step_no=step_no, payload=digests))
            continue
        ev = out[i]
        out[i] = Event(ev.actor, ev.action, ev.run_id, ev.step_no, ev.approval_id, {**ev.payload, **digests},
                       ev.policy_hash, ev.ts)
    return out


_BINDING_MARK = '_digest":'
BoundRow = tuple[str, int | None, str, str | None]
"""(run id, step no or None for the run itself, column, stored text)"""


class Bindings:
    """The latest digest the chain records for each bound value, gathered while the chain is walked.

    Only events the chain verified are noted, so a digest here is as trustworthy as the chain up to it.
    """

    def __init__(self) -> None:
        self.digests: dict[tuple[str, int | None, str], tuple[int, bytes | None]] = {}
        """(run id, step no, column) -> (seq of the binding event, sha256 of the stored text or None)."""

    def note(self, seq: int, action: str, run_id: str, step_no: int | None, payload: str) -> str | None:
        """Take the digests an event carries; a problem if it carries one that cannot be read."""
        if action == "run.deleted":
            for column in RUN_BOUND:
                self.digests.pop((run_id, None, column), None)
            return None
        if _BINDING_MARK not in payload or not action.startswith(("run.", "step.")):
            return None
        try:
            data = json.loads(payload)
            for column in RUN_BOUND if step_no is None else STEP_BOUND:
                key = f"{column}_digest"
                if isinstance(data, dict) and key in data:
                    hex_digest = data[key]
                    packed = None if hex_digest is None else bytes.fromhex(hex_digest)
                    if packed is not None and len(packed) != 32:
                        raise ValueError(f"{key} is not a sha256 digest")
                    self.digests[(run_id, step_no, column)] = (seq, packed)
        except (ValueError, TypeError) as exc:
            return f"its payload does not carry a readable digest ({exc}): the event was forged"
        return None

    def check(self, rows: Iterable[BoundRow]) -> tuple[int, VerifyProblem | None]:
        """Compare the rows' stored values with their digests (consuming the bindings). Returns how many bound
        values were checked and the first that differs, or else a bound value whose row is gone."""
        checked = 0
        for run_id, step_no, column, text in rows:
            bound = self.digests.pop((run_id, step_no, column), None)
            if bound is None:
                continue  # written before values were bound (schema 0004), or not bound at all
            checked += 1
            if bound[1] != (None if text is None else hashlib.sha256(text.encode()).digest()):
                where = f"run {run_id}" if step_no is None else f"step {step_no} of run {run_id}"
                return checked, VerifyProblem(bound[0], f"{where}: the digest in event seq={bound[0]} does not "
                                                        f"match its stored {column} (edited in the database)")
        if self.digests:
            (run_id, step_no, column), (seq, _) = min(self.digests.items(), key=lambda item: item[1][0])
            where = f"run {run_id}" if step_no is None else f"step {step_no} of run {run_id}"
            return checked, VerifyProblem(seq, f"{where} is bound by event seq={seq} but its row is gone "
                                               "(deleted from the database)")
        return checked, None


# -- verification ----------------------------------------------------------------------------------


class ChainPoint(Protocol):
    """A point of the chain vouched for from outside it: a signed checkpoint."""

    @property
    def seq(self) -> int: ...
    @property
    def hash(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def ts(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Anchor:
    """A trusted point to walk on from: the chain is known good up to `seq` (ending in `hash`, `count` rows)."""

    seq: int
    hash: str
    count: int
    ts: float = 0.0


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    seq: int | None
    problem: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    count: int
    """Events whose chain verified (before the first problem, if any)."""
    first_bad_seq: int | None = None
    problem: str | None = None
    missing: tuple[int, int] | None = None
    """The first range of sequence numbers found missing (first, last), if that is the problem."""
    checkpoints: int = 0
    """Signed checkpoints verified."""
    latest_checkpoint: Anchor | None = None
    uncovered: int = 0
    """Events after the latest checkpoint: covered by the chain only (a cut tail or a forged append that links
    cannot be told from the real thing until the next checkpoint)."""
    key_fingerprint: str | None = None
    values_checked: int = 0
    """Stored values (runs' parameters and results, steps' outputs) that matched the digests in the chain."""
    notes: tuple[str, ...] = ()
    in_chain: bool = True
    """False when the problem is outside the chain: a checkpoint, or a stored value the chain binds."""

    def line(self) -> str:
        if not self.ok and not self.in_chain:
            return f"BROKEN: {self.problem}"
        if not self.ok:
            return f"BROKEN at event seq={self.first_bad_seq}: {self.problem} ({self.count} events checked before it)"
        if self.latest_checkpoint is None:
            return f"OK: {self.count} events, chain intact; no signed checkpoint yet (a cut tail cannot be detected)"
        cp = self.latest_checkpoint
        return (f"OK: {self.count} events, chain intact; {self.checkpoints} signed checkpoints match (latest: seq "
                f"{cp.seq} at {_utc(cp.ts)}); {self.uncovered} events after it are covered by the chain only")

    def lines(self) -> list[str]:
        out = [self.line()]
        if self.ok and self.values_checked:
            out.append(f"{self.values_checked} stored values (runs' parameters and results, steps' outputs) match "
                       "their digests in the chain")
        if self.key_fingerprint:
            out.append(f"checkpoint key: sha256:{self.key_fingerprint}")
        return out + list(self.notes)

    def as_json(self) -> dict[str, Any]:
        cp = self.latest_checkpoint
        return {"ok": self.ok, "count": self.count, "first_bad_seq": self.first_bad_seq, "problem": self.problem,
                "missing": list(self.missing) if self.missing else None, "checkpoints": self.checkpoints,
                "latest_checkpoint": {"seq": cp.seq, "hash": cp.hash, "count": cp.count, "ts": cp.ts} if cp else None,
                "uncovered": self.uncovered, "key_fingerprint": self.key_fingerprint,
                "values_checked": self.values_checked, "notes": list(self.notes)}


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


LedgerRow = tuple[int, float, str, str, str | None, int | None, str | None, str, str | None, str, str]
"""(seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev_hash, hash)"""


def verify_rows(
    rows: Iterator[LedgerRow] | Iterable[LedgerRow],
    *,
    checkpoints: Sequence[ChainPoint] = (),
    head: tuple[int, str] | None = None,
    start: Anchor | None = None,
    bindings: Bindings | None = None,
) -> VerifyReport:
    """Walk the chain in seq order (from `start`, or from the first event) and name the first row that was
    edited, inserted, deleted or reordered, or the range of events that is missing.

    `checkpoints` (signatures already checked, sorted by seq) must each match the row at their seq and the
    number of rows up to it; `head` is the store's high-water mark (seq, hash), which the last row must match.
    """
    prev, last_seq, count = (start.hash, start.seq, start.count) if start else (GENESIS, 0, 0)
    points = [cp for cp in checkpoints if cp.seq > last_seq]
    done = len(checkpoints) - len(points)
    latest: ChainPoint | None = start
    i, n = 0, len(points)
    gap: tuple[int, int] | None = None

    def fail(seq: int | None, problem: str, missing: tuple[int, int] | None = None) -> VerifyReport:
        return VerifyReport(False, count, seq, problem, missing, checkpoints=done + i)

    for seq, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash, prev_hash, digest in rows:
        if seq <= last_seq:
            return fail(seq, f"out of order: seq {seq} follows seq {last_seq} (rows were reordered or duplicated)")
        skipped = (last_seq + 1, seq - 1) if seq != last_seq + 1 else None
        if prev_hash != prev:
            if skipped:
                return fail(seq, f"prev_hash does not match the previous event: rows {skipped[0]}..{skipped[1]} "
                                 "are missing (deleted)", skipped)
            return fail(seq, "prev_hash does not match the previous event: a row before it was deleted, or this "
                             "row was inserted or moved")
        if event_hash(prev_hash, ts, actor, action, run_id, step_no, approval_id, payload, policy_hash) != digest:
            return fail(seq, "contents do not match its hash: the row was edited")
        if i < n and points[i].seq < seq:
            cp = points[i]
            return fail(cp.seq, f"event seq={cp.seq}, signed in the checkpoint of {_utc(cp.ts)}, is missing (the "
                                "rows around it were deleted and the chain re-linked)", skipped)
        count += 1
        if skipped and gap is None:
            gap = skipped
        if i < n and points[i].seq == seq:
            cp = points[i]
            if digest != cp.hash:
                since = latest.seq + 1 if latest else 1
                return fail(seq, f"does not match the checkpoint signed at {_utc(cp.ts)}: the chain up to it was "
                                 f"rewritten and recomputed: the first rewritten row lies between seq {since} and "
                                 "this one")
            if count != cp.count:
                return fail(seq, f"the checkpoint signed at {_utc(cp.ts)} counts {cp.count} events up to here, the "
                                 f"ledger has {count}: rows were deleted or inserted and the chain re-linked", gap)
            gap = None  # the signed count vouches for any numbers missing before it
            latest = cp
            i += 1
        if bindings is not None and run_id is not None:
            unreadable = bindings.note(seq, action, run_id, step_no, payload)
            if unreadable:
                return fail(seq, unreadable)
        prev, last_seq = digest, seq

    if i < n:
        cp = points[-1]
        what = "the ledger is empty" if count == 0 else f"the ledger ends at seq {last_seq}"
        return fail(last_seq + 1, f"events {last_seq + 1}..{cp.seq} are missing: {what}, but the checkpoint "
                                  f"signed at {_utc(cp.ts)} covers {cp.count} events up to seq {cp.seq} "
                                  "(the tail was cut off or the table emptied)", (last_seq + 1, cp.seq))
    if gap is not None:
        return fail(gap[0], f"sequence numbers {gap[0]}..{gap[1]} are missing after the latest checkpoint "
                            "(rows were deleted and the chain re-linked)", gap)
    if head is not None:
        head_seq, head_hash = head
        if head_seq > last_seq:
            return fail(last_seq + 1, f"events {last_seq + 1}..{head_seq} are missing: the ledger's high-water "
                                      f"mark is seq {head_seq} (the tail was cut off)", (last_seq + 1, head_seq))
        if head_seq < last_seq:
            return fail(head_seq + 1, f"events {head_seq + 1}..{last_seq} were appended outside agentops (the "
                                      f"ledger's high-water mark is seq {head_seq})")
        if head_hash != prev:
            return fail(last_seq, "the last event does not match the ledger's high-water mark: it was replaced")
    anchor = Anchor(latest.seq, latest.hash, latest.count, latest.ts) if latest is not None else None
    return VerifyReport(True, count, checkpoints=done + i, latest_checkpoint=anchor,
                        uncovered=count - anchor.count if anchor else count)
