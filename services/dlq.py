"""Operating the dead-letter topics (`<topic>.dlq`): list the dead letters with why they are there, and re-drive
chosen ones to their original topic and partition, with the original key, value and headers.

Each re-driven record carries `orderflow.redriven-from: <dlq topic>/<partition>/<offset>`; before sending, the
original partition is read from the dead letter's time on, and a dead letter found there already is not sent
again. (A second delivery would be harmless anyway: the inbox takes a message id once, and the commands are
idempotent. The check keeps the topics and the DLQ counts telling the truth.)"""

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition

from services.runtime.dead_letters import DEAD_LETTER_MAX_BYTES, VALUE_LEFT_OUT
from services.runtime.settings import KafkaSettings

REDRIVEN_FROM = "orderflow.redriven-from"
DLQ_SUFFIX = ".dlq"
# Record times are the producers' clocks: the re-driven copy is looked for from a little before the dead letter.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class DeadLetter:
    record: ConsumerRecord

    @property
    def id(self) -> str:
        return f"{self.record.topic}/{self.record.partition}/{self.record.offset}"

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.record.timestamp / 1000, UTC)

    def header(self, name: str) -> str | None:
        value = next((v for k, v in self.record.headers or () if k == name), None)
        return value.decode(errors="replace") if value is not None else None

    @property
    def reason(self) -> str:
        return self.header("dlq.error") or ""

    @property
    def original(self) -> TopicPartition:
        """Where it came from: the `dlq.original.*` headers, else the DLQ topic's name and partition."""
        topic = self.header("dlq.original.topic") or self.record.topic.removesuffix(DLQ_SUFFIX)
        return TopicPartition(topic, int(self.header("dlq.original.partition") or self.record.partition))

    @property
    def value_left_out(self) -> bool:
        """Sent without its value, too large for the DLQ: there is nothing here to re-drive."""
        return not self.record.value and VALUE_LEFT_OUT in self.reason

    @property
    def original_offset(self) -> str:
        return self.header("dlq.original.offset") or "?"

    @property
    def origin(self) -> str:
        """Where it came from, as `topic/partition/offset`."""
        return f"{self.original.topic}/{self.original.partition}/{self.original_offset}"

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers to re-drive with: the original ones as they came (those copied in base64 decoded), without
        our `dlq.*` ones, and the mark of where this copy comes from."""
        encoded = set((self.header("dlq.base64") or "").split(",")) - {""}
        headers = []
        for key, value in self.record.headers or ():
            if key.startswith("dlq.") or key == REDRIVEN_FROM:
                continue
            headers.append((key, base64.b64decode(value) if key in encoded else value))
        return headers + [(REDRIVEN_FROM, self.id.encode())]

    def preview(self, width: int = 60) -> str:
        value = self.record.value or b""
        if not value:
            return "(no value)"
        try:
            text = value.decode()
        except UnicodeDecodeError:
            return f"({len(value)} bytes, not text)"
        text = " ".join(text.split())
        return text if len(text) <= width else f"{text[:width - 1]}…"


@dataclass(frozen=True)
class Filter:
    """Which dead letters: of an original topic, with a reason containing some text (any case), since when."""

    topic: str | None = None
    reason: str | None = None
    since: datetime | None = None

    def __call__(self, letter: DeadLetter) -> bool:
        return ((self.topic is None or letter.original.topic == self.topic)
                and (self.reason is None or self.reason.lower() in letter.reason.lower())
                and (self.since is None or letter.time >= self.since))


def parse_since(text: str) -> datetime:
    """`30m`, `2h`, `7d` ago, or an ISO 8601 time (UTC unless it says otherwise)."""
    if match := re.fullmatch(r"(\d+)([smhd])", text.strip()):
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
        return datetime.now(UTC) - timedelta(**{unit: int(match[1])})
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def read(kafka: KafkaSettings, which: Filter = Filter()) -> list[DeadLetter]:
    """The dead letters `which` selects, on every dead-letter topic, oldest first within each partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap_servers, **kafka.client_security())
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.endswith(DLQ_SUFFIX)
                  and (which.topic is None or t == which.topic + DLQ_SUFFIX)]
        partitions = sorted(TopicPartition(t["topic"], p["partition"])
                            for t in (await admin.describe_topics(topics) if topics else []) for p in t["partitions"])
    finally:
        await admin.close()
    records = await _read(kafka, dict.fromkeys(partitions, which.since))
    return [letter for letter in map(DeadLetter, records) if which(letter)]


async def redriven(kafka: KafkaSettings, letters: Sequence[DeadLetter]) -> set[str]:
    """The ids of those of `letters` already re-driven: named by a record of their original partition since
    the dead letter was written."""
    since: dict[TopicPartition, datetime] = {}
    for letter in letters:
        since[letter.original] = min(since.get(letter.original, letter.time), letter.time - CLOCK_SKEW)
    records = await _read(kafka, since)
    found = {v.decode(errors="replace") for r in records for k, v in r.headers or () if k == REDRIVEN_FROM and v}
    return found & {letter.id for letter in letters}


async def redrive(kafka: KafkaSettings, letters: Sequence[DeadLetter]) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """Send each of `letters` not re-driven before (and not without its value) to its original topic and
    partition; returns those sent and those passed over."""
    done = await redriven(kafka, letters)
    todo = [letter for letter in letters if letter.id not in done and not letter.value_left_out]
    producer = AIOKafkaProducer(bootstrap_servers=kafka.kafka_bootstrap_servers, acks="all",
                                enable_idempotence=kafka.kafka_enable_idempotence,
                                max_request_size=DEAD_LETTER_MAX_BYTES, **kafka.client_security())
    await producer.start()
    try:
        for letter in todo:  # one at a time, in order: a partition gets them as they first came
            await producer.send_and_wait(letter.original.topic, letter.record.value, key=letter.record.key,
                                         partition=letter.original.partition, headers=letter.original_headers())
    finally:
        await producer.stop()
    sent = {letter.id for letter in todo}
    return todo, [letter for letter in letters if letter.id not in sent]


async def _read(kafka: KafkaSettings, since: dict[TopicPartition, datetime | None]) -> list[ConsumerRecord]:
    """Every record of these partitions from the time given for each (None: the beginning) up to their end as
    it is now."""
    if not since:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=DEAD_LETTER_MAX_BYTES, **kafka.client_security())
    await consumer.start()
    try:
        consumer.assign(list(since))
        ends = await consumer.end_offsets(list(since))
        starts = await consumer.beginning_offsets(list(since))
        timed = {p: int(when.timestamp() * 1000) for p, when in since.items() if when is not None}
        if timed:
            for partition, found in (await consumer.offsets_for_times(timed)).items():
                starts[partition] = found.offset if found is not None else ends[partition]
        for partition, offset in starts.items():
            consumer.seek(partition, offset)
        records: list[ConsumerRecord] = []
        waiting, fetched = set(since), set()
        while waiting:
            for batch in (await consumer.getmany(*waiting, timeout_ms=500)).values():
                records += batch
            for partition in list(waiting):
                # The end is the high watermark of the first fetch too: Tansu answers ListOffsets with the first
                # offset of the last batch, plus one.
                if partition not in fetched and (highwater := consumer.highwater(partition)) is not None:
                    ends[partition] = max(ends[partition], highwater)
                    fetched.add(partition)
                if partition in fetched and await consumer.position(partition) >= ends[partition]:
                    waiting.discard(partition)
        return [r for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)]]
    finally:
        await consumer.stop()
