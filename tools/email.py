"""send_email: the embedded outbox, or real SMTP (delivery recorded by agentops.backends.mail), once per tool step."""

from __future__ import annotations

import base64
import time
from email.message import EmailMessage
from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agentops.backends import mail
from agentops.backends.mail import SENDER
from agentops.core import serialization
from agentops.engine.toolkit import current_run_id, idempotency_key
from agentops.governance.addresses import parse_addresses
from agentops.settings import get_settings


class SendEmailArgs(BaseModel):
    to: list[str] = Field(min_length=1, description="Recipient addresses.")
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(description="Plain-text body.")
    cc: list[str] = Field(default_factory=list)
    attachments: list[dict[str, str]] = Field(
        default_factory=list,
        description="Optional: [{name, content_base64, mime}], or [{name, chart}] naming a chart by its sha256.")


def _attachment(item: dict[str, str]) -> tuple[bytes, str]:
    """An attachment's bytes: inline base64, or a chart stored by content under .agentops/charts/."""
    if "chart" in item:
        from agentops.data.query import load_chart
        from agentops.engine.project import project_root

        png = load_chart(item["chart"], project_root())
        if png is None:
            raise ValueError(f"no stored chart with sha256 {item['chart'][:64]!r} (query_data returns the digest)")
        return png, "image/png"
    return base64.b64decode(item["content_base64"]), item.get("mime", "application/octet-stream")


def send_email(to: list[str], subject: str, body: str, cc: list[str] | None = None,
               attachments: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Record the mail in the outbox first, then deliver it over SMTP when configured.

    A repeated idempotency key finds the outbox row: a delivered mail is never sent again, an undelivered one is
    delivered again with the same Message-ID. Each recipient must be exactly one plain address
    (agentops.governance.addresses); the row, the envelope and the To/Cc headers are built from the parsed
    addresses, never from the strings given.
    """
    to, cc = [str(a) for a in parse_addresses(to)], [str(a) for a in parse_addresses(cc or [])]
    key = idempotency_key()
    files = [(item.get("name", "attachment"), *_attachment(item)) for item in attachments or []]
    smtp_url = get_settings().smtp_url
    row, created = mail.queue({
        "idempotency_key": key, "sender": SENDER, "to": ", ".join([*to, *cc]), "subject": subject,
        "body": body, "attachments": serialization.dumps(attachments) if attachments else None,
        "run_id": current_run_id(), "created_at": time.time()}, smtp=bool(smtp_url))
    if smtp_url and row["status"] != "delivered":
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = SENDER, ", ".join(to), subject
        if cc:
            message["Cc"] = ", ".join(cc)
        message["Message-ID"] = mail.message_id(key)
        message.set_content(body)
        for name, content, mime in files:
            maintype, _, subtype = mime.partition("/")
            message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
        row, created = mail.deliver(smtp_url, row, message, [*to, *cc])
    delivered = "smtp" if row.get("attempts") else "outbox"
    return {"status": "sent" if created else "already sent", "outbox_id": row["id"], "delivered_via": delivered,
            "message_id": row["message_id"], "server_reply": row["server_reply"], "to": to, "subject": subject}


TOOLS = [StructuredTool.from_function(
    func=send_email, name="send_email", args_schema=SendEmailArgs, metadata={"side_effect": True},
    description="Send a plain-text email to people in the organisation (alerts, reports). "
                "Recipients outside allowed domains are refused by policy.")]
