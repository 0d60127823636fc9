"""Planning wired into the inventory on real PostgreSQL and Kafka: demand and deliveries recorded from the
events a batch handles, a planning run that learns the lead time (ETAs move with it) and tells each finding
once, and the service's own periodic job publishing what it found."""

import asyncio
import contextlib
import json
from dataclasses import replace
from datetime import date, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from contracts.commands import (
    DiscontinueProduct,
    ExpectReplenishment,
    OrderLine,
    ReceiveStock,
    RegisterProduct,
    UpdateProduct,
)
from contracts.events import OrderPlaced
from contracts.topics import INVENTORY_COMMANDS, ORDERS_EVENTS
from infra.topics import create_topics
from services.inventory import app as inventory_app
from services.inventory import handlers as inventory
from services import plan as plan_command
from services.inventory import history, planner, projections, store
from services.inventory.planning import policy
from services.runtime import db
from services.runtime.messages import Subscription
from services.runtime.settings import Settings
from tests.integration.harness import new_topic, running
from tests.integration.helpers import message
from tests.integration.test_inventory_rows import assert_rows_equal_the_events_folded, whole
from tests.support import unique

START = date(2026, 9, 1)


async def handle(pool, messages, today):
    async with pool.acquire() as conn, conn.transaction():
        await inventory.handle(conn, messages, today)


def placed(order_id: str, quantity: int, sku: str = "A") -> OrderPlaced:
    return OrderPlaced(order_id=order_id, customer_id="c", customer_email="c@example.com",
                       lines=[OrderLine(sku=sku, quantity=quantity)])


async def a_month_of_demand(pool, sku: str = "A", daily: int = 4, late_by: int = 6) -> date:
    """A product with a 5-day lead time whose supplier delivers `late_by` days late, and `daily` units ordered
    every day for 28 days (more than the stock: some are backordered); returns the day after."""
    await handle(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Anvil", lead_time_days=5)),
                        message(INVENTORY_COMMANDS, ReceiveStock(receipt_id=f"{sku}-r0", sku=sku, quantity=60))], START)
    for n in range(28):
        today = START + timedelta(days=n)
        batch = [message(ORDERS_EVENTS, placed(f"{sku}-o{n}", daily, sku))]
        if n % 7 == 0:  # a purchase order every week, received 5 + late_by days later
            batch.append(message(INVENTORY_COMMANDS, ExpectReplenishment(
                po_id=f"{sku}-po{n}", sku=sku, quantity=20, expected_on=today + timedelta(days=5))))
        if n % 7 == 5 + late_by - 7 and n >= 7:
            po = n - (5 + late_by)
            batch.append(message(INVENTORY_COMMANDS, ReceiveStock(receipt_id=f"{sku}-r{po}", sku=sku, quantity=20,
                                                                  po_id=f"{sku}-po{po}")))
        await handle(pool, batch, today)
    return START + timedelta(days=28)


async def test_daily_demand_counts_backordered_units_and_purchase_orders_record_their_lead_time(pools):
    pool = await pools("inventory")
    today = await a_month_of_demand(pool)
    async with pool.acquire() as conn:
        demand = await history.demand(conn, 182, today)
        delivered, still_open = await history.supplier_orders(conn, ["A"])
    assert demand == {"A": [4] * 28}  # 112 ordered, though only 60 + what came was there
    async with pool.acquire() as conn:  # one SKU's, for its chart: not every SKU's read to keep one
        assert await history.demand(conn, 182, today, "A") == demand
        assert await history.demand(conn, 182, today, "B") == {}
    assert sorted(d.po_id for d in delivered["A"]) == ["A-po0", "A-po14", "A-po7"]
    assert {d.days for d in delivered["A"]} == {11}
    assert [o.po_id for o in still_open["A"]] == ["A-po21"]


