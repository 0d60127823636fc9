"""What telling each refused line once costs the notification handler: the time of its batches of status
events whose orders carry a refused line (read which were told, tell the new ones, note them) against the same
batches with no refusal, on a fresh database of the local PostgreSQL, without Kafka.

Each order is placed, then its statuses come, every order's first, then every order's second...:
OrderBackordered (its refusal told, in a lines_refused mail queued), OrderReadyToShip and OrderStatusChanged (the
refusal again, told already: read, nothing to mail). Batches of 500 messages, as the consumer's; the handler's
time only (the inbox's claim, the same for both, is not in it).

    uv run python -m benchmarks.notification_refusals --orders 5000
"""

import argparse
import asyncio
import time
import uuid
from datetime import date

import asyncpg

from contracts.commands import OrderLine
from contracts.envelope import Envelope
from contracts.events import (BackorderedLine, OrderBackordered, OrderPlaced, OrderReadyToShip, OrderStatusChanged,
                              RejectedLine)
from contracts.topics import ORDERS_EVENTS
from infra import postgres
from services.notification import handlers
from services.runtime import db
from services.runtime.messages import Message

BATCH = 500  # messages per handler transaction, as the consumer's BATCH_SIZE
ETA = date(2026, 12, 9)


def statuses(order_id: str, refused: bool) -> list:
    rejected = [RejectedLine(sku="GONE", reason="unknown_sku", message="GONE is not a product we sell")] if refused else []
    return [OrderBackordered(order_id=order_id, rejected_lines=rejected,
                             backordered_lines=[BackorderedLine(sku="ANVIL", quantity=1, estimated_ship_date=ETA)]),
            OrderReadyToShip(order_id=order_id, rejected_lines=rejected),
            OrderStatusChanged(order_id=order_id, status="shipped", rejected_lines=rejected)]


async def handle_all(conn: asyncpg.Connection, events: list) -> float:
    """Seconds the handler took over `events`, in batches."""
    took = 0.0
    for start in range(0, len(events), BATCH):
        messages = [Message(Envelope.wrap(e, source="benchmark"), e, ORDERS_EVENTS) for e in events[start:start + BATCH]]
        began = time.perf_counter()
        async with conn.transaction():
            await handlers.handle(conn, messages, eta_window_s=0)
        took += time.perf_counter() - began
    return took


async def measure(orders: int) -> None:
    admin_url, where = postgres.ensure_database()
    name = f"orderflow_refusals_{uuid.uuid4().hex[:8]}"
    url = await postgres.create_database(admin_url, name)
    try:
        login = db.local_url(url, "notification")
        await db.set_up(url, "notification", login)
        conn = await asyncpg.connect(login, server_settings=db.session_settings("notification"))
        print(f"{orders} orders a round, batches of {BATCH} messages ({where}, database {name})")
        for refused in (False, True, False, True):  # twice each, alternating: the second round on a warm server
            ids = [f"{'refused' if refused else 'plain'}-{uuid.uuid4().hex[:8]}-{i}" for i in range(orders)]
            await handle_all(conn, [OrderPlaced(order_id=o, customer_id="c", customer_email=f"{o}@example.com",
                                                lines=[OrderLine(sku="ANVIL", quantity=1)]) for o in ids])
            took = [await handle_all(conn, [statuses(o, refused)[step] for o in ids]) for step in range(3)]
            print(f"  {'with a refused line' if refused else 'no refused line    '}: "
                  + ", ".join(f"{type(e).__name__} {t / orders * 1e6:.0f} us" for e, t in zip(statuses("o", refused), took))
                  + " per event")
        await conn.close()
    finally:
        await postgres.drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=5000)
    asyncio.run(measure(parser.parse_args().orders))
