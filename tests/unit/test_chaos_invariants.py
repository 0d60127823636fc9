"""The chaos run's invariant checker on hand-made histories: it passes a consistent one, and finds each kind
of violation planted in it."""

import itertools
from dataclasses import replace

from contracts import topics
from infra.chaos.invariants import Mail, Observed, Record, check

_ids = itertools.count(1)


def event(type_: str, stream_id: str, cause: str = "", **data) -> Record:
    return Record(f"e{next(_ids)}", type_, data, stream_id, cause or f"m{next(_ids)}")


def history() -> Observed:
    """One order of two lines of LAMP and one of BULB: 2 LAMP from stock, 1 backordered then filled by a
    receipt; the order then ships the 2 and cancels the BULB line. Mailed: the backorder and the fill."""
    orders = [
        event("OrderPlaced", "o1", order_id="o1", lines=[{"sku": "LAMP", "quantity": 3}, {"sku": "BULB", "quantity": 1}]),
        event("OrderLineReserved", "o1", order_id="o1", sku="LAMP", quantity=2),
        event("OrderLineBackordered", "o1", order_id="o1", sku="LAMP", quantity=1),
        event("OrderLineReserved", "o1", order_id="o1", sku="BULB", quantity=1),
        event("OrderLineFulfilled", "o1", order_id="o1", sku="LAMP", quantity=1),
        event("OrderShipped", "o1", order_id="o1", shipment_id="s1", lines=[{"sku": "LAMP", "quantity": 2}]),
        event("OrderLineCancelled", "o1", order_id="o1", sku="BULB", released=1, backorder_cancelled=0, kept=0),
    ]
    receipt = "m-receipt"
    inventory = [
        event("StockReceived", "LAMP", sku="LAMP", quantity=2, receipt_id="r1"),
        event("StockReceived", "BULB", sku="BULB", quantity=5, receipt_id="r2"),
        event("StockReserved", "LAMP", order_id="o1", sku="LAMP", quantity=2),
        event("BackorderCreated", "LAMP", order_id="o1", sku="LAMP", quantity=1),
        event("StockReserved", "BULB", order_id="o1", sku="BULB", quantity=1),
        event("StockReceived", "LAMP", receipt, sku="LAMP", quantity=4, receipt_id="r3"),
        event("BackorderFulfilled", "LAMP", receipt, order_id="o1", sku="LAMP", quantity=1),
        event("StockShipped", "LAMP", order_id="o1", sku="LAMP", quantity=2),
        event("StockReleased", "BULB", order_id="o1", sku="BULB", quantity=1),
    ]
    notifications = [
        event("NotificationSent", "n1", notification_id="n1", order_id="o1", kind="backorder_created", channel="email"),
        event("NotificationSent", "n2", notification_id="n2", order_id="o1", kind="backorder_fulfilled", channel="email"),
    ]
    return Observed(
        topics={topics.ORDERS_EVENTS: list(orders), topics.INVENTORY_EVENTS: list(inventory),
                topics.NOTIFICATIONS_EVENTS: list(notifications)},
        stores={"order": orders, "inventory": inventory, "notification": notifications},
        order_lines=[line("LAMP", 3, fulfilled=1, shipped=2), line("BULB", 1, cancelled=1)],
        skus=[{"sku": "LAMP", "on_hand": 4, "reserved": 1, "backordered": 0},
              {"sku": "BULB", "on_hand": 5, "reserved": 0, "backordered": 0}],
        reservations=[{"sku": "LAMP", "order_id": "o1", "from_stock": 0, "filled": 1}],
        backorders=[],
        mails=[Mail("n1", "o1", "backorder_created"), Mail("n2", "o1", "backorder_fulfilled")],
        rebuilt={"order": {"orders": ([{"order_id": "o1", "status": "ready_to_ship"}],
                                      [{"order_id": "o1", "status": "ready_to_ship"}])}},
    )


def line(sku: str, quantity: int, **units) -> dict:
    return {"order_id": "o1", "sku": sku, "quantity": quantity, "rejection_reason": None} | {
        f: units.get(f, 0) for f in ("reserved", "backordered", "fulfilled", "shipped", "cancelled")}


def found(observed: Observed) -> list[tuple[str, str]]:
    return [(v.invariant, v.subject) for v in check(observed)]


def test_a_consistent_history_has_no_violation():
    assert check(history()) == []


