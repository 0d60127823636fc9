"""A service's subscriptions follow from the message types of its use-case table."""

from collections import defaultdict
from collections.abc import Iterable

from contracts.topics import COMMAND_TOPICS, topic_of
from services.runtime.messages import Subscription


def subscriptions_for(message_types: Iterable[type]) -> list[Subscription]:
    """One subscription per topic the types travel on. Command topics are strict (a type nobody handles is
    dead-lettered); on event topics the types a service does not read are passed over."""
    by_topic: dict[str, dict[str, type]] = defaultdict(dict)
    for message_type in message_types:
        by_topic[topic_of(message_type)][message_type.__name__] = message_type
    return [Subscription(topic, models, strict=topic in COMMAND_TOPICS) for topic, models in by_topic.items()]
