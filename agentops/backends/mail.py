"""Outbox mail and its delivery over SMTP: every attempt and its outcome recorded on the row and in the ledger.

A mail's outbox row goes `queued` -> `sending` -> `delivered` (with the server's reply), `failed` (with the reason;
retryable or not) or `uncertain`. The row is written first, so a mail a step meant to send is never lost: a
step that runs again (a retry, a resume after a crash) finds the row by its idempotency key and delivers it
again unless it is `delivered` or failed for good. Every attempt carries the same Message-ID, derived from
the key, so a receiving system can drop a repeat.

What no client can settle: once the message and its final dot have gone out, a connection that dies before
the server's reply leaves the mail accepted or not. That attempt is recorded as `email.delivery_uncertain`,
and the mail is sent again with the same Message-ID (it may arrive twice). A process that dies during an
attempt leaves the row `sending`; the next attempt records that one as uncertain too.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import smtplib
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from agentops.core.ledger import Event
from agentops.db import open_store
from agentops.db.backends import DELIVERED, FAILED, QUEUED, SENDING, UNCERTAIN
from agentops.engine.toolkit import check_fence, current_step_no
from agentops.settings import get_settings

ACTOR = "system:email"
_DOT_ATOM = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class EmailNotDelivered(RuntimeError):
    """The mail is in the outbox but was not delivered; the message says why and whether it is tried again."""


@dataclass(frozen=True)
class Outcome:
    """How one delivery attempt ended."""

    status: str
    detail: str
    """The server's reply (delivered) or the reason (failed, uncertain)."""
    retryable: bool = False
    refused: dict[str, str] = field(default_factory=dict)
    """Recipients the server refused while it accepted the mail for the others."""


SENDER = "agentops@example.com"
"""The From of every mail the send_email tool sends (and the approval card shows)."""


def message_id(key: str) -> str:
    """The Message-ID of the mail a step sends: derived from its idempotency key, the same on every attempt."""
    local = key.replace(":", ".")
    if len(local) > 200 or not _DOT_ATOM.fullmatch(local):
        local = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{local}@agentops>"


def queue(values: dict[str, Any], *, smtp: bool) -> tuple[dict[str, Any], bool]:
    """The outbox row for this idempotency key, written now (created=True) or found from an earlier attempt.

    Without SMTP the outbox is the delivery, so a new row is `delivered` as it is written."""
    now = values["created_at"]
    key = values["idempotency_key"]
    row = {**values, "message_id": message_id(key), "status": QUEUED if smtp else DELIVERED, "attempts": 0,
           "retryable": False, "server_reply": None, "failure": None, "updated_at": now,
           "delivered_at": None if smtp else now}
    events = [Event(ACTOR, "email.queued", run_id=values.get("run_id"), step_no=current_step_no(), ts=now,
                    payload={"message_id": row["message_id"], "idempotency_key": key, "to": values["to"]})]
    return open_store().outbox_add(row, events if smtp else ())


def deliver(smtp_url: str, row: dict[str, Any], message: EmailMessage,
            recipients: list[str]) -> tuple[dict[str, Any], bool]:
    """Deliver an outbox row's mail unless it is delivered already; returns the row and whether it was sent now.

    A step makes up to AGENTOPS_SMTP_ATTEMPTS attempts, waiting AGENTOPS_SMTP_RETRY_SECONDS (doubling) between
    them, and raises EmailNotDelivered when none delivered it or the server refused it for good."""
    if row["status"] == DELIVERED:
        return row, False
    settings = get_settings()
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    store = open_store()
    for n in range(settings.smtp_attempts):
        if row["status"] == FAILED and not row["retryable"]:
            break
        if n:
            time.sleep(settings.smtp_retry_seconds * 2 ** (n - 1))
        check_fence()
        attempt = row["attempts"] + 1
        events = [_event(row, "email.delivery_attempt", attempt)]
        if row["status"] == SENDING:
            events.insert(0, _event(row, "email.delivery_uncertain", row["attempts"], reason=(
                "the process making this attempt stopped before it recorded the outcome; the mail may have been "
                "delivered, and is sent again with the same Message-ID")))
        if not store.outbox_start_attempt(row["id"], row["attempts"], time.time(), events):
            row = store.outbox_get(row["id"]) or row
            if row["status"] == DELIVERED:
                return row, False
            raise EmailNotDelivered(f"outbox mail {row['id']} is being delivered by another execution of this step "
                                    f"(attempt {row['attempts']})")
        outcome = _attempt(smtp_url, row["sender"], recipients, data, settings.smtp_timeout_seconds)
        row = store.outbox_finish_attempt(row["id"], attempt, _outcome_values(outcome),
                                          [_outcome_event(row, attempt, outcome)])
        if row["status"] == DELIVERED:
            return row, True
    if row["status"] == FAILED and not row["retryable"]:
        raise EmailNotDelivered(f"outbox mail {row['id']} was refused and is not sent again: {row['failure']}")
    raise EmailNotDelivered(f"outbox mail {row['id']} is not delivered yet ({row['status']} after attempt "
                            f"{row['attempts']}: {row['failure']}); running this step again sends it again, with "
                            f"the same Message-ID {row['message_id']}")