async def test_a_planning_run_learns_the_lead_time_moves_etas_and_tells_each_finding_once(pools):
    pool = await pools("inventory")
    today = await a_month_of_demand(pool)
    findings = ["LeadTimeLearned", "ReplenishmentSuggested", "SupplierDelayDetected", "OverstockDetected"]
    assert await planner.run(pool, today, planner.in_process, policy.Settings()) == 1
    told = await pool.fetch("SELECT type, data FROM events WHERE type = ANY($1) ORDER BY position", findings)
    types = [r["type"] for r in told]
    assert types == ["LeadTimeLearned", "ReplenishmentSuggested"], types
    learned, suggested = (json.loads(r["data"]) for r in told)
    assert learned["lead_time_days"] > 5 and learned["on_time_rate"] == 0 and learned["deliveries"] == 3
    assert suggested["quantity"] > 0 and suggested["position"] <= suggested["reorder_point"]
    assert suggested["expected_on"] == str(today + timedelta(days=learned["lead_time_days"]))
    plan = (await history.plans(pool))[0]
    assert (plan["sku"], plan["status"], plan["planned_on"]) == ("A", "reorder", today)
    assert plan["daily_demand"] > 3 and len(plan["forecast"]) == planner.HORIZON_DAYS

    assert await planner.run(pool, today, planner.in_process, policy.Settings()) == 1
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = ANY($1)", findings) == 2  # nothing new

    # A backorder beyond what purchase orders cover is promised the learned lead time now.
    await handle(pool, [message(ORDERS_EVENTS, placed("big", 100))], today)
    eta = await pool.fetchval("SELECT eta FROM backorders WHERE sku = 'A' AND order_id = 'big'")
    assert eta == today + timedelta(days=learned["lead_time_days"])
    await assert_rows_equal_the_events_folded(pool)


async def test_the_service_plans_periodically_and_publishes_what_it_found_on_kafka(apache_kafka, pools):
    pool = await pools("inventory")
    sku = unique("PLAN")
    await a_month_of_demand(pool, sku=sku)
    commands = unique("inventory.commands-test")
    await create_topics(apache_kafka, partitions=1, names=[commands])
    events_topic = await new_topic(apache_kafka, "inventory.events-test")
    service = replace(inventory_app.SERVICE, subscriptions=[Subscription(commands, {}, strict=True)],
                      events_topic=events_topic)
    settings = Settings(service="inventory", kafka_bootstrap_servers=apache_kafka, inventory_database_url=pools.urls["inventory"],
                        kafka_session_timeout_ms=2000, planning_s=0.5)
    reader = AIOKafkaConsumer(events_topic, bootstrap_servers=apache_kafka, auto_offset_reset="earliest")
    await reader.start()
    try:
        async with running(service, settings):
            found = []
            async with asyncio.timeout(60):
                while "ReplenishmentSuggested" not in [json.loads(r.value)["type"] for r in found]:
                    found += [r for records in (await reader.getmany(timeout_ms=200)).values() for r in records]
            await asyncio.sleep(1.5)  # two more runs: nothing new is told
            found += [r for records in (await reader.getmany(timeout_ms=500)).values() for r in records]
    finally:
        await reader.stop()
    told = [json.loads(r.value) for r in found]
    suggestions = [e for e in told if e["type"] == "ReplenishmentSuggested"]
    assert len(suggestions) == 1 and suggestions[0]["data"]["sku"] == sku
    assert [r.key.decode() for r in found if json.loads(r.value)["type"] == "ReplenishmentSuggested"] == [sku]


async def test_make_plan_prints_a_table_per_sku_and_writes_the_chart_of_one(pools, monkeypatch, capsys, tmp_path):
    pool = await pools("inventory")
    await a_month_of_demand(pool)
    monkeypatch.setenv("INVENTORY_DATABASE_URL", pools.urls["inventory"])
    await plan_command.main(sku="A", chart=tmp_path / "a.png")
    out = capsys.readouterr().out.splitlines()
    lines = out[next(n for n, line in enumerate(out) if line.startswith("SKU ")):]  # after the log lines
    assert lines[0].split() == ["SKU", "available", "on", "order", "backordered", "forecast/day", "days", "of",
                                "cover", "safety", "stock", "reorder", "point", "status"]
    assert lines[2].split()[0] == "A" and lines[2].split()[-1] in {"reorder", "at_risk"}
    assert lines[-1] == f"chart of A: {tmp_path / 'a.png'}"
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")


