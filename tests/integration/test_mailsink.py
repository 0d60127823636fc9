"""The local mail sink, as the notification service's mailer talks to it: mail after mail on one session,
kept byte for byte (dots and non-ASCII included), unknown mailboxes refused without ending the session."""

import pytest

from infra.mailsink import MailSink
from infra.ports import free_port
from services.notification.channels import Mailer, Outgoing, Permanent


def mail(n: int, to: str, subject: str = "Your order", body: str = "Thank you.\n") -> Outgoing:
    return Outgoing(f"n-{n}", f"o-{n}", "c-1", to, "order_confirmed", subject, body)


async def test_one_session_carries_many_mails_each_kept_as_sent(tmp_path):
    sink = MailSink(tmp_path / "mail", port=free_port(), unknown={"dee@example.com"}).start()
    mailer = Mailer(sink.url, "orders@orderflow.example")
    try:
        await mailer.open()
        body = ".a line that starts with a dot\n..and two\n.\nlast line\n"
        await mailer.send(mail(1, "ann@example.com", "Desk Lämp — backordered", body))
        with pytest.raises(Permanent, match="User unknown"):
            await mailer.send(mail(2, "dee@example.com"))
        await mailer.send(mail(3, "bob@example.com", body=""))
        for n in range(4, 54):
            await mailer.send(mail(n, "cy@example.com"))
    finally:
        await mailer.close()
        sink.stop()

    mails = sink.mails()
    assert [m["Message-ID"] for m in mails] == [f"<n-{n}@orderflow>" for n in (1, 3, *range(4, 54))]
    first = mails[0]
    assert first["To"] == "ann@example.com" and first["Subject"] == "Desk Lämp — backordered"
    assert first.get_content().replace("\r\n", "\n") == body
    assert mails[1].get_content() == ""


async def test_stopping_ends_the_sessions_clients_keep_open(tmp_path):
    sink = MailSink(tmp_path / "mail", port=free_port()).start()
    mailer = Mailer(sink.url, "orders@orderflow.example")
    await mailer.open()
    await mailer.send(mail(1, "ann@example.com"))
    sink.stop()  # returns, though the client has not quit

    assert len(sink.mails()) == 1
    await mailer.close()
