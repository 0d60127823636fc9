"""GET /planning as people see it: the inventory service serving over HTTP, opened in a real headless
Debian chromium, which takes a screenshot; the test reads the page it rendered and the pixels it shows."""

import asyncio
import shutil
import subprocess
from dataclasses import replace
from datetime import timedelta

import pytest
import uvicorn
from PIL import Image

from contracts.commands import ReceiveStock, RegisterProduct
from contracts.topics import INVENTORY_COMMANDS, ORDERS_EVENTS
from infra.topics import create_topics
from services.inventory import app as inventory_app
from services.inventory import planner
from services.inventory.planning import policy
from services.inventory.planning.report import STATUS_COLOURS
from services.runtime.messages import Subscription
from services.runtime.service import build_app
from services.runtime.settings import Settings
from tests.conftest import free_port
from tests.integration.harness import new_topic
from tests.integration.helpers import message
from tests.integration.test_planning import a_month_of_demand, handle, placed
from tests.support import unique


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt when missing (never a downloaded browser build)."""
    if not shutil.which("chromium"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True,
                       env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return shutil.which("chromium")


async def browse(chromium: str, url: str, *args: str) -> bytes:
    browser = await asyncio.create_subprocess_exec(
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(browser.communicate(), 120)
    assert browser.returncode == 0
    return out


def colour(hex_: str) -> tuple[int, int, int]:
    return tuple(int(hex_[n:n + 2], 16) for n in (1, 3, 5))


async def test_the_planning_page_shows_each_sku_with_its_status_in_colour_and_a_chart(chromium, apache_kafka, pools,
                                                                                        tmp_path):
    pool = await pools("inventory")
    today = await a_month_of_demand(pool, sku="ANVIL")  # demand, late deliveries: reorder
    await handle(pool, [message(INVENTORY_COMMANDS, RegisterProduct(sku="BELL", name="Bell", lead_time_days=3)),
                        message(INVENTORY_COMMANDS, ReceiveStock(receipt_id="b1", sku="BELL", quantity=5000))],
                 today - timedelta(days=20))
    for n in range(20):  # one bell a day: 5000 in stock is overstock
        await handle(pool, [message(ORDERS_EVENTS, placed(f"b{n}", 1, sku="BELL"))], today - timedelta(days=20 - n))
    await planner.run(pool, today, planner.in_process, policy.Settings())

    commands = unique("inventory.commands-test")
    await create_topics(apache_kafka, partitions=1, names=[commands])
    service = replace(inventory_app.SERVICE, subscriptions=[Subscription(commands, {}, strict=True)],
                      events_topic=await new_topic(apache_kafka, "inventory.events-test"))
    settings = Settings(service="inventory", kafka_bootstrap_servers=apache_kafka, inventory_database_url=pools.urls["inventory"],
                        kafka_session_timeout_ms=2000)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(service, settings), host="127.0.0.1", port=port, log_config=None))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{port}/planning"
        dom = (await browse(chromium, url, "--dump-dom")).decode()
        screenshot = tmp_path / "planning.png"
        await browse(chromium, url, f"--screenshot={screenshot}", "--window-size=1200,1000")
    finally:
        server.should_exit = True
        await serving

    assert '<tr class="reorder"' in dom and ">ANVIL</a>" in dom
    assert '<tr class="overstock"' in dom and ">BELL</a>" in dom
    assert '<img id="chart" alt="ANVIL: demand, forecast and stock" src="data:image/png;base64,' in dom
    assert f"planned on {today}" in dom
    shown = Image.open(screenshot).convert("RGB")
    assert shown.size == (1200, 1000)
    pixels = {rgb for _, rgb in shown.getcolors(maxcolors=shown.width * shown.height)}
    assert colour(STATUS_COLOURS["reorder"]) in pixels and colour(STATUS_COLOURS["overstock"]) in pixels
    # The chart was drawn, not a broken image: its demand bars and forecast line are on the screen.
    assert colour("#9db4d3") in pixels and colour("#1f4e8c") in pixels
