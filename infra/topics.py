"""Creates the public topics and their dead-letter topics with explicit partition counts (a topic
auto-created by a produce or subscribe would get whatever the broker defaults to)."""

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts import topics


async def create_topics(bootstrap_servers: str, partitions: int = 3) -> list[str]:
    names = [name for topic in topics.ALL for name in (topic, topics.dead_letter(topic))]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(n, partitions, 1) for n in missing])
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
