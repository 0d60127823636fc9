"""The SKU aggregate as rows on real PostgreSQL: a batch loads the part of a long queue it needs, asks for
more when a decision reaches past it, and leaves rows that equal the events folded from the start."""

from datetime import date, timedelta
from functools import partial

from contracts.commands import AdjustStock, ExpectReplenishment, OrderLine, ReceiveStock, RegisterProduct
from contracts.events import CancellationRequested, OrderPlaced
from contracts.topics import INVENTORY_COMMANDS, ORDERS_EVENTS
from services.inventory import handlers as inventory
from services.inventory import store
from services.inventory.domain import supply
from services.inventory.store import Batch, Want
from tests.integration.helpers import message

TODAY = date(2026, 11, 25)


async def run(pool, messages, today=TODAY):
    async with pool.acquire() as conn, conn.transaction():
        await inventory.handle(conn, messages, today)


def placed(order_id: str, quantity: int = 1) -> OrderPlaced:
    return OrderPlaced(order_id=order_id, customer_id="c", customer_email="c@example.com",
                       lines=[OrderLine(sku="A", quantity=quantity)])


async def whole(pool, sku: str = "A"):
    async with pool.acquire() as conn, conn.transaction():
        batch = Batch(conn)
        await batch.load({sku: Want(head_rows=None, all_reservations=True)})
        return batch.skus[sku]


async def assert_rows_equal_the_events_folded(pool):
    live = await whole(pool)
    async with pool.acquire() as conn:
        replayed = (await inventory.replay_skus(conn))["A"]
    for state in (live, replayed):
        state.changes = None
    assert live == replayed
    assert [b.eta for b in live.head()] == [eta for _, eta in supply.etas(live, reach=None)]


async def test_a_receipt_that_fills_more_than_the_loaded_head_loads_more_and_fills_in_order(pools):
    pool = await pools("inventory")
    await run(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku="A", name="Anvil", lead_time_days=10)),
                     message(INVENTORY_COMMANDS, ExpectReplenishment(po_id="p1", sku="A", quantity=650,
                                                                     expected_on=date(2026, 12, 20)))])
    count = 3 * store.FIRST_HEAD_ROWS
    await run(pool, [message(ORDERS_EVENTS, placed(f"o{i:04}")) for i in range(count)])
    await run(pool, [message(INVENTORY_COMMANDS, ReceiveStock(receipt_id="r1", sku="A", quantity=600))])

    filled = await pool.fetch("SELECT data->>'order_id' AS o FROM events WHERE type = 'BackorderFulfilled' ORDER BY position")
    assert [r["o"] for r in filled] == [f"o{i:04}" for i in range(600)]
    state = await whole(pool)
    assert (state.on_hand, state.reserved, state.backordered) == (600, 600, count - 600)
    await assert_rows_equal_the_events_folded(pool)


async def test_cancelling_in_the_middle_of_a_long_queue_moves_only_the_etas_that_change(pools):
    pool = await pools("inventory")
    await run(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku="A", name="Anvil", lead_time_days=10)),
                     message(INVENTORY_COMMANDS, ExpectReplenishment(po_id="p1", sku="A", quantity=10,
                                                                     expected_on=date(2026, 12, 20)))])
    await run(pool, [message(ORDERS_EVENTS, placed(f"o{i:04}")) for i in range(2000)])
    await run(pool, [message(ORDERS_EVENTS, CancellationRequested(order_id="o0005", skus=["A"])),
                     message(ORDERS_EVENTS, CancellationRequested(order_id="o1500", skus=["A"]))])

    moved = await pool.fetch("SELECT data->>'order_id' AS o FROM events WHERE type = 'BackorderEtaChanged'")
    assert [r["o"] for r in moved] == ["o0010"]  # the first beyond the purchase order now counts on it
    assert await pool.fetchval("SELECT count(*) FROM backorders") == 1998
    await assert_rows_equal_the_events_folded(pool)


async def test_the_daily_review_moves_each_passed_eta_once(pools):
    pool = await pools("inventory")
    await run(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku="A", name="Anvil", lead_time_days=30)),
                     message(INVENTORY_COMMANDS, ExpectReplenishment(po_id="p1", sku="A", quantity=2,
                                                                     expected_on=date(2026, 12, 2)))])
    await run(pool, [message(ORDERS_EVENTS, placed("early", 2)), message(ORDERS_EVENTS, placed("late", 1))])
    later = date(2026, 12, 10)
    review = partial(inventory.review_overdue_etas, today=later)
    async with pool.acquire() as conn, conn.transaction():
        assert await review(conn) == 1
    async with pool.acquire() as conn, conn.transaction():
        assert await review(conn) == 0
    # The purchase order that did not come is expected at the next credible date, and "early" with it.
    late = await pool.fetch("SELECT data FROM events WHERE type = 'ReplenishmentRescheduled'")
    assert len(late) == 1 and '"overdue_on": "2026-12-10"' in late[0]["data"]
    moved = await pool.fetch("SELECT data FROM events WHERE type = 'BackorderEtaChanged'")
    assert len(moved) == 1 and '"early"' in moved[0]["data"]
    assert await pool.fetchval("SELECT eta FROM backorders WHERE order_id = 'early'") == later + timedelta(days=30)
    await assert_rows_equal_the_events_folded(pool)


async def test_a_sku_holds_more_units_than_a_32_bit_integer_counts(pools):
    """Each message is bounded (1,000,000 units a receipt or line, 100,000,000 a count), their sum per SKU is
    not: stock received, reserved and backordered past 2**31 - 1 is kept, and shown, like any other."""
    pool = await pools("inventory")
    await run(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku="A", name="Anvil", lead_time_days=10)),
                     message(INVENTORY_COMMANDS, AdjustStock(sku="A", counted_quantity=100_000_000, reason="count"))])
    receipts = 2**31 // 1_000_000 - 100 + 1
    await run(pool, [message(INVENTORY_COMMANDS, ReceiveStock(receipt_id=f"r{i}", sku="A", quantity=1_000_000))
                     for i in range(receipts)])
    on_hand = 100_000_000 + receipts * 1_000_000
    await run(pool, [message(ORDERS_EVENTS, placed(f"o{i}", 1_000_000)) for i in range(receipts + 100 + 1)])
    state = await whole(pool)
    assert on_hand > 2**31 - 1
    assert (state.on_hand, state.reserved, state.backordered) == (on_hand, on_hand, 1_000_000)
    shown = await pool.fetchrow("SELECT on_hand, reserved, available, backordered FROM availability WHERE sku = 'A'")
    assert tuple(shown) == (on_hand, on_hand, 0, state.backordered)
    await assert_rows_equal_the_events_folded(pool)
