"""A local SMTP server that keeps each mail it receives as an .eml file a person can open."""

import signal
import socket
import subprocess
import sys
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


def start_sink_process(folder: Path, port: int, timeout: float = 30) -> subprocess.Popen:
    """The sink as a process of its own (`python -m infra.mailsink`), so that its CPU and memory can be read
    apart from its caller's; returns once it accepts connections."""
    process = subprocess.Popen([sys.executable, "-m", "infra.mailsink", str(folder), str(port)],
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the mail sink did not listen on {port}")
            time.sleep(0.1)


if __name__ == "__main__":  # python -m infra.mailsink FOLDER PORT: until SIGTERM
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # before the server's thread starts, which inherits it
    sink = MailSink(Path(sys.argv[1]), int(sys.argv[2])).start()
    signal.sigwait(stop)
    sink.stop()
