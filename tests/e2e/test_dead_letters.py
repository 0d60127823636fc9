"""Operating the DLQ from the command line: a command dead-lettered for a reason that an operator then fixes is
listed with that reason, re-driven to its topic with its key, value and headers, handled, and never sent twice."""

from contracts.commands import DiscontinueProduct, RegisterProduct, UpdateProduct
from contracts.envelope import STRUCTURED_CONTENT_TYPE, Envelope
from contracts.topics import INVENTORY_COMMANDS, INVENTORY_EVENTS
from services.dlq import REDRIVEN_FROM
from tests.e2e.test_cli import orderflow
from tests.support import eventually, unique

DLQ = "inventory.commands.dlq"


async def dead_lettered(stack, sku: str, count: int) -> list:
    def there():
        mine = [r for r in stack.bus.events(DLQ) if r.key == sku.encode()]
        assert len(mine) == count, mine
        return mine
    return await eventually(there)


async def listed(stack, *filters: str) -> list[str]:
    code, out = await orderflow(stack, "dead-letters", "list", *filters)
    assert code == 0, out
    return out.splitlines()


async def test_a_command_for_an_unknown_product_is_redriven_once_the_product_is_registered(stack):
    sku = unique("sku")
    update = Envelope.wrap(UpdateProduct(sku=sku, name="Cast-iron kettle"), source="tests", subject=sku)
    odd_header = ("x-origin", b"\xff\xfewarehouse")  # not UTF-8: the DLQ keeps it in base64
    await stack.bus._producer.send_and_wait(INVENTORY_COMMANDS, update.to_bytes(), key=sku.encode(), headers=[
        ("content-type", STRUCTURED_CONTENT_TYPE.encode()), odd_header])
    [dead] = await dead_lettered(stack, sku, 1)
    assert dead.headers["dlq.error"] == f"UpdateProduct for {sku}: no such product"

    lines = await listed(stack, "--topic", INVENTORY_COMMANDS, "--reason", sku)
    assert lines[0] == "1 dead letters"
    [entry] = [line for line in lines if line.startswith(f"{DLQ}/")]
    letter_id = entry.split()[0]
    assert f"key={sku}" in entry and f"from {INVENTORY_COMMANDS}/{dead.headers['dlq.original.partition']}/" in entry
    assert f"    reason: UpdateProduct for {sku}: no such product" in lines
    assert any(line.startswith('    value:  {"specversion":"1.0"') for line in lines)

    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Kettle", lead_time_days=5), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku)
    code, out = await orderflow(stack, "dead-letters", "redrive", letter_id)
    assert code == 0 and f"re-driven {letter_id} to {INVENTORY_COMMANDS}/" in out, out

    updated = await stack.bus.wait_for(INVENTORY_EVENTS, "ProductUpdated", sku=sku)
    assert updated[0].data["name"] == "Cast-iron kettle" and updated[0].envelope["causationid"] == update.id
    [again] = [r for r in stack.bus.events(INVENTORY_COMMANDS) if r.headers.get(REDRIVEN_FROM) == letter_id]
    assert again.value == update.to_bytes() and again.key == sku.encode()
    assert again.headers["x-origin"] == odd_header[1].decode(errors="replace")
    assert not [k for k in again.headers if k.startswith("dlq.")]

    code, out = await orderflow(stack, "dead-letters", "redrive", letter_id)
    assert code == 0 and f"passed over {letter_id}: re-driven before" in out and "0 re-driven" in out, out
    lines = await listed(stack, "--topic", INVENTORY_COMMANDS, "--reason", sku)
    assert lines[0] == "1 dead letters, 1 of them re-driven" and lines[1].endswith("(re-driven)")
    # A sentinel behind both re-drives on the SKU's partition: had the second sent anything, it would be here.
    sentinel = await stack.bus.send(INVENTORY_COMMANDS, UpdateProduct(sku=sku, safety_stock=1), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductUpdated", sku=sku, count=2)
    assert [r.headers.get(REDRIVEN_FROM) for r in stack.bus.events(INVENTORY_COMMANDS)
            if r.key == sku.encode()] == [None, None, letter_id, None]  # update, register, re-drive, sentinel
    assert stack.bus.events(INVENTORY_EVENTS, "ProductUpdated", sku=sku)[1].envelope["causationid"] == sentinel.id


async def test_every_dead_letter_matching_a_filter_is_redriven_and_one_that_fails_again_comes_back(stack):
    sku, other = unique("sku"), unique("sku")
    await stack.bus.send(INVENTORY_COMMANDS, DiscontinueProduct(sku=sku, reason="supplier gone"), sku)
    await stack.bus.send(INVENTORY_COMMANDS, UpdateProduct(sku=sku, lead_time_days=9), sku)
    await stack.bus.send(INVENTORY_COMMANDS, UpdateProduct(sku=other, lead_time_days=9), other)
    await dead_lettered(stack, sku, 2)
    await dead_lettered(stack, other, 1)

    await stack.bus.send(INVENTORY_COMMANDS, RegisterProduct(sku=sku, name="Pan", lead_time_days=5), sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductRegistered", sku=sku)
    code, out = await orderflow(stack, "dead-letters", "redrive", "--all", "--reason", sku, "--since", "10m")
    assert code == 0 and "2 re-driven, 0 passed over" in out, out

    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductDiscontinued", sku=sku)
    await stack.bus.wait_for(INVENTORY_EVENTS, "ProductUpdated", sku=sku)
    assert stack.bus.events(INVENTORY_EVENTS, "ProductUpdated", sku=other) == []
    code, out = await orderflow(stack, "dead-letters", "redrive", "--all", "--reason", sku)
    assert "0 re-driven, 2 passed over" in out, out

    # The other SKU, still unknown, fails again: a new dead letter that tells where it was re-driven from.
    code, out = await orderflow(stack, "dead-letters", "redrive", "--all", "--reason", other)
    assert code == 0 and "1 re-driven" in out, out
    first, second = await dead_lettered(stack, other, 2)
    assert second.headers[REDRIVEN_FROM].startswith(f"{DLQ}/") and second.value == first.value


async def test_redrive_names_what_it_cannot_find(stack):
    code, out = await orderflow(stack, "dead-letters", "redrive", f"{DLQ}/0/999999999")
    assert code != 0 and "no such dead letter" in out
    code, out = await orderflow(stack, "dead-letters", "redrive")
    assert code != 0 and "--all" in out
