"""The channels a notification goes out on: email over SMTP, and the storefront's webhook (JSON, signed
with HMAC-SHA256, the notification id as idempotency key so that a retry is never a second notification
at the receiver)."""

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from email import policy
from email.charset import QP, Charset
from email.header import Header
from email.mime.text import MIMEText
from urllib.parse import urlsplit

import aiosmtplib
import httpx


@dataclass(frozen=True)
class Outgoing:
    notification_id: str
    order_id: str
    customer_id: str
    customer_email: str
    kind: str
    subject: str
    body: str


UTF8_QUOTED_PRINTABLE = Charset("utf-8")
UTF8_QUOTED_PRINTABLE.body_encoding = QP
SMTP_COMPAT32 = policy.compat32.clone(linesep="\r\n")


class Temporary(Exception):
    """Not delivered now; try again later."""


class Permanent(Exception):
    """Never deliverable as it is (a refused address, a receiver that rejects it)."""


class Mailer:
    channel = "email"

    def __init__(self, smtp_url: str, mail_from: str) -> None:
        url = urlsplit(smtp_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 25
        self._mail_from = mail_from
        self._smtp: aiosmtplib.SMTP | None = None

    async def open(self) -> None:
        """Connect, unless still connected: one session carries mail after mail."""
        if self._smtp and self._smtp.is_connected:
            return
        self._smtp = aiosmtplib.SMTP(hostname=self._host, port=self._port, start_tls=False, timeout=10)
        try:
            await self._smtp.connect()
        except (OSError, aiosmtplib.SMTPException) as error:
            raise Temporary(f"mail server unavailable: {error}") from error

    async def close(self) -> None:
        if self._smtp and self._smtp.is_connected:
            try:
                await self._smtp.quit()
            except (OSError, aiosmtplib.SMTPException):
                self._smtp.close()
        self._smtp = None

    def _mail(self, n: Outgoing) -> bytes:
        """The mail as the server gets it. Built with the standard library's compat32 classes, not
        EmailMessage: its header registry parsed every header again and cost a millisecond a mail. UTF-8,
        quoted-printable (readable, and 7-bit whatever the server), headers encoded where not ASCII."""
        headers = {"From": self._mail_from, "To": n.customer_email, "Subject": n.subject,
                   "Message-ID": f"<{n.notification_id}@orderflow>", "X-Orderflow-Order-Id": n.order_id,
                   "X-Orderflow-Kind": n.kind}
        if any("\r" in value or "\n" in value for value in headers.values()):
            raise Permanent("a header would contain a line break")  # one that could add headers of its own
        mail = MIMEText(n.body, "plain", UTF8_QUOTED_PRINTABLE)
        for name, value in headers.items():
            mail[name] = value if value.isascii() else Header(value, "utf-8")
        return mail.as_bytes(policy=SMTP_COMPAT32)

    async def send(self, n: Outgoing) -> None:
        mail = self._mail(n)
        try:
            await self._smtp.sendmail(self._mail_from, [n.customer_email], mail)
        except aiosmtplib.SMTPRecipientsRefused as refused:
            raise Permanent(f"recipient refused: {refused.recipients}") from refused
        except aiosmtplib.SMTPResponseException as refused:
            error = f"{refused.code} {refused.message}"
            raise (Permanent(error) if refused.code >= 500 else Temporary(error)) from refused
        except (OSError, aiosmtplib.SMTPException) as error:
            raise Temporary(f"mail server failed: {error}") from error


def signature(secret: str, body: bytes) -> str:
    """The X-Orderflow-Signature header: HMAC-SHA256 of the exact body, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    channel = "webhook"

    def __init__(self, url: str, secret: str) -> None:
        self._url = url
        self._secret = secret
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        """A client, unless one is open: it keeps connections to the receiver alive across notifications."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5)

    async def close(self) -> None:
        if self._client:
            await self._client.aclose()
        self._client = None

    async def send(self, n: Outgoing) -> None:
        body = json.dumps(asdict(n) | {"channel": "webhook"}, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": n.notification_id,
            "X-Orderflow-Signature": signature(self._secret, body),
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise Temporary(f"webhook unreachable: {error!r}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise Temporary(f"webhook answered {response.status_code}")
        if response.status_code >= 400:
            raise Permanent(f"webhook refused it: {response.status_code} {response.text[:200]}")
