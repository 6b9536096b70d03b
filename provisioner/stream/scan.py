"""Read a topic once, from a start to the end offsets it had when the read began, outside any group.

Who calls it: `provisioner deadletters` (the dead-letter topic), `provisioner test --dead-letters`
and `provisioner explain` (the source topic). It reads with the consumers' own client
(librdkafka, through confluent-kafka) and connection settings, so it works wherever they do; it
assigns partitions itself and never commits, so no consumer group is created or moved.

The end offsets are taken first: a topic that keeps growing is read up to where it was when the
command started, so a read always ends. A partition is done once its position reaches that end
(or the broker says it is at its end, which covers transaction markers at the tail).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from provisioner.errors import ProvisionerError
from provisioner.stream.client import FETCH_MAX_BYTES, FETCH_MAX_WAIT_MS, MAX_PARTITION_FETCH_BYTES
from provisioner.stream.failures import KafkaUnavailable, from_confluent
from provisioner.stream.settings import KafkaTarget, rdkafka_config, settings_of

__all__ = ["TopicMissing", "TopicRange", "scan_topic", "topic_range"]

BATCH = 5000
# `consume` waits this long for a full batch: short, so a small read ends as soon as it reached its end.
POLL_SECONDS = 0.1
# How long the first answers (partitions, offsets) may take before the read gives up.
REQUEST_TIMEOUT = 15.0

Progress = Callable[[int, int], None]


class TopicMissing(KafkaUnavailable):
    """The topic does not exist (a dead-letter topic is created with its first dead letter)."""


@dataclass(frozen=True, slots=True)
class TopicRange:
    """Where a read starts and ends in each partition (next offsets), fixed before reading."""

    topic: str
    starts: dict[int, int]
    ends: dict[int, int]

    @property
    def total(self) -> int:
        return sum(max(0, end - self.starts.get(p, end)) for p, end in self.ends.items())


def _consumer(target: KafkaTarget, error_sink: list[ProvisionerError], topic: str) -> Any:
    from confluent_kafka import Consumer

    from provisioner.stream.confluent import LIBRDKAFKA_LOGGER

    connection = settings_of(target)

    def on_error(error: Any) -> None:
        refused = from_confluent(error, connection, operation="READ", topic=topic)
        if refused is not None:
            error_sink.append(refused)

    # A group id is required by the client, but with `assign` and no commits no group is ever joined.
    return Consumer({
        **rdkafka_config(connection), "group.id": f"provisioner-scan-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False, "enable.auto.offset.store": False, "enable.partition.eof": True,
        "auto.offset.reset": "earliest", "client.id": "provisioner-scan", "log.connection.close": False,
        "fetch.wait.max.ms": FETCH_MAX_WAIT_MS, "max.partition.fetch.bytes": MAX_PARTITION_FETCH_BYTES,
        "fetch.max.bytes": FETCH_MAX_BYTES,
        "error_cb": on_error, "logger": LIBRDKAFKA_LOGGER,
    })


def _failure(error: BaseException, target: KafkaTarget, doing: str, topic: str,
             refused: list[ProvisionerError]) -> ProvisionerError:
    """A client error as ours: a refusal (credentials, an ACL, TLS) named, anything else unavailable."""
    if refused:
        return refused[0]
    mapped = from_confluent(error, settings_of(target), operation="READ", topic=topic)
    cause = error.args[0] if error.args else error
    text = cause.str() if hasattr(cause, "str") else str(cause)
    return mapped or KafkaUnavailable(f"{doing} {topic!r} at {settings_of(target).bootstrap}: {text}")


def topic_range(target: KafkaTarget, topic: str, *, partitions: Sequence[int] | None = None,
                since_ms: int | None = None) -> TopicRange:
    """The partitions of `topic` (or only `partitions`), from their beginning (or the first record
    at or after `since_ms`) to their end now. KafkaUnavailable when the topic does not exist."""
    from confluent_kafka import KafkaException, TopicPartition

    refused: list[ProvisionerError] = []
    consumer = _consumer(target, refused, topic)
    try:
        metadata = consumer.list_topics(topic, timeout=REQUEST_TIMEOUT)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            if refused:
                raise refused[0]
            raise TopicMissing(f"topic {topic!r} does not exist")
        numbers = sorted(found.partitions) if partitions is None else sorted(set(partitions))
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for number in numbers:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, number), timeout=REQUEST_TIMEOUT)
            starts[number], ends[number] = int(low), int(high)
        if since_ms is not None and numbers:
            asked = [TopicPartition(topic, number, since_ms) for number in numbers]
            for answer in consumer.offsets_for_times(asked, timeout=REQUEST_TIMEOUT):
                # -1: no record at or after the instant, so nothing to read there.
                starts[answer.partition] = ends[answer.partition] if answer.offset < 0 else int(answer.offset)
        return TopicRange(topic, starts, ends)
    except KafkaException as error:
        raise _failure(error, target, "cannot read the offsets of", topic, refused) from None
    finally:
        consumer.close()


def scan_topic(target: KafkaTarget, where: TopicRange, on_progress: Progress | None = None) -> Iterator[Any]:
    """Every record of `where`, each partition in offset order (partitions interleaved), as
    `pipeline.ops.RecordLike`s. `on_progress(read, total)` is called after every batch."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    from provisioner.stream.confluent import records_of

    topic = where.topic
    left = {p: end for p, end in where.ends.items() if where.starts.get(p, end) < end}
    total, done = where.total, 0
    if on_progress is not None:
        on_progress(0, total)
    if not left:
        return
    refused: list[ProvisionerError] = []
    consumer = _consumer(target, refused, topic)
    try:
        consumer.assign([TopicPartition(topic, p, where.starts[p]) for p in sorted(left)])
        heard = time.monotonic()
        while left:
            messages = consumer.consume(BATCH, POLL_SECONDS)
            if refused:
                raise refused[0]
            wanted = []
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        left.pop(message.partition(), None)
                        continue
                    raise KafkaException(error)
                partition = message.partition()
                end = left.get(partition)
                if end is None or message.offset() >= end:
                    continue  # past the end taken at start
                wanted.append(message)
                if message.offset() + 1 >= end:
                    del left[partition]
            if messages:
                heard = time.monotonic()
            elif time.monotonic() - heard > REQUEST_TIMEOUT:
                raise KafkaUnavailable(f"no records from {topic!r} at {settings_of(target).bootstrap} "
                                       f"for {REQUEST_TIMEOUT:g}s")
            done += len(wanted)
            yield from records_of(topic, wanted)
            if on_progress is not None:
                on_progress(min(done, total), total)
    except KafkaException as error:
        raise _failure(error, target, "cannot read", topic, refused) from None
    finally:
        consumer.close()
