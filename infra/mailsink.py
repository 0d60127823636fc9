"""A local SMTP server that keeps each mail it receives as an .eml file a person can open."""

import time
from collections.abc import Collection
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


class _SaveToFolder:
    def __init__(self, folder: Path, unknown: Collection[str]) -> None:
        self.folder = folder
        self.unknown = unknown

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list) -> str:
        if address in self.unknown:  # as a real server bounces a mailbox that does not exist, naming it
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        name = f"{time.time_ns()}-{'_'.join(envelope.rcpt_tos)}.eml".replace("/", "_")
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, folder: Path, port: int = 8025, unknown: Collection[str] = ()) -> None:
        """`unknown`: addresses refused as mailboxes that do not exist (for tests of bounced mail)."""
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(_SaveToFolder(folder, unknown), hostname="127.0.0.1", port=port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self._controller.port}"

    def start(self) -> "MailSink":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def mails(self) -> list[EmailMessage]:
        return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(self.folder.glob("*.eml"))]
