"""The services' database passwords stay out of what they write."""

from urllib.parse import urlsplit

from contracts.commands import RegisterProduct
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS
from tests.support import unique


async def test_no_service_log_holds_a_database_password(stack):
    sku = unique("sku")
    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Key", lead_time_days=3), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku)

    passwords = {urlsplit(url).password for url in stack.database.urls.values()}
    logs = {path.stem: path.read_text() for path in stack.logs.glob("*.log")}
    assert set(logs) == {"order", "inventory", "notification"} and all(logs.values())
    for service, text in logs.items():
        assert not [password for password in passwords if password in text], f"{service}.log shows a password"