def deliver_once(smtp_url: str, sender: str, recipients: list[str], data: bytes, timeout: float) -> Outcome:
    """One SMTP attempt of a message that has no outbox row (an approval notification keeps its own): its outcome."""
    return _attempt(smtp_url, sender, recipients, data, timeout)


def _outcome_values(outcome: Outcome) -> dict[str, Any]:
    now = time.time()
    delivered = outcome.status == DELIVERED
    return {"status": outcome.status, "retryable": outcome.retryable, "updated_at": now,
            "server_reply": outcome.detail if delivered else None, "failure": None if delivered else outcome.detail,
            "delivered_at": now if delivered else None}


def _event(row: dict[str, Any], action: str, attempt: int, **payload: Any) -> Event:
    return Event(ACTOR, action, run_id=row.get("run_id"), step_no=current_step_no(), payload={
        "outbox_id": row["id"], "message_id": row["message_id"], "idempotency_key": row["idempotency_key"],
        "attempt": attempt, **payload})


def _outcome_event(row: dict[str, Any], attempt: int, outcome: Outcome) -> Event:
    if outcome.status == DELIVERED:
        return _event(row, "email.delivered", attempt, reply=outcome.detail, refused=outcome.refused)
    if outcome.status == UNCERTAIN:
        return _event(row, "email.delivery_uncertain", attempt, reason=outcome.detail)
    return _event(row, "email.delivery_failed", attempt, reason=outcome.detail, retryable=outcome.retryable)


class _SMTP(smtplib.SMTP):
    """smtplib's client, noting when the message and its final dot have gone out: from then on the server may
    have accepted it, whatever happens to the connection."""

    message_sent = False

    def send(self, s: Any) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):  # smtplib sends commands as str, the message as bytes
            self.message_sent = True


def _reply(code: int, text: bytes | str) -> str:
    return f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}".strip()


def _refusal(code: int, text: bytes | str, command: str) -> Outcome:
    """A reply that refuses: 4xx is a temporary condition (try again), anything else is for good."""
    return Outcome(FAILED, f"{command}: {_reply(code, text)}", retryable=400 <= code < 500)


def _attempt(url: str, sender: str, recipients: list[str], data: bytes, timeout: float) -> Outcome:
    parsed = urlparse(url)
    starttls = parse_qs(parsed.query).get("starttls", ["0"])[0] in ("1", "true")
    smtp = _SMTP(timeout=timeout)
    try:
        smtp.connect(parsed.hostname or "127.0.0.1", parsed.port or 25)
        smtp.ehlo_or_helo_if_needed()
        if starttls:
            smtp.starttls()
            smtp.ehlo()
        if parsed.username:
            smtp.login(unquote(parsed.username), unquote(parsed.password or ""))
        code, text = smtp.mail(sender)
        if code != 250:
            return _refusal(code, text, "MAIL FROM")
        refused = {}
        for recipient in recipients:
            code, text = smtp.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = _reply(code, text)
        if len(refused) == len(recipients):
            temporary = all(reply.startswith("4") for reply in refused.values())
            return Outcome(FAILED, f"RCPT TO: every recipient was refused: {refused}", retryable=temporary)
        code, text = smtp.data(data)
        if code != 250:
            return _refusal(code, text, "DATA")
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
        return Outcome(DELIVERED, _reply(code, text), refused=refused)
    except smtplib.SMTPResponseException as exc:
        return _refusal(exc.smtp_code, exc.smtp_error, "SMTP")
    except smtplib.SMTPNotSupportedError as exc:
        return Outcome(FAILED, f"the server does not support what AGENTOPS_SMTP_URL asks for: {exc}")
    except (smtplib.SMTPException, OSError) as exc:
        if smtp.message_sent:
            return Outcome(UNCERTAIN, "the connection was lost after the message was sent and before the server's "
                                      f"reply ({type(exc).__name__}: {exc}): it may have been delivered",
                           retryable=True)
        return Outcome(FAILED, f"{type(exc).__name__}: {exc}", retryable=True)
    except Exception as exc:  # an address or a message smtplib cannot encode: no attempt will do better
        return Outcome(FAILED, f"{type(exc).__name__}: {exc}")
    finally:
        smtp.close()
