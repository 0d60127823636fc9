"""Topic names of contract v1, in one place."""

ORDERS_COMMANDS = "orders.commands"
ORDERS_EVENTS = "orders.events"
INVENTORY_COMMANDS = "inventory.commands"
INVENTORY_EVENTS = "inventory.events"
NOTIFICATIONS_EVENTS = "notifications.events"

COMMAND_TOPICS = (ORDERS_COMMANDS, INVENTORY_COMMANDS)
ALL = (ORDERS_COMMANDS, ORDERS_EVENTS, INVENTORY_COMMANDS, INVENTORY_EVENTS, NOTIFICATIONS_EVENTS)


def dead_letter(topic: str) -> str:
    """Where messages of `topic` that can never be handled are kept, with the error in their headers."""
    return f"{topic}.dlq"


def messages_on(topic: str) -> dict[str, type]:
    """The command or event types a topic carries, by name (none for a topic outside the contract)."""
    from contracts import commands, events

    return {ORDERS_COMMANDS: commands.ORDER_COMMANDS, INVENTORY_COMMANDS: commands.INVENTORY_COMMANDS,
            ORDERS_EVENTS: events.ORDER_EVENTS, INVENTORY_EVENTS: events.INVENTORY_EVENTS,
            NOTIFICATIONS_EVENTS: events.NOTIFICATION_EVENTS}.get(topic, {})


def topic_of(message_type: type) -> str:
    """The topic that carries a command or event type."""
    for topic in ALL:
        if messages_on(topic).get(message_type.__name__) is message_type:
            return topic
    raise ValueError(f"{message_type.__name__} is not a message of the contract")
