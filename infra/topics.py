"""Creates the public topics and their dead-letter topics with explicit partition counts (a topic
auto-created by a produce or subscribe would get whatever the broker defaults to)."""

from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts import topics
from services.runtime.dead_letters import DEAD_LETTER_MAX_BYTES

# A dead letter carries a whole record of its topic plus headers: it must fit where the record did not have to.
DEAD_LETTER_CONFIG = {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}


async def create_topics(bootstrap_servers: str, partitions: int = 3, names: Sequence[str] = topics.ALL,
                        **security: Any) -> list[str]:
    """Create the topics `names` and their dead-letter topics, those missing; returns the names created.
    `security`: the connection's, from KafkaSettings.client_security()."""
    configs = {name: config for topic in names
               for name, config in ((topic, {}), (topics.dead_letter(topic), DEAD_LETTER_CONFIG))}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **security)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in configs if n not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(n, partitions, 1, topic_configs=configs[n]) for n in missing])
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        await admin.close()


if __name__ == "__main__":
    import asyncio
    import os

    from services.runtime.settings import load_kafka

    kafka = load_kafka()
    created = asyncio.run(create_topics(kafka.kafka_bootstrap_servers, int(os.environ.get("TOPIC_PARTITIONS", "3")),
                                        **kafka.client_security()))
    print(f"topics created on {kafka.kafka_bootstrap_servers}: {', '.join(created) or 'none (all existed)'}")
