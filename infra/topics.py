"""Creates the public topics and their dead-letter topics with explicit partition counts and replication
(a topic auto-created by a produce or subscribe would get whatever the broker defaults to)."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts import topics
from services.runtime.dead_letters import DEAD_LETTER_MAX_BYTES

# How long every topic keeps its records, whatever the broker's default: the inbox must remember a message id
# for longer (INBOX_RETENTION_HOURS), so that nothing Kafka can still deliver is handled twice.
TOPIC_RETENTION = timedelta(days=7)
# A topic deletes its records a segment at a time, once the segment's newest is past the retention: rolled
# daily (the broker's default is weekly, which kept a record readable for up to 14 days), a record stays at most
# a day longer than the retention.
TOPIC_SEGMENT = timedelta(days=1)
TOPIC_CONFIG = {"retention.ms": str(int(TOPIC_RETENTION / timedelta(milliseconds=1))),
                "segment.ms": str(int(TOPIC_SEGMENT / timedelta(milliseconds=1)))}
# A dead letter carries a whole record of its topic plus headers: it must fit where the record did not have to.
DEAD_LETTER_CONFIG = TOPIC_CONFIG | {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}


def replication_for(brokers: int) -> tuple[int, int]:
    """The replication factor and min.insync.replicas for a cluster of `brokers`: each record on up to 3 of
    them, and acknowledged to an acks=all producer once on all but one, so one broker may fail without
    losing an acknowledged record or stopping writes."""
    replicas = min(3, brokers)
    return replicas, max(1, replicas - 1)


async def create_topics(bootstrap_servers: str, partitions: int = 3, names: Sequence[str] = topics.ALL,
                        **security: Any) -> list[str]:
    """Create the topics `names` and their dead-letter topics, those missing, replicated as the cluster's size
    allows (`replication_for`); returns the names created. `security`: the connection's, from
    KafkaSettings.client_security()."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **security)
    await admin.start()
    try:
        replicas, min_insync = replication_for(len((await admin.describe_cluster())["brokers"]))
        # One broker (the broker's default of 1 stands): Tansu takes no topic configs it does not know.
        replication = {"min.insync.replicas": str(min_insync)} if replicas > 1 else {}
        configs = {name: replication | config for topic in names
                   for name, config in ((topic, TOPIC_CONFIG), (topics.dead_letter(topic), DEAD_LETTER_CONFIG))}
        existing = set(await admin.list_topics())
        missing = [n for n in configs if n not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(n, partitions, replicas, topic_configs=configs[n])
                                           for n in missing])
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
