"""Creates the public topics and their dead-letter topics with explicit partition counts (a topic
auto-created by a produce or subscribe would get whatever the broker defaults to)."""

from collections.abc import Sequence
from datetime import timedelta

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts import topics
from services.runtime.dead_letters import DEAD_LETTER_MAX_BYTES

# How long every topic keeps its records, whatever the broker's default: the inbox must remember a message id
# for longer (INBOX_RETENTION_HOURS), so that nothing Kafka can still deliver is handled twice.
TOPIC_RETENTION = timedelta(days=7)
TOPIC_CONFIG = {"retention.ms": str(int(TOPIC_RETENTION / timedelta(milliseconds=1)))}
# A dead letter carries a whole record of its topic plus headers: it must fit where the record did not have to.
DEAD_LETTER_CONFIG = TOPIC_CONFIG | {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}


async def create_topics(bootstrap_servers: str, partitions: int = 3, names: Sequence[str] = topics.ALL) -> list[str]:
    """Create the topics `names` and their dead-letter topics, those missing; returns the names created."""
    configs = {name: config for topic in names
               for name, config in ((topic, TOPIC_CONFIG), (topics.dead_letter(topic), DEAD_LETTER_CONFIG))}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
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

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    created = asyncio.run(create_topics(bootstrap, int(os.environ.get("TOPIC_PARTITIONS", "3"))))
    print(f"topics created on {bootstrap}: {', '.join(created) or 'none (all existed)'}")
