"""The `orderflow` command line against the running services: send commands, read status and availability,
follow the events."""

import asyncio
import json
import os
import sys
from urllib.parse import urlsplit

from contracts.topics import INVENTORY_EVENTS, ORDERS_EVENTS
from tests.support import unique


def cli_environment(stack) -> dict[str, str]:
    """What a user of the stack sets: the services' ports, and no idempotent producer on Tansu."""
    return os.environ | {f"{name.upper()}_HTTP_PORT": str(urlsplit(url).port) for name, url in stack.http.items()} | {
        "KAFKA_ENABLE_IDEMPOTENCE": str(stack.bus.idempotent).lower()}


async def orderflow(stack, *args: str, timeout: float = 30) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", "--bootstrap", stack.bus.bootstrap_servers,
                                                   *args, env=cli_environment(stack), stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, out.decode()


async def test_an_order_placed_and_shipped_from_the_command_line_is_followed_there(stack):
    sku, order_id = unique("sku"), unique("ord")
    assert (await orderflow(stack, "register", sku, "Kettle", "5"))[0] == 0
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku)
    assert (await orderflow(stack, "receive", sku, "3"))[0] == 0
    await stack.bus.wait_for(INVENTORY_EVENTS, "StockReceived", sku=sku)

    code, out = await orderflow(stack, "place", order_id, "cli@example.com", f"{sku}:2:9.90", "--currency", "EUR")
    assert code == 0 and f"sent PlaceOrder {order_id}" in out
    await stack.bus.wait_for(ORDERS_EVENTS, "OrderConfirmed", order_id=order_id)
    code, out = await orderflow(stack, "status", order_id)
    assert code == 0 and json.loads(out)["status"] == "confirmed"

    assert (await orderflow(stack, "ship", order_id, "--carrier", "DHL", "--tracking", "T-9"))[0] == 0
    shipped = await stack.bus.wait_for(ORDERS_EVENTS, "OrderShipped", order_id=order_id)
    assert shipped[0].data["tracking_number"] == "T-9" and shipped[0].data["complete"]
    code, out = await orderflow(stack, "availability", sku)
    assert code == 0 and json.loads(out)["on_hand"] == 1

    tail = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", "--bootstrap",
                                                stack.bus.bootstrap_servers, "tail", "--from-beginning",
                                                env=cli_environment(stack), stdout=asyncio.subprocess.PIPE)
    try:
        while order_id not in (line := (await asyncio.wait_for(tail.stdout.readline(), 30)).decode()) \
                or "OrderShipped" not in line:
            assert line, "orderflow tail exited"
        assert 'tracking_number="T-9"' in line
    finally:
        tail.terminate()
        await tail.wait()

    code, out = await orderflow(stack, "status", unique("nope"))
    assert code == 1 and "order not found" in out
    code, out = await orderflow(stack, "place", order_id, "not-an-email", f"{sku}:0")
    assert code != 0 and "quantity" in out
