"""`orderflow`, the command line for storefront engineers and operators: send commands, read an order's
status and a SKU's availability, follow the events readably, rebuild a service's read models.

    orderflow place ord-1 ann@example.com ANVIL:2:49.90 KETTLE:1
    orderflow ship ord-1 --carrier DHL --tracking JD0001
    orderflow status ord-1
    orderflow tail
    orderflow dead-letters list --topic inventory.commands --since 2h
    orderflow dead-letters redrive inventory.commands.dlq/0/12
"""

import argparse
import asyncio
import json
import os
import sys
import uuid
from decimal import Decimal

import httpx
from aiokafka.errors import KafkaError

from contracts import commands
from contracts.client import Client
from services import dlq
from services.runtime.settings import HTTP_PORTS, KafkaSettings, load_kafka


def _line(text: str) -> commands.OrderLine:
    sku, quantity, *price = text.split(":")
    return commands.OrderLine(sku=sku, quantity=int(quantity), unit_price=Decimal(price[0]) if price else None)


def _shipped(text: str) -> commands.ShipmentLine:
    sku, quantity = text.split(":")
    return commands.ShipmentLine(sku=sku, quantity=int(quantity))


def command(args: argparse.Namespace):
    """The command the arguments ask to send."""
    match args.verb:
        case "place":
            return commands.PlaceOrder(order_id=args.order_id, customer_id=args.customer or args.email,
                                       customer_email=args.email, lines=[_line(l) for l in args.lines],
                                       currency=args.currency, allow_backorder=not args.no_backorder)
        case "cancel":
            return commands.CancelOrder(order_id=args.order_id, sku=args.sku, reason=args.reason)
        case "ship":
            return commands.ShipOrder(order_id=args.order_id, shipment_id=args.shipment or f"shp-{uuid.uuid4().hex[:8]}",
                                      lines=[_shipped(l) for l in args.lines] or None, carrier=args.carrier,
                                      tracking_number=args.tracking)
        case "receive":
            return commands.ReceiveStock(receipt_id=args.receipt or f"rcpt-{uuid.uuid4().hex[:8]}", sku=args.sku,
                                         quantity=args.quantity, po_id=args.po)
        case "expect":
            return commands.ExpectReplenishment(po_id=args.po, sku=args.sku, quantity=args.quantity,
                                                expected_on=args.expected_on)
        case "register":
            return commands.RegisterProduct(sku=args.sku, name=args.name, lead_time_days=args.lead_time_days)
    raise ValueError(args.verb)


def readable(envelope, event) -> str:
    """One event on one line: when, what, and its fields."""
    fields = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in event.model_dump(mode="json").items())
    return f"{envelope.time:%H:%M:%S} {envelope.type:<26} {fields}"