async def test_one_instance_plans_at_a_time_and_each_finding_is_told_once(pools):
    """Every inventory instance runs the planning job: a run that starts while another is under way leaves
    the forecast and the findings to it, and the next run plans again."""
    pool = await pools("inventory")
    today = await a_month_of_demand(pool)
    forecasting, second_run_done = asyncio.Event(), asyncio.Event()
    forecasts = 0

    async def forecaster(histories, horizon):
        nonlocal forecasts
        forecasts += 1
        forecasting.set()
        await second_run_done.wait()  # the first run is under way while the second starts
        return await planner.in_process(histories, horizon)

    first = asyncio.create_task(planner.run(pool, today, forecaster, policy.Settings()))
    await forecasting.wait()
    assert await planner.run(pool, today, forecaster, policy.Settings()) is None
    second_run_done.set()
    assert await first == 1
    assert forecasts == 1
    told = await pool.fetch("SELECT type FROM events WHERE type = ANY($1) ORDER BY position",
                            ["LeadTimeLearned", "ReplenishmentSuggested", "SupplierDelayDetected", "OverstockDetected"])
    assert [r["type"] for r in told] == ["LeadTimeLearned", "ReplenishmentSuggested"]
    assert await planner.run(pool, today, planner.in_process, policy.Settings()) == 1  # the lock was given up


async def test_a_day_of_the_largest_orders_is_recorded_and_handled(pools):
    """Demand refused for want of stock is recorded too, and nothing else bounds it: a day of the largest
    orders the contract takes must not fail (and so dead-letter) the orders that carry it."""
    pool = await pools("inventory")
    await handle(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku="A", name="Anvil", lead_time_days=5,
                                                                    backorderable=False))], START)
    orders = 2_148  # of a million units each: past what a 32-bit integer holds
    await handle(pool, [message(ORDERS_EVENTS, placed(f"o{n}", 1_000_000)) for n in range(orders)], START)
    await handle(pool, [message(ORDERS_EVENTS, placed("one-more", 1_000_000))], START)
    async with pool.acquire() as conn:
        assert await history.demand(conn, 7, START + timedelta(days=1)) == {"A": [(orders + 1) * 1_000_000]}
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'OutOfStock'") == orders + 1
    assert await planner.run(pool, START + timedelta(days=1), planner.in_process, policy.Settings()) == 1
    plan = (await history.plans(pool))[0]
    assert plan["daily_demand"] > 2e9 and plan["status"] == "reorder"


async def test_learning_lead_times_of_many_skus_with_backorders_reloads_their_chunk_once(pools, monkeypatch):
    """A learned lead time moves the ETAs of the whole queue, which planning does not load up front. Every
    SKU of a chunk that needs its queue is reloaded in one go, not one reload of the chunk per SKU while
    all its roots are locked (orders for them wait)."""
    pool = await pools("inventory")
    skus = [f"S{n:02}" for n in range(20)]
    await handle(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku=s, name=s, lead_time_days=20)) for s in skus]
                 + [message(INVENTORY_COMMANDS, ExpectReplenishment(po_id=f"p-{s}", sku=s, quantity=5,
                                                                    expected_on=START + timedelta(days=3)))
                    for s in skus], START)
    await handle(pool, [message(INVENTORY_COMMANDS, ReceiveStock(receipt_id=f"r-{s}", sku=s, quantity=5, po_id=f"p-{s}"))
                        for s in skus], START + timedelta(days=3))
    for day in range(4, 10):  # more ordered than there is: every SKU has a queue
        await handle(pool, [message(ORDERS_EVENTS, placed(f"o{day}-{s}", 2, s)) for s in skus], START + timedelta(days=day))
    loads = []
    load = store.Batch.load

    async def counted(batch, wants):
        loads.append(sorted(wants))
        await load(batch, wants)

    monkeypatch.setattr(store.Batch, "load", counted)
    assert await planner.run(pool, START + timedelta(days=10), planner.in_process, policy.Settings()) == 20
    assert await pool.fetchval("SELECT count(DISTINCT stream_id) FROM events WHERE type = 'LeadTimeLearned'") == 20
    assert await pool.fetchval("SELECT count(DISTINCT stream_id) FROM events WHERE type = 'BackorderEtaChanged'") == 20
    assert loads == [skus, skus]
    async with pool.acquire() as conn:
        replayed = await inventory.replay_skus(conn)
    for sku in skus:
        live = await whole(pool, sku)
        live.changes = replayed[sku].changes = None
        assert live == replayed[sku]


