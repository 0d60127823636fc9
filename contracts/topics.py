"""Topic names of contract v1, in one place."""

ORDERS_COMMANDS = "orders.commands"
ORDERS_EVENTS = "orders.events"
INVENTORY_COMMANDS = "inventory.commands"
INVENTORY_EVENTS = "inventory.events"
NOTIFICATIONS_EVENTS = "notifications.events"

ALL = (ORDERS_COMMANDS, ORDERS_EVENTS, INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS)


def dead_letter(topic: str) -> str:
    """Where messages of `topic` that can never be handled are kept, with the error in their headers."""
    return f"{topic}.dlq"
