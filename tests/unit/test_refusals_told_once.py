"""Every refused order line is told to the customer exactly once, in the first mail that can carry it: random
orders driven through the order and inventory domains (lines refused at various times, backorders, fills,
shipments, cancellations, outcomes in flight), each order's events fed to the notification decisions in order,
in batches, redelivered, with or without the inbox that drops what was handled."""

import re
from collections import defaultdict

from hypothesis import event, given, settings, target
from hypothesis import strategies as st

from contracts.commands import DiscontinueProduct
from services.inventory.domain import products
from services.inventory.domain.state import Sku
from services.notification import domain
from tests.unit import test_order_and_inventory_agree as agree

UNKNOWN = "X"  # never registered: every line of it is refused
SKUS = (*agree.SKUS, "C", UNKNOWN)


class World(agree.World):
    """The two services of test_order_and_inventory_agree with two more SKUs: C (registered, and discontinued
    by a step) and one that is no product."""

    placeable = SKUS

    def __init__(self, in_flight: bool) -> None:
        super().__init__(in_flight)
        for sku in ("C", UNKNOWN):
            self.to_orders[sku] = []
            self.skus[sku] = Sku(sku=sku)
        self.inventory("C", products.register_product(self.skus["C"], agree.RegisterProduct(
            sku="C", name="C", lead_time_days=3), agree.TODAY))



QUANTITIES = st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 3), st.sampled_from((0, 0, 1)))
step = st.one_of(
    st.tuples(st.just("place"), QUANTITIES, st.booleans()),
    st.tuples(st.just("place"), QUANTITIES, st.booleans()),
    st.tuples(st.just("receive"), st.sampled_from(("A", "B", "C")), st.integers(1, 8)),
    st.tuples(st.just("count"), st.sampled_from(("A", "B", "C")), st.integers(0, 6)),
    # The n-th order placed, modulo: -1 the latest, whose outcomes are most likely still in flight.
    st.tuples(st.just("cancel"), st.integers(-2, 15), st.none() | st.sampled_from(SKUS)),
    st.tuples(st.just("cancel"), st.integers(-2, 15), st.none() | st.sampled_from(SKUS)),
    st.tuples(st.just("ship"), st.integers(-2, 15), st.none()),
    st.tuples(st.just("ship"), st.integers(-2, 15), st.none()),
    st.tuples(st.just("discontinue"), st.sampled_from(("A", "B", "C")), st.none()),
    st.tuples(st.just("deliver"), st.integers(1, 6), st.none()),
    st.tuples(st.just("deliver"), st.integers(1, 6), st.none()),
)

# What a mail names as refused: the confirmation's sentences, the other mails' list under "We could not order:".
CONFIRMED_REFUSAL = re.compile(r"^We could not accept (\S+): (.*)\.$", re.M)
LISTED_REFUSAL = re.compile(r"^  - (\S+): (.*)$", re.M)


def refusals_named(notification: domain.Notification) -> list[tuple[str, str]]:
    """(SKU, message) of each refused line the mail tells."""
    if notification.kind == "order_confirmed":
        return CONFIRMED_REFUSAL.findall(notification.body)
    if "We could not order:\n" not in notification.body:
        return []
    return LISTED_REFUSAL.findall(notification.body.split("We could not order:\n", 1)[1])


class NotificationService:
    """What the handler keeps between batches (the inbox, the outbox, the refusals told), over the domain's
    `decide_each`: the handler's transaction, without the database."""

    def __init__(self, inbox: bool) -> None:
        self.inbox = inbox
        self.handled: set[str] = set()
        self.outbox: dict = {}  # notification id: (notification, id of the message that caused it)
        self.told: dict[str, set[str]] = defaultdict(set)

    def handle(self, batch: list[tuple[object, str]]) -> None:
        if self.inbox:  # the first of each message id not handled before, as inbox.claim
            fresh: dict[str, tuple[object, str]] = {}
            for event, cause in batch:
                if cause not in self.handled:
                    fresh.setdefault(cause, (event, cause))
            batch = list(fresh.values())
            self.handled |= fresh.keys()
        notifications, newly_told = domain.decide_each(batch, self.told)
        for (_, cause), notification in zip(batch, notifications):
            if notification:
                self.outbox.setdefault(notification.notification_id, (notification, cause))
        for order_id, sku, notification_id in newly_told:
            # The handler's insert would find another batch's row here, and retry: one consumer never does.
            assert sku not in self.told[order_id], (order_id, sku)
            assert notification_id in self.outbox
            self.told[order_id].add(sku)


