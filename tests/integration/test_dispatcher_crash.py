"""A notification dispatcher killed in the middle of its deliveries, on real PostgreSQL: what it had sent is
never sent again, and what it had not started goes out at once by another dispatcher."""

import asyncio
import contextlib

import asyncpg

from contracts.events import OrderConfirmed
from services.notification.channels import Outgoing
from services.notification.dispatch import Dispatcher
from services.runtime import db
from tests.integration.test_notification_service import Channel, Notifications, placed


class DiesWhileSending(Channel):
    """Accepts `accepted` notifications; the process sending the last of them dies before it hears back."""

    def __init__(self, accepted: int) -> None:
        super().__init__("email")
        self.accepted = accepted
        self.in_flight = asyncio.Event()

    async def send(self, n: Outgoing) -> None:
        self.sent.append(n)
        if len(self.sent) == self.accepted:
            self.in_flight.set()
            await asyncio.Event().wait()  # never answers: the process is killed meanwhile


async def test_a_killed_dispatcher_neither_repeats_what_it_sent_nor_holds_back_what_it_did_not_start(database_factory):
    database = database_factory()
    url = database.urls["notification"]
    pool = await db.connect_pool(url, "notification")
    dying_url = f"{url}{'&' if '?' in url else '?'}application_name=dying-dispatcher"
    dying_pool = await db.connect_pool(dying_url, "notification")
    service = Notifications(pool)
    orders = [f"o{i}" for i in range(1, 6)]
    await service.receive(*(placed(o, "LAMP") for o in orders))
    await service.receive(*(OrderConfirmed(order_id=o) for o in orders))

    dying = DiesWhileSending(accepted=3)
    dispatching = asyncio.create_task(Dispatcher(dying_pool, dying, on_recorded=lambda: None).dispatch_once())
    await asyncio.wait_for(dying.in_flight.wait(), 10)
    # SIGKILL: its sessions end with the process, and none of its code runs again.
    admin = await asyncpg.connect(database.admin_url)
    await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dying-dispatcher'")
    await admin.close()
    dispatching.cancel()
    with contextlib.suppress(BaseException):
        await dispatching
    dying_pool.terminate()

    await service.dispatch()

    assert [n.order_id for n in dying.sent] == ["o1", "o2", "o3"]
    assert [n.order_id for n in service.mails()] == ["o4", "o5"]  # at once, not after a lease; o3 not again
    recorded = sorted(r["order_id"] for r in await pool.fetch(
        "SELECT data->>'order_id' AS order_id FROM events WHERE type = 'NotificationSent'"))
    assert recorded == ["o1", "o2", "o4", "o5"]
    in_doubt = await pool.fetchrow("SELECT sent_at, failed_reason FROM notification_outbox WHERE order_id = 'o3'")
    assert in_doubt["sent_at"] is None and "may have been sent" in in_doubt["failed_reason"]
    await pool.close()
