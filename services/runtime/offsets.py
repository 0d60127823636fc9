"""Consumer offsets committed in the background, a few times a second, rather than after every batch: the next
batch no longer waits for a commit's round trip, and the broker writes one commit where it wrote dozens.

Only what the batches got through is committed, never a record in hand, so nothing is lost. What a crash or a
stop leaves uncommitted (at most `every_s` of batches) is delivered again, and the inbox drops it: the inbox
keeps message ids as long as the topics keep the messages (retention.py)."""

import asyncio
from collections.abc import Callable, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

log = structlog.get_logger()

COMMIT_EVERY_S = 0.2
# aiokafka retries a commit for as long as the broker is away: a stopping service or a rebalance must not wait
# for it. What was not committed is tried again with the next commit.
COMMIT_TIMEOUT_S = 5


class OffsetCommits(ConsumerRebalanceListener):
    def __init__(self, consumer: Callable[[], AIOKafkaConsumer | None], every_s: float = COMMIT_EVERY_S,
                 timeout_s: float = COMMIT_TIMEOUT_S):
        self._consumer = consumer  # the subscriber's, once started
        self._every_s = every_s
        self._timeout_s = timeout_s
        self._through: dict[TopicPartition, int] = {}  # per partition, the offset of the next record to handle
        # Rebalances so far: a batch taken before one does not speak for its partitions after it (`got_through`).
        self.rebalances = 0

    def got_through(self, records: Sequence[ConsumerRecord], held: dict[TopicPartition, int], rebalances: int) -> None:
        """A batch went through, except from the `held` offset on in those partitions. `rebalances`: the count
        when the batch was taken. A batch a rebalance overtook is not recorded: its partitions are another
        consumer's now, or ours again from the offset committed when they were revoked, which may since have
        moved on; what it got through comes again, and the inbox drops it."""
        if rebalances != self.rebalances:
            return
        for record in records:
            self._through[TopicPartition(record.topic, record.partition)] = record.offset + 1
        self._through.update(held)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            await self.commit()

    async def commit(self, partitions: set[TopicPartition] | None = None) -> None:
        """Commit what was got through (in `partitions`, or all assigned) since the last commit."""
        kafka = self._consumer()
        if kafka is None or not self._through:
            return
        assigned = kafka.assignment() if partitions is None else partitions
        offsets = {p: o for p, o in self._through.items() if p in assigned}
        if not offsets:
            return
        for partition in offsets:
            del self._through[partition]
        rebalances = self.rebalances
        try:
            await asyncio.wait_for(kafka.commit(offsets), self._timeout_s)
        except (KafkaError, TimeoutError) as error:  # a rebalance, or the broker away
            if rebalances == self.rebalances:  # still ours: tried again next time, unless a later batch moved on
                for partition, offset in offsets.items():
                    self._through.setdefault(partition, offset)
            log.info("offsets not committed", error=repr(error), partitions=len(offsets))

    async def on_partitions_revoked(self, revoked) -> None:
        # Before another consumer takes them over: it starts where these batches ended. What a batch still in
        # hand gets through is no longer ours to commit.
        self.rebalances += 1
        await self.commit(set(revoked))
        self._through.clear()

    async def on_partitions_assigned(self, assigned) -> None:
        pass
