"""An aiosmtpd server on 127.0.0.1 that misbehaves the ways a mail server can, to test delivery against.

It keeps every message it takes in. Told to, it holds the next MAIL command until released (the client is then
mid-attempt, with nothing delivered), takes in the next messages' DATA and drops the connection before its
reply (the message arrived, the client cannot know), or refuses some recipients with a given reply.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any


class SMTPServer:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.mail_commands = 0
        """MAIL commands seen: one per delivery attempt that got as far as the envelope."""
        self.drop_after_data = 0
        """How many of the next messages are taken in and then answered by a dropped connection."""
        self.refuse: dict[str, str] = {}
        """RCPT replies by address, e.g. {"a@example.com": "550 5.1.1 no such user"}."""
        self.hold_next_mail = False
        self.holding = threading.Event()
        self.release = threading.Event()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]

    def __enter__(self) -> SMTPServer:
        from aiosmtpd.controller import Controller

        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.controller.stop()


class _Handler:
    def __init__(self, fake: SMTPServer) -> None:
        self.fake = fake

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.fake.mail_commands += 1
        if self.fake.hold_next_mail:
            self.fake.hold_next_mail = False
            self.fake.holding.set()
            while not self.fake.release.is_set():
                await asyncio.sleep(0.02)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.fake.refuse:
            return self.fake.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.fake.messages.append(message)
        if self.fake.drop_after_data > 0:
            self.fake.drop_after_data -= 1
            server.transport.abort()
        return "250 2.0.0 Ok: queued as FAKE" + str(len(self.fake.messages))
