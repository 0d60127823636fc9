"""A local SMTP server that keeps each mail it receives as an .eml file a person can open.

It speaks the part of SMTP a mail client needs (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) as one
asyncio protocol on a thread of its own. It replaced aiosmtpd, whose coroutine per command cost the sink more
CPU per mail than the notification service spent sending it (benchmarks/notification_dispatch.py)."""

import asyncio
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Collection
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

MAX_LINE = 4096  # a command line longer than this is refused (RFC 5321 allows 512)
MAX_MAIL = 32 * 1024 * 1024
ADDRESS = re.compile(rb"^(?:MAIL FROM|RCPT TO):\s*<?([^<>\s]*)>?", re.IGNORECASE)
STUFFED_DOT = re.compile(rb"^\.", re.MULTILINE)  # a line starting with a dot came with one more (RFC 5321 4.5.2)


class _Session(asyncio.Protocol):
    """One client's connection: commands line by line, and the mail's data up to the line with a lone dot."""

    def __init__(self, folder: Path, unknown: Collection[str], open_sessions: set["_Session"]) -> None:
        self.folder = folder
        self.unknown = unknown
        self.open_sessions = open_sessions
        self.buffer = b""
        self.reading_data = False
        self.recipients: list[str] = []
        self.sender: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.open_sessions.add(self)
        transport.write(b"220 orderflow mail sink ESMTP\r\n")

    def connection_lost(self, error: Exception | None) -> None:
        self.open_sessions.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.transport.is_closing():
            if self.reading_data:
                if not self._read_data():
                    return
            elif (end := self.buffer.find(b"\r\n")) >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
                self._command(line)
            else:
                if len(self.buffer) > MAX_LINE:
                    self._reply("500 5.5.2 Line too long")
                    self.transport.close()
                return

    def _read_data(self) -> bool:
        """Take the mail if its end has come; whether it had."""
        if self.buffer.startswith(b".\r\n"):
            content, self.buffer = b"", self.buffer[3:]
        elif (end := self.buffer.find(b"\r\n.\r\n")) >= 0:
            content, self.buffer = self.buffer[:end + 2], self.buffer[end + 5:]
        else:
            if len(self.buffer) > MAX_MAIL:
                self._reply("552 5.3.4 Message too big")
                self.transport.close()
            return False
        self.reading_data = False
        name = f"{time.time_ns()}-{'_'.join(self.recipients)}.eml".replace("/", "_")
        (self.folder / name).write_bytes(STUFFED_DOT.sub(b"", content))
        self._reset()
        self._reply("250 Message accepted for delivery")
        return True

    def _command(self, line: bytes) -> None:
        verb = line[:4].upper()
        if verb == b"EHLO":
            self._reply("250-orderflow mail sink\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP")
        elif verb == b"HELO":
            self._reply("250 orderflow mail sink")
        elif verb == b"MAIL":
            if (address := ADDRESS.match(line)) is None:
                self._reply("501 5.5.4 Syntax: MAIL FROM: <address>")
            else:
                self._reset()
                self.sender = address[1].decode("utf-8", "replace")
                self._reply("250 OK")
        elif verb == b"RCPT":
            if self.sender is None:
                self._reply("503 5.5.1 Error: need MAIL command")
            elif (address := ADDRESS.match(line)) is None:
                self._reply("501 5.5.4 Syntax: RCPT TO: <address>")
            elif (recipient := address[1].decode("utf-8", "replace")) in self.unknown:
                # as a real server bounces a mailbox that does not exist, naming it
                self._reply(f"550 5.1.1 <{recipient}>: Recipient address rejected: User unknown")
            else:
                self.recipients.append(recipient)
                self._reply("250 OK")
        elif verb == b"DATA":
            if not self.recipients:
                self._reply("503 5.5.1 Error: need RCPT command")
            else:
                self.reading_data = True
                self._reply("354 End data with <CR><LF>.<CR><LF>")
        elif verb == b"RSET":
            self._reset()
            self._reply("250 OK")
        elif verb == b"NOOP":
            self._reply("250 OK")
        elif verb == b"QUIT":
            self._reply("221 Bye")
            self.transport.close()
        else:
            self._reply("502 5.5.2 Command not implemented")

    def _reset(self) -> None:
        self.sender, self.recipients = None, []

    def _reply(self, text: str) -> None:
        self.transport.write(text.encode() + b"\r\n")


class MailSink:
    def __init__(self, folder: Path, port: int = 8025, unknown: Collection[str] = ()) -> None:
        """`unknown`: addresses refused as mailboxes that do not exist (for tests of bounced mail)."""
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._port = port
        self._unknown = frozenset(unknown)
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self._port}"

    def start(self) -> "MailSink":
        """Listen on a thread of its own; returns once it does (or raises why it cannot)."""
        started = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._thread = threading.Thread(target=self._loop.run_forever, name="mail sink", daemon=True)
        self._thread.start()
        try:
            started.result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    async def _listen(self) -> None:
        self._server = await self._loop.create_server(lambda: _Session(self.folder, self._unknown, self._sessions),
                                                      "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            for session in list(self._sessions):  # clients keep their sessions open between mails
                session.transport.close()
            await self._server.wait_closed()

        if self._thread is None:
            return
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._thread = None

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