async def test_a_discontinued_product_leaves_the_plan(pools):
    """Planning looks at products still sold; the plan must not keep telling people to reorder one that is not."""
    pool = await pools("inventory")
    today = await a_month_of_demand(pool)
    await planner.run(pool, today, planner.in_process, policy.Settings())
    assert [(r["sku"], r["status"]) for r in await history.plans(pool)] == [("A", "reorder")]
    await handle(pool, [message(INVENTORY_COMMANDS, DiscontinueProduct(sku="A"))], today)
    assert await planner.run(pool, today + timedelta(days=1), planner.in_process, policy.Settings()) == 0
    assert await history.plans(pool) == []


async def test_a_purchase_order_id_used_again_after_its_receipt_is_a_new_purchase_order_in_the_history(pools):
    """The domain takes a purchase order id again once the first was received (as the inbox does after its
    retention); its lead time is learned and its lateness watched like any other's."""
    pool = await pools("inventory")
    await handle(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku="A", name="Anvil", lead_time_days=5)),
                        message(INVENTORY_COMMANDS, ExpectReplenishment(po_id="po", sku="A", quantity=5,
                                                                        expected_on=START + timedelta(days=5)))], START)
    await handle(pool, [message(INVENTORY_COMMANDS, ReceiveStock(receipt_id="r1", sku="A", quantity=5, po_id="po"))],
                 START + timedelta(days=5))
    again = START + timedelta(days=30)
    await handle(pool, [message(INVENTORY_COMMANDS, ExpectReplenishment(po_id="po", sku="A", quantity=8,
                                                                        expected_on=again + timedelta(days=5)))], again)
    async with pool.acquire() as conn:
        _, still_open = await history.supplier_orders(conn, ["A"])
    assert still_open["A"] == [policy.OpenOrder("po", again, again + timedelta(days=5))]
    await handle(pool, [message(INVENTORY_COMMANDS, ReceiveStock(receipt_id="r2", sku="A", quantity=8, po_id="po"))],
                 again + timedelta(days=9))
    async with pool.acquire() as conn:
        delivered, still_open = await history.supplier_orders(conn, ["A"])
    assert sorted(d.days for d in delivered["A"]) == [5, 9] and not still_open


async def test_low_stock_is_at_or_below_the_computed_safety_stock_unless_one_is_set_by_hand(pools):
    pool = await pools("inventory")
    await handle(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku="L", name="Lamp", lead_time_days=5)),
                        message(INVENTORY_COMMANDS, ReceiveStock(receipt_id="L-r0", sku="L", quantity=300))], START)
    for n in range(28):  # 1 and 7 units on alternate days: a spread to keep safety stock for
        await handle(pool, [message(ORDERS_EVENTS, placed(f"L-o{n}", 7 if n % 2 else 1, "L"))], START + timedelta(days=n))
    today = START + timedelta(days=28)
    assert await planner.run(pool, today, planner.in_process, policy.Settings()) == 1
    computed = (await history.plans(pool))[0]["safety_stock"]
    assert computed > 0

    await handle(pool, [message(ORDERS_EVENTS, placed("L-down", 300 - 112 - computed - 1, "L"))], today)
    view = await projections.find(pool, "L")
    assert (view.available, view.low_stock) == (computed + 1, False)
    await handle(pool, [message(ORDERS_EVENTS, placed("L-last", 1, "L"))], today)
    assert (await projections.find(pool, "L")).low_stock

    await handle(pool, [message(INVENTORY_COMMANDS, UpdateProduct(sku="L", safety_stock=computed - 1))], today)
    assert not (await projections.find(pool, "L")).low_stock  # the product's own safety stock overrides
    await handle(pool, [message(INVENTORY_COMMANDS, UpdateProduct(sku="L", safety_stock=0))], today)
    assert (await projections.find(pool, "L")).low_stock  # computed again

    # Discontinued, it leaves the plan: its computed safety stock is no longer in effect, from the moment it is
    # discontinued, not only once the next planning run has forgotten its plan.
    await handle(pool, [message(INVENTORY_COMMANDS, DiscontinueProduct(sku="L"))], today)
    assert not (await projections.find(pool, "L")).low_stock
    await planner.run(pool, today, planner.in_process, policy.Settings())
    assert not (await projections.find(pool, "L")).low_stock


