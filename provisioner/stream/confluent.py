"""The confluent-kafka `StreamConsumer` (librdkafka): the default client, for speed.

librdkafka fetches and decodes on its own threads; `consume` hands over a list of Message objects.
Those have methods, not the attributes the pipeline reads, so each batch becomes `Record` tuples in
one pass of C-level maps (no Python frame per record). Rebalance callbacks run inside `consume`:
they only set the `Assignment` flag (an assignment is taken as the group gives it); the owner then
positions every partition from the store with `seek`, which assigns with explicit offsets (a plain
seek can fail with an erroneous-state error on a partition whose fetcher has not started yet). Auto
commit and partition-EOF events are off; any other error event in a batch is logged, fatal ones
raised. A broker that refuses us (authentication, authorization, TLS) is reported to `error_cb` or
as an error event; the consumer keeps that, mapped by `failures`, and raises it from `poll` or from
the offset look-up that would otherwise just time out, so the owner backs off and says why while
librdkafka keeps reconnecting. librdkafka's own log goes to the `provisioner.stream.librdkafka`
logger, repeats thinned; its debug contexts, which can print settings, stay off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import itemgetter, methodcaller
from typing import Any, NamedTuple, cast

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Message, TopicPartition

from provisioner.errors import ProvisionerError
from provisioner.pipeline.ops import RecordLike
from provisioner.stream.client import (
    FETCH_MAX_BYTES,
    FETCH_MAX_WAIT_MS,
    MAX_PARTITION_FETCH_BYTES,
    Assignment,
    BrokerTimeout,
)
from provisioner.stream.failures import from_confluent
from provisioner.stream.settings import KafkaTarget, rdkafka_config, settings_of
from provisioner.stream.startfrom import start_offsets

__all__ = ["ConfluentConsumer", "Record", "rdkafka_settings"]

log = logging.getLogger(__name__)
LIBRDKAFKA_LOGGER = logging.getLogger("provisioner.stream.librdkafka")
# librdkafka logs every failed connection attempt of every broker connection: during an outage,
# dozens a second. The status and the backoff already say Kafka is down.
REPEAT_SECONDS = 30.0
# How long a new store waits for the offsets it starts from before the consumer retries.
START_OFFSETS_TIMEOUT = 30.0

# kafka-python's names of the settings `consume` takes from the environment, in librdkafka's words.
_RDKAFKA_NAMES = {
    "request_timeout_ms": "socket.timeout.ms",
}
# A request for the end offsets or the topic's partitions that timed out, or found no broker.
_UNREACHABLE = frozenset({KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
                          KafkaError._WAIT_COORD, KafkaError.REQUEST_TIMED_OUT})


class Record(NamedTuple):
    """One record as `RecordLike` (a tuple: the cheapest object with named fields). What every
    record needs is copied out of its Message; the key and headers, which only some expressions
    and dead letters read, are asked of the Message when read."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes | None
    message: Message

    @property
    def key(self) -> bytes | None:
        return self.message.key()

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]:
        # A list of (name, value) pairs when consumed (a value may be None, as with kafka-python).
        return cast("Sequence[tuple[str, bytes]]", self.message.headers() or ())


_tuple_new = tuple.__new__
_error = methodcaller("error")
_partition = methodcaller("partition")
_offset = methodcaller("offset")
_timestamp = methodcaller("timestamp")
_milliseconds = itemgetter(1)
_value = methodcaller("value")


def records_of(topic: str, messages: Sequence[Message]) -> list[Record]:
    """`messages` (all of `topic`, none an error event) as Records, in the same order."""
    count = len(messages)
    return list(map(_tuple_new, repeat(Record, count), zip(
        repeat(topic, count), map(_partition, messages), map(_offset, messages),
        map(_milliseconds, map(_timestamp, messages)), map(_value, messages), messages, strict=True,
    )))


class RepeatFilter(logging.Filter):
    """Lets one line per facility and thread of librdkafka through every `seconds` (its log lines
    start "FACILITY [client] [thrd:NAME]: ...")."""

    def __init__(self, seconds: float = REPEAT_SECONDS, clock: Any = time.monotonic) -> None:
        super().__init__()
        self._seconds = seconds
        self._clock = clock
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        source = text.split("]: ", 1)[0] if "]: " in text else text
        now = self._clock()
        last = self._last.get(source)
        if last is not None and now - last < self._seconds:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[source] = now
        return True