def deliver(events: list[tuple[object, str]], service: NotificationService, draw) -> None:
    """The events in order, in batches of random size; after a batch the consumer may go back to an earlier
    offset (it committed the batch but not its offset), so a tail is delivered again; a record may also come
    twice within one batch."""
    position = 0
    while position < len(events):
        size = draw(st.integers(1, 4))
        batch = events[position:position + size]
        if batch and draw(st.booleans()):  # seen again after it was seen: the copy comes later
            again = draw(st.integers(0, len(batch) - 1))
            batch.insert(draw(st.integers(again + 1, len(batch))), batch[again])
        service.handle(batch)
        position += size
        if draw(st.integers(0, 3)) == 0:
            position = draw(st.integers(0, position))
            if draw(st.booleans()):
                service.handle(events[position:])  # everything from there again, at once
                position = len(events)


def check(world: World, service: NotificationService, events: dict[str, list[tuple[object, str]]]) -> None:
    told: dict[tuple[str, str], list] = defaultdict(list)
    for notification, cause in service.outbox.values():
        for sku, message in refusals_named(notification):
            told[(notification.order_id, sku)].append((message, notification, cause))
    for order_id, order in world.orders.items():
        refusals = {line.sku: line.rejection for line in order.lines if line.rejection}
        named = {sku for (o, sku) in told if o == order_id}
        assert named == set(refusals), f"told {sorted(named)} of {sorted(refusals)}:\n" + _story(events[order_id])
        for sku, rejection in refusals.items():
            [(message, notification, cause)] = told[(order_id, sku)]  # exactly once
            assert message == rejection.message, (message, rejection)
            # In the first mail that can carry it: decided from the first status event naming the line.
            first = next(c for e, c in events[order_id] if sku in {line.sku for line in domain.refused(e)})
            assert cause == first, f"{sku} told by {notification.kind} of {cause}:\n" + _story(events[order_id])


def _story(events: list[tuple[object, str]]) -> str:
    """An order's events in short: message id, type, and the refused SKUs it carries."""
    return "\n".join(f"{cause} {type(e).__name__} {sorted(l.sku for l in domain.refused(e))}" for e, cause in events)


def run(script: list, in_flight: bool, inbox: bool, rnd, draw) -> None:
    world = World(in_flight)
    agree.play(world, script, rnd)
    events = {order_id: [(event, f"{order_id}/{n}") for n, event in enumerate(recorded)]
              for order_id, recorded in world.recorded.items()}
    service = NotificationService(inbox)
    for order_events in events.values():
        deliver(order_events, service, draw)
    check(world, service, events)
    refused = [(o, e) for o, es in events.items() for e, _ in es if domain.refused(e)]
    event(f"refused lines: {min(len({(o, l.sku) for o, e in refused for l in domain.refused(e)}), 5)}+")
    event(f"status events carrying refusals: {min(len(refused), 6)}+")
    grew = {o for o, es in events.items()
            if len({frozenset(l.sku for l in domain.refused(e)) for e, _ in es if domain.refused(e)}) > 1}
    event(f"orders whose refusals grew: {min(len(grew), 3)}+")
    target(float(len(grew)), label="orders whose refusals grew")  # the rare case: search towards it
    kinds = {n.kind for n, _ in service.outbox.values() if refusals_named(n)}
    for kind in kinds:
        event(f"refusals told by {kind}")


@settings(max_examples=400, deadline=None)
@given(st.lists(step, min_size=10, max_size=50), st.booleans(), st.randoms(use_true_random=False), st.data())
def test_every_refused_line_is_told_once_in_the_first_mail_that_can_carry_it(script, inbox, rnd, data):
    run(script, in_flight=True, inbox=inbox, rnd=rnd, draw=data.draw)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=10, max_size=40), st.booleans(), st.data())
def test_every_refused_line_is_told_once_when_each_outcome_arrives_as_it_is_decided(script, inbox, data):
    run(script, in_flight=False, inbox=inbox, rnd=None, draw=data.draw)