async def test_a_planning_run_cut_short_at_any_point_leaves_no_lock_behind(pools):
    """A run cancelled (the service stopping, a timeout) while it asks for the lock may hold it without knowing:
    the connection must not go back to the pool holding it, or no other instance would plan again (and this
    one only when it happens to draw that connection). Cancelled at points all over the run, every time the
    lock is free afterwards (within the moment the server takes to see a session closed)."""
    pool = await pools("inventory")
    outside = await asyncpg.connect(pools.urls["inventory"], server_settings=db.session_settings("inventory"))
    try:
        for attempt in range(300):
            task = asyncio.create_task(planner.run(pool, START, planner.in_process, policy.Settings()))
            await asyncio.sleep((attempt % 30) / 10_000)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for _ in range(100):  # a session ended by the client is gone once the server has seen it close
                if await outside.fetchval(planner.TRY_LOCK):
                    await outside.execute(planner.UNLOCK)
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"attempt {attempt}: the planning lock outlived its run")
        assert await planner.run(pool, START, planner.in_process, policy.Settings()) == 0  # and the pool still serves
    finally:
        await outside.close()


async def test_when_the_planning_instance_loses_its_connection_another_takes_over_and_nothing_is_told_twice(pools):
    """The instance planning dies or its lock's connection drops mid-run: the lock goes with the session, the
    next run of another instance plans, and what both find is told once (the SKUs are locked while deciding)."""
    first_instance = await pools("inventory")
    today = await a_month_of_demand(first_instance)
    second_instance = await db.connect_pool(pools.urls["inventory"], "inventory")
    forecasting, resume = asyncio.Event(), asyncio.Event()

    async def stalled_forecaster(histories, horizon):
        forecasting.set()
        await resume.wait()
        return await planner.in_process(histories, horizon)

    try:
        first = asyncio.create_task(planner.run(first_instance, today, stalled_forecaster, policy.Settings()))
        await forecasting.wait()
        assert await planner.run(second_instance, today, planner.in_process, policy.Settings()) is None
        assert await second_instance.fetchval(  # the planning lock is the only one in this test's database
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())") == 1
        for _ in range(100):
            if (planned := await planner.run(second_instance, today, planner.in_process, policy.Settings())) is not None:
                break
            await asyncio.sleep(0.01)
        assert planned == 1
        resume.set()
        with pytest.raises(asyncpg.InterfaceError, match="released back to the pool"):  # its lock's connection is gone
            await first
        told = await second_instance.fetch(
            "SELECT type FROM events WHERE type = ANY($1) ORDER BY position",
            ["LeadTimeLearned", "ReplenishmentSuggested", "SupplierDelayDetected", "OverstockDetected"])
        assert [r["type"] for r in told] == ["LeadTimeLearned", "ReplenishmentSuggested"]
        assert await planner.run(first_instance, today, planner.in_process, policy.Settings()) == 1
    finally:
        resume.set()
        await second_instance.close()


async def test_purchase_order_ids_with_commas_are_remembered_as_told(pools):
    """A po_id may hold any character but white space: what planning remembers of it (a delay told, the orders
    a suggestion saw) must come back from the database as the same ids, or each run tells it again."""
    pool = await pools("inventory")
    await handle(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku="C", name="Crate", lead_time_days=5)),
                        message(INVENTORY_COMMANDS, ExpectReplenishment(po_id='PO,7{"x"}', sku="C", quantity=10,
                                                                        expected_on=START + timedelta(days=5)))], START)
    for day in (30, 31, 32):
        await planner.run(pool, START + timedelta(days=day), planner.in_process, policy.Settings())
    told = await pool.fetch("SELECT data->>'po_id' AS po_id FROM events WHERE type = 'SupplierDelayDetected'")
    assert [r["po_id"] for r in told] == ['PO,7{"x"}']
    async with pool.acquire() as conn:
        assert (await history.memories(conn, ["C"]))["C"].delays == {'PO,7{"x"}'}