def test_a_line_whose_units_do_not_add_up_is_found_in_the_events_and_in_the_projection():
    observed = history()
    del observed.stores["order"][2]  # the backorder never recorded: its fill leaves -1 waiting
    observed.topics[topics.ORDERS_EVENTS] = list(observed.stores["order"])
    observed.order_lines[0] |= {"shipped": 3}
    violations = check(observed)
    assert ("order line adds up", "o1 LAMP") in [(v.invariant, v.subject) for v in violations]
    details = " ".join(v.detail for v in violations if v.subject == "o1 LAMP")
    assert "backordered -1" in details and "projection: " in details


def test_a_line_left_undecided_after_quiet_does_not_add_up():
    observed = history()
    observed.stores["order"].append(
        event("OrderPlaced", "o2", order_id="o2", lines=[{"sku": "LAMP", "quantity": 1}]))
    observed.topics[topics.ORDERS_EVENTS] = list(observed.stores["order"])
    assert ("order line adds up", "o2 LAMP") in found(observed)


def test_stock_reserved_beyond_what_is_on_hand_is_found():
    observed = history()
    observed.stores["inventory"].insert(3, event("StockReserved", "LAMP", order_id="o9", sku="LAMP", quantity=1))
    observed.topics[topics.INVENTORY_EVENTS] = list(observed.stores["inventory"])
    violations = [v for v in check(observed) if v.invariant == "stock never over-allocated"]
    assert violations and violations[0].subject == "LAMP" and "reserved 3 > on hand 2" in violations[0].detail


def test_a_count_below_the_reservations_is_judged_with_the_revocations_it_brings():
    observed = history()
    count = "m-count"
    observed.stores["inventory"] += [
        event("StockAdjusted", "LAMP", count, sku="LAMP", counted_quantity=0, previous_on_hand=4, reason="count"),
        event("ReservationRevoked", "LAMP", count, order_id="o1", sku="LAMP", quantity=1),
    ]
    observed.topics[topics.INVENTORY_EVENTS] = list(observed.stores["inventory"])
    observed.skus[0] |= {"on_hand": 0, "reserved": 0, "backordered": 1}
    observed.reservations, observed.backorders = [], [{"sku": "LAMP", "order_id": "o1", "quantity": 1}]
    assert [v for v in check(observed) if v.invariant == "stock never over-allocated"] == []


def test_sku_rows_that_differ_from_the_events_are_found():
    observed = history()
    observed.skus[1] |= {"on_hand": 6}
    assert ("stock never over-allocated", "BULB") in found(observed)


def test_a_backorder_filled_twice_is_found():
    observed = history()
    fill = observed.stores["inventory"][6]
    observed.stores["inventory"].insert(7, replace(fill, id="e-again"))
    observed.topics[topics.INVENTORY_EVENTS] = list(observed.stores["inventory"])
    assert ("backorder filled at most once", "o1 LAMP") in found(observed)


def test_a_doubled_mail_is_found():
    observed = history()
    observed.mails.append(Mail("n2", "o1", "backorder_fulfilled"))
    violations = [v for v in check(observed) if v.invariant == "notification at most once"]
    assert len(violations) == 1 and "mailed 2 times" in violations[0].detail


def test_a_notification_recorded_sent_twice_is_found_but_a_republished_event_is_not():
    observed = history()
    sent = observed.topics[topics.NOTIFICATIONS_EVENTS]
    sent.append(sent[0])  # the relay published it again after a crash: the same event
    assert check(observed) == []
    sent.append(replace(sent[0], id="e-second"))
    observed.stores["notification"].append(sent[-1])
    assert ("notification at most once", "o1") in found(observed)


def test_a_mail_never_recorded_is_a_violation_unless_settled_in_doubt():
    observed = history()
    observed.mails.append(Mail("n3", "o1", "order_shipped"))
    assert ("notification at most once", "o1") in found(observed)
    observed.in_doubt = {("n3", "email")}
    assert check(observed) == []


def test_an_unpublished_event_is_found():
    observed = history()
    unpublished = observed.topics[topics.INVENTORY_EVENTS].pop(2)
    violations = [v for v in check(observed) if v.invariant == "every stored event published"]
    assert len(violations) == 1 and unpublished.id in violations[0].detail and violations[0].subject == "o1"


def test_a_projection_that_differs_from_its_rebuild_is_found():
    observed = history()
    live, rebuilt = observed.rebuilt["order"]["orders"]
    rebuilt[0] = rebuilt[0] | {"status": "backordered"}
    violations = [v for v in check(observed) if v.invariant == "projection rebuilt equals live"]
    assert len(violations) == 1 and violations[0].subject == "order orders" and "backordered" in violations[0].detail