LIBRDKAFKA_LOGGER.addFilter(RepeatFilter())


def rdkafka_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings in kafka-python's spelling (`session_timeout_ms`) in librdkafka's (`session.timeout.ms`);
    names with a dot are librdkafka's already."""
    return {_RDKAFKA_NAMES.get(name, name.replace("_", ".")): value for name, value in settings.items()}


class ConfluentConsumer:
    """A confluent-kafka Consumer subscribed to one topic (see `client.StreamConsumer`)."""

    def __init__(self, *, bootstrap: KafkaTarget, topic: str, group: str, client_id: str, assignment: Assignment,
                 settings: Mapping[str, Any]) -> None:
        self._topic = topic
        self._group = group
        self._connection = settings_of(bootstrap)
        self._assignment = assignment
        self._fatal: KafkaError | None = None
        # The last refusal (authentication, authorization, TLS) not yet raised by `poll`, and the
        # last one seen at all until records or an answer show it is over.
        self._refused: ProvisionerError | None = None
        self._last_refusal: ProvisionerError | None = None
        config: dict[str, Any] = {
            **rdkafka_config(self._connection),
            "group.id": group,
            "client.id": client_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "check.crcs": False,
            "fetch.wait.max.ms": FETCH_MAX_WAIT_MS,
            "max.partition.fetch.bytes": MAX_PARTITION_FETCH_BYTES,
            "fetch.max.bytes": FETCH_MAX_BYTES,
            # What librdkafka prefetches per partition: enough to keep consume() busy, bounded RSS.
            "queued.max.messages.kbytes": 32 * 1024,
            "log.connection.close": False,
            "logger": LIBRDKAFKA_LOGGER,
            "error_cb": self._on_error,
            **rdkafka_settings(settings),
        }
        self._consumer = Consumer(config)
        assignment.changed = True
        self._consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_revoke)

    # -- callbacks (inside consume) ---------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment.changed = True
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment.changed = True

    def _refusal(self, error: KafkaError) -> ProvisionerError | None:
        return from_confluent(error, self._connection, topic=self._topic, group=self._group)

    def _on_error(self, error: KafkaError) -> None:
        refused = self._refusal(error)
        if refused is not None:
            if self._refused is None or str(self._refused) != str(refused):
                log.warning("Kafka client: %s", refused)
            self._refused = self._last_refusal = refused
        elif error.fatal():
            self._fatal = error
            log.error("Kafka client: %s", error.str())
        elif error.code() in (KafkaError._TRANSPORT, KafkaError._RESOLVE):
            log.debug("Kafka client: %s", error.str())  # librdkafka's own log says it too
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            log.info("Kafka client: %s", error.str())
        else:
            log.warning("Kafka client: %s", error.str())

    # -- StreamConsumer ---------------------------------------------------------------------------

    def _tp(self, partition: int, offset: int | None = None) -> TopicPartition:
        if offset is None:
            return TopicPartition(self._topic, partition)
        return TopicPartition(self._topic, partition, offset)

    def poll(self, timeout: float, max_records: int) -> Sequence[RecordLike]:
        # consume(n, timeout) waits until it has n messages: take what is there, else wait for one
        # and whatever came with it, so a record is never held back for a fuller batch (the loop's
        # batchLatency decides how long a batch may wait).
        consume = self._consumer.consume
        messages = consume(max_records, 0)
        if not messages and timeout > 0:
            messages = consume(1, timeout)
            if messages and max_records > 1:
                messages += consume(max_records - 1, 0)
        if self._fatal is not None:
            raise KafkaException(self._fatal)
        if not messages:
            self._raise_refusal()
            return []
        self._refused = self._last_refusal = None
        if any(map(_error, messages)):
            messages = self._without_errors(messages)
        return records_of(self._topic, messages)

    def _without_errors(self, messages: list[Message]) -> list[Message]:
        kept: list[Message] = []
        for message in messages:
            error = message.error()
            if error is None:
                kept.append(message)
            elif (refused := self._refusal(error)) is not None:
                raise refused
            elif error.fatal():
                raise KafkaException(error)
            elif error.code() == KafkaError._PARTITION_EOF:
                continue
            elif error.code() == KafkaError._MAX_POLL_EXCEEDED:
                # Left the group for not polling in time: the partitions may be someone else's now.
                log.warning("Kafka client: %s", error.str())
                self._assignment.changed = True
            else:
                log.warning("Kafka %s[%s]: %s", message.topic(), message.partition(), error.str())
        return kept

    def assignment(self) -> list[int]:
        return sorted(tp.partition for tp in self._consumer.assignment())

    def seek(self, positions: Mapping[int, int]) -> None:
        # Assigning with offsets positions a partition whatever its fetcher's state.
        self._consumer.assign([self._tp(p, o) for p, o in sorted(positions.items())])

    def pause(self, partitions: Sequence[int]) -> None:
        self._consumer.pause([self._tp(p) for p in partitions])

    def resume(self, partitions: Sequence[int]) -> None:
        self._consumer.resume([self._tp(p) for p in partitions])

    def commit(self, positions: Mapping[int, int]) -> None:
        self._consumer.commit(offsets=[self._tp(p, o) for p, o in positions.items()], asynchronous=True)

    def start_offsets(self, partitions: Sequence[int], start_from: str) -> dict[int, int]:
        return start_offsets(_ConsumerOffsets(self), partitions, start_from)

    def end_offsets(self, partitions: Sequence[int] | None, timeout: float) -> dict[int, int]:
        if partitions is None:
            try:
                metadata = self._consumer.list_topics(self._topic, timeout=timeout)
            except KafkaException as error:
                raise self._unreachable(error) from None
            topic = metadata.topics.get(self._topic)
            if topic is not None and topic.error is not None and (refused := self._refusal(topic.error)) is not None:
                raise refused  # without DESCRIBE on the topic, it looks absent: say why instead
            partitions = sorted(topic.partitions) if topic is not None and topic.error is None else []
        if not partitions:
            return {}
        return self._list_offsets(partitions, OFFSET_END, timeout)

    def _list_offsets(self, partitions: Sequence[int], at: int, timeout: float) -> dict[int, int]:
        """ListOffsets for every partition in one request: at OFFSET_BEGINNING, OFFSET_END or a
        timestamp in epoch milliseconds (-1 where no record is that late)."""
        wanted = [self._tp(p, at) for p in partitions]
        try:
            found = self._consumer.offsets_for_times(wanted, timeout)
        except KafkaException as error:
            raise self._unreachable(error) from None
        offsets: dict[int, int] = {}
        for tp in found:
            if tp.error is not None:
                raise self._unreachable(KafkaException(tp.error))
            offsets[tp.partition] = tp.offset
        self._last_refusal = None
        return offsets

    def _raise_refusal(self) -> None:
        """Raise (once) the refusal librdkafka reported since the last call, if any."""
        refused, self._refused = self._refused, None
        if refused is not None:
            raise refused

    def _unreachable(self, error: KafkaException) -> Exception:
        """A failed request as ours: the broker's refusal when one was reported (a timed-out
        request to a broker that refuses us is that refusal), a timeout, or the error itself."""
        refused = self._refusal(error.args[0]) if error.args else None
        if refused is None:
            refused, self._refused = self._refused or self._last_refusal, None
        if refused is not None:
            return refused
        cause = error.args[0] if error.args else None
        if isinstance(cause, KafkaError) and cause.code() in _UNREACHABLE:
            return BrokerTimeout(cause.str())
        return error

    def high_watermarks(self) -> dict[int, int]:
        ends: dict[int, int] = {}
        for tp in self._consumer.assignment():
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                ends[tp.partition] = high
        return ends

    def close(self) -> None:
        self._consumer.close()


class _ConsumerOffsets:
    """`startfrom.OffsetLookup` through the consumer's own ListOffsets requests."""

    def __init__(self, consumer: ConfluentConsumer) -> None:
        self._consumer = consumer

    def beginnings(self, partitions: Sequence[int]) -> dict[int, int]:
        return self._consumer._list_offsets(partitions, OFFSET_BEGINNING, START_OFFSETS_TIMEOUT)

    def ends(self, partitions: Sequence[int]) -> dict[int, int]:
        return self._consumer._list_offsets(partitions, OFFSET_END, START_OFFSETS_TIMEOUT)

    def at_time(self, partitions: Sequence[int], epoch_ms: int) -> dict[int, int | None]:
        found = self._consumer._list_offsets(partitions, epoch_ms, START_OFFSETS_TIMEOUT)
        return {p: offset if offset >= 0 else None for p, offset in found.items()}