async def run(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    if args.verb in ("status", "availability"):
        service, path = ("order", f"/orders/{args.order_id}") if args.verb == "status" else (
            "inventory", f"/availability/{args.sku}")
        port = os.environ.get(f"{service.upper()}_HTTP_PORT", HTTP_PORTS[service])
        async with httpx.AsyncClient(base_url=f"http://{args.http_host}:{port}") as http:
            answer = await http.get(path)
        print(json.dumps(answer.json(), indent=2))
        return 0 if answer.status_code == 200 else 1
    if args.verb == "dead-letters":
        return await dead_letters(args, kafka)
    if args.verb == "rebuild":
        from services import rebuild

        await rebuild.main(args.service)
        return 0
    async with Client(kafka.kafka_bootstrap_servers, source="orderflow-cli", idempotent=kafka.kafka_enable_idempotence,
                      **kafka.client_security()) as orderflow:
        if args.verb == "tail":
            async for envelope, event in orderflow.events(from_beginning=args.from_beginning):
                print(readable(envelope, event), flush=True)
            return 0
        sent = await orderflow.send(command(args))
        print(f"sent {sent.type} {sent.subject} (message id {sent.id})")
    return 0


async def dead_letters(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    which = dlq.Filter(args.topic, args.reason, dlq.parse_since(args.since) if args.since else None)
    letters = await dlq.read(kafka, which)
    if args.action == "list":
        done = await dlq.redriven(kafka, letters)
        print(f"{len(letters)} dead letters" + (f", {len(done)} of them re-driven" if done else ""))
        for letter in letters:
            key = (letter.record.key or b"").decode(errors="replace")
            print(f"{letter.id}  {letter.time:%Y-%m-%dT%H:%M:%SZ}  from {letter.origin}  key={key}"
                  + ("  (re-driven)" if letter.id in done else "")
                  + f"\n    reason: {letter.reason}\n    value:  {letter.preview()}")
        return 0
    if bool(args.ids) == args.all:
        raise ValueError("name the dead letters to re-drive (TOPIC/PARTITION/OFFSET, as listed), or --all of a filter")
    if args.ids:
        chosen = {letter.id: letter for letter in letters}
        if missing := [i for i in args.ids if i not in chosen]:
            raise ValueError(f"no such dead letter (or not matching the filter): {', '.join(missing)}")
        letters = [chosen[i] for i in args.ids]
    sent, passed = await dlq.redrive(kafka, letters)
    for letter in sent:
        print(f"re-driven {letter.id} to {letter.original.topic}/{letter.original.partition}")
    for letter in passed:
        why = f"its value was too large for the DLQ: send it again from {letter.origin}" if letter.value_left_out \
            else "re-driven before"
        print(f"passed over {letter.id}: {why}")
    print(f"{len(sent)} re-driven, {len(passed)} passed over")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="orderflow", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--bootstrap", help="Kafka's address; KAFKA_BOOTSTRAP_SERVERS (and the KAFKA_SECURITY_PROTOCOL, "
                     "KAFKA_SASL_*, KAFKA_SSL_* and KAFKA_ENABLE_IDEMPOTENCE settings) by default")
    top.add_argument("--http-host", default="127.0.0.1")
    verbs = top.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("place", help="place an order: lines as SKU:QUANTITY[:UNIT_PRICE]")
    p.add_argument("order_id")
    p.add_argument("email")
    p.add_argument("lines", nargs="+")
    p.add_argument("--customer")
    p.add_argument("--currency")
    p.add_argument("--no-backorder", action="store_true")
    p = verbs.add_parser("cancel", help="cancel an order, or one line of it")
    p.add_argument("order_id")
    p.add_argument("--sku")
    p.add_argument("--reason")
    p = verbs.add_parser("ship", help="the warehouse shipped an order: lines as SKU:QUANTITY, none for all")
    p.add_argument("order_id")
    p.add_argument("lines", nargs="*")
    p.add_argument("--shipment")
    p.add_argument("--carrier")
    p.add_argument("--tracking")
    p = verbs.add_parser("receive", help="stock arrived")
    p.add_argument("sku")
    p.add_argument("quantity", type=int)
    p.add_argument("--receipt")
    p.add_argument("--po")
    p = verbs.add_parser("expect", help="a purchase order will deliver on a date (YYYY-MM-DD)")
    p.add_argument("po")
    p.add_argument("sku")
    p.add_argument("quantity", type=int)
    p.add_argument("expected_on")
    p = verbs.add_parser("register", help="register a product")
    p.add_argument("sku")
    p.add_argument("name")
    p.add_argument("lead_time_days", type=int)
    p = verbs.add_parser("status", help="an order as a storefront sees it")
    p.add_argument("order_id")
    p = verbs.add_parser("availability", help="what a storefront should show for a SKU")
    p.add_argument("sku")
    p = verbs.add_parser("tail", help="follow the events, one readable line each")
    p.add_argument("--from-beginning", action="store_true")
    p = verbs.add_parser("dead-letters", help="list the dead letters, or re-drive them to their original topic")
    actions = p.add_subparsers(dest="action", required=True)
    for action in ("list", "redrive"):
        a = actions.add_parser(action, help="what is in the dead-letter topics, with why" if action == "list" else
                               "send dead letters again to their original topic, once")
        if action == "redrive":
            a.add_argument("ids", nargs="*", help="TOPIC/PARTITION/OFFSET of a dead letter, as listed")
            a.add_argument("--all", action="store_true", help="every dead letter that matches the filter")
        a.add_argument("--topic", help="of this original topic (e.g. orders.commands)")
        a.add_argument("--reason", help="whose reason contains this text")
        a.add_argument("--since", help="dead-lettered since: 30m, 2h, 7d ago, or an ISO 8601 time")
    p = verbs.add_parser("rebuild", help="rebuild a service's read models from its event store")
    p.add_argument("service", choices=("order", "inventory"))
    return top


def main() -> None:
    args = parser().parse_args()
    kafka = load_kafka(**({"kafka_bootstrap_servers": args.bootstrap} if args.bootstrap else {}))
    try:
        sys.exit(asyncio.run(run(args, kafka)))
    except KeyboardInterrupt:
        sys.exit(130)
    except (ValueError, httpx.HTTPError) as error:  # a command the contract refuses, a service not running
        sys.exit(f"orderflow: {error}")
    except KafkaError as error:
        hint = "; a broker without idempotent producers (Tansu) needs KAFKA_ENABLE_IDEMPOTENCE=false" \
            if kafka.kafka_enable_idempotence else ""
        sys.exit(f"orderflow: Kafka at {kafka.kafka_bootstrap_servers} does not answer: {error}{hint}")


if __name__ == "__main__":
    main()
