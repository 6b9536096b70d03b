"""Thin Kafka helpers: create a topic, produce JSON Lines or generated events, read end offsets,
find where a new consumer starts, and tell a transient Kafka failure from a permanent one.

Called by `provisioner dev produce|generate`, by the local runtime (`up` creates source topics and
reports lag), by the store consumer and its clients (`start_offsets`, `is_transient`) and by the integration tests.

Errors: a malformed event file raises `EventFileError` (a `ConfigurationError`: fix the input); a
Kafka that cannot be reached or fails a request raises `KafkaUnavailable` (an `UnavailableError`:
try again later). Both are `ProvisionerError`s, so a caller that only reports them catches that.

JSON Lines (`produce_jsonl`): one record per non-blank line, by `provisioner.pipeline.eventfile`'s
rules (an envelope with key/value/headers/partition/timestamp, or the value itself); a value is sent
as the line writes it. With `key_field`, a record without an envelope key takes its key from that
top-level field of the value (when present and not null).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provisioner.errors import ConfigurationError, is_retryable
from provisioner.pipeline.eventfile import ENVELOPE_KEYS, EventLine, EventLineError, parse_line
from provisioner.spec.timestamps import to_epoch_ms
from provisioner.stream.failures import KafkaUnavailable, from_kafka_python
from provisioner.stream.settings import KafkaSettings, KafkaTarget, kafka_python_config, settings_of

__all__ = [
    "ENVELOPE_KEYS",
    "EventFileError",
    "KafkaUnavailable",
    "OutgoingRecord",
    "broker_ready",
    "end_offsets",
    "ensure_topic",
    "is_transient",
    "outgoing_record",
    "parse_jsonl_line",
    "produce_jsonl",
    "produce_records",
    "start_offsets",
    "topic_start_offsets",
]

CLIENT_ID = "provisioner-dev"

if TYPE_CHECKING:
    from kafka import KafkaConsumer, TopicPartition


class EventFileError(ConfigurationError):
    """A line of an event file is malformed (not JSON, a bad key, timestamp, headers or partition)."""


def is_transient(error: BaseException) -> bool:
    """Whether retrying later may help: an error `provisioner.errors.is_retryable` says so of, any
    kafka-python error (a broker down, a timeout, a rebalance in progress), or a confluent-kafka
    one unless librdkafka calls it fatal or it is a bad argument or setting (a bug or a bad input)."""
    if is_retryable(error):
        return True
    from kafka.errors import KafkaError

    if isinstance(error, KafkaError):
        return True
    confluent = sys.modules.get("confluent_kafka")  # not loaded: not one of its errors
    if confluent is None or not isinstance(error, confluent.KafkaException):
        return False
    cause = error.args[0] if error.args else None
    if not isinstance(cause, confluent.KafkaError):
        return True
    permanent = (confluent.KafkaError._INVALID_ARG, confluent.KafkaError._INVALID_TYPE,
                 confluent.KafkaError._NOT_IMPLEMENTED, confluent.KafkaError._UNSUPPORTED_FEATURE)
    return not cause.fatal() and cause.code() not in permanent


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record to produce; `value` None is a tombstone; a `str` key is sent as UTF-8."""

    value: bytes | None
    key: str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    partition: int | None = None
    timestamp_ms: int | None = None


def outgoing_record(line: EventLine) -> OutgoingRecord:
    """The record to produce for a line of an event file."""
    return OutgoingRecord(value=line.value, key=line.key, headers=line.headers, partition=line.partition,
                          timestamp_ms=line.timestamp_ms)


def parse_jsonl_line(line: str | bytes, number: int = 1, key_field: str | None = None) -> OutgoingRecord | None:
    """The record of one JSON Lines line (None for a blank line); EventFileError naming the line
    when it cannot be one, including a value the consumer would refuse to decode."""
    raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
    try:
        event = parse_line(raw, number, key_field)
    except EventLineError as error:
        raise EventFileError(str(error)) from None
    if event is None:
        return None
    if event.refusal is not None:
        raise EventFileError(f"line {number}: {event.refusal}")
    return outgoing_record(event)


# -- admin ------------------------------------------------------------------------------------


def _failure(error: BaseException, settings: KafkaSettings, doing: str, *, operation: str = "DESCRIBE",
             topic: str | None = None) -> Exception:
    """A kafka-python error as ours: an access problem named, anything else KafkaUnavailable."""
    mapped = from_kafka_python(error, settings, operation=operation, topic=topic)
    return mapped if mapped is not None else KafkaUnavailable(f"{doing}: {type(error).__name__}: {error}")


def _admin(settings: KafkaSettings) -> Any:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        return KafkaAdminClient(**kafka_python_config(settings), client_id=CLIENT_ID, request_timeout_ms=15000)
    except (KafkaError, OSError) as error:
        raise _failure(error, settings, f"cannot reach Kafka at {settings.bootstrap}") from None


def broker_ready(target: KafkaTarget) -> bool:
    """Whether a broker answers a metadata request as `target` connects, and is unfenced (False
    for a refusal too: a broker still starting may not know its users yet)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(**kafka_python_config(settings_of(target)), request_timeout_ms=3000,
                                 bootstrap_timeout_ms=3000, client_id="provisioner-ready-probe")
    except (KafkaError, OSError):
        return False
    try:
        cluster = admin.describe_cluster()
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()
    return any(not broker.get("is_fenced", False) for broker in cluster.get("brokers") or [])


def ensure_topic(bootstrap: KafkaTarget, topic: str, partitions: int = 3) -> bool:
    """Create `topic` with `partitions` partitions (replication 1 on a one-node broker, else the
    broker's default) unless it exists; whether it was created. Waits until it has leaders."""
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    settings = settings_of(bootstrap)
    admin = _admin(settings)
    try:
        if topic in admin.list_topics():
            return False
        try:
            admin.create_topics({topic: {"num_partitions": partitions}}, wait_for_metadata=True)
        except TopicAlreadyExistsError:
            return False  # created concurrently by another process
        return True
    except (KafkaError, OSError) as error:
        raise _failure(error, settings, f"cannot create topic {topic!r}", operation="CREATE", topic=topic) from None
    finally:
        admin.close()


def end_offsets(bootstrap: KafkaTarget, topic: str, *, client: str = "kafka-python") -> dict[int, int]:
    """The next offset of every partition of `topic` (its end); KafkaUnavailable if it is missing.
    `client` "confluent" asks through librdkafka (a consumer process's own client)."""
    settings = settings_of(bootstrap)
    if client == "confluent":
        from provisioner.stream import confluent_admin

        return confluent_admin.end_offsets(settings, topic, CLIENT_ID)
    from kafka import TopicPartition
    from kafka.admin import OffsetSpec
    from kafka.errors import KafkaError, for_code

    admin = _admin(settings)
    try:
        described = admin.describe_topics([topic])
        partitions = sorted(p["partition_index"] for d in described if d["error_code"] == 0 for p in d["partitions"])
        if not partitions:
            # Without DESCRIBE on it a topic looks absent: say so instead.
            refused = [d["error_code"] for d in described if d["error_code"] != 0]
            if refused:
                raise for_code(refused[0])()
            raise KafkaUnavailable(f"topic {topic!r} does not exist")
        offsets = admin.list_partition_offsets({TopicPartition(topic, p): OffsetSpec.LATEST for p in partitions})
    except (KafkaError, OSError) as error:
        raise _failure(error, settings, f"cannot read the end offsets of {topic!r}", topic=topic) from None
    finally:
        admin.close()
    return {tp.partition: int(result.offset) for tp, result in offsets.items()}


def topic_start_offsets(target: KafkaTarget, topic: str, start_from: str) -> dict[int, int]:
    """Where reading `start_from` begins in every partition of `topic`, by the consumer's own rule
    (`start_offsets`), so a replay starts exactly where a new consumer would."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    settings = settings_of(target)
    try:
        client = KafkaConsumer(**kafka_python_config(settings), enable_auto_commit=False, request_timeout_ms=15000)
    except (KafkaError, OSError) as error:
        raise _failure(error, settings, f"cannot reach Kafka at {settings.bootstrap}") from None
    try:
        partitions = client.partitions_for_topic(topic) or set()
        return start_offsets(client, [TopicPartition(topic, p) for p in sorted(partitions)], start_from)
    except (KafkaError, OSError) as error:
        raise _failure(error, settings, f"cannot read the offsets of {topic!r}", topic=topic) from None
    finally:
        client.close()


def start_offsets(consumer: KafkaConsumer, partitions: list[TopicPartition], start_from: str) -> dict[int, int]:
    """Where a store with no position starts reading each of `partitions` (kafka-python
    TopicPartitions) per `source.startFrom`: `earliest`, `latest`, or an RFC 3339 timestamp (the
    first record at or after it; the end for a partition with none). Keyed by partition number."""
    if start_from == "earliest":
        offsets = consumer.beginning_offsets(partitions)
    elif start_from == "latest":
        offsets = consumer.end_offsets(partitions)
    else:
        found = consumer.offsets_for_times(dict.fromkeys(partitions, to_epoch_ms(start_from)))
        ends = consumer.end_offsets(partitions)
        offsets = {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in partitions}
    return {tp.partition: int(offset) for tp, offset in offsets.items()}


# -- producing --------------------------------------------------------------------------------


def produce_records(
    bootstrap: KafkaTarget,
    topic: str,
    records: Iterable[OutgoingRecord],
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Produce `records` to `topic` (acks=all, idempotent, batched); how many were acknowledged.

    `on_sent(n)` is called with the running count every 1000 records, for progress bars."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    settings = settings_of(bootstrap)
    try:
        # Large batches and a short linger: throughput for bulk loads, idempotence keeps order.
        producer = KafkaProducer(**kafka_python_config(settings), client_id=CLIENT_ID, acks="all",
                                 linger_ms=20, batch_size=512 * 1024, max_request_size=8 * 1024 * 1024)
    except (KafkaError, OSError) as error:
        raise _failure(error, settings, f"cannot reach Kafka at {settings.bootstrap}") from None
    failures: list[BaseException] = []
    count = 0
    try:
        for record in records:
            future = producer.send(
                topic,
                key=record.key.encode() if isinstance(record.key, str) else record.key,
                value=record.value,
                headers=[(k, v.encode()) for k, v in record.headers.items()] or None,
                partition=record.partition,
                timestamp_ms=record.timestamp_ms,
            )
            future.add_errback(failures.append)
            count += 1
            if on_sent is not None and count % 1000 == 0:
                on_sent(count)
            if failures:
                break
        producer.flush()
    except (KafkaError, OSError) as error:
        raise _failure(error, settings, f"producing to {topic!r} failed", operation="WRITE", topic=topic) from None
    finally:
        producer.close()
    if failures:
        raise _failure(failures[0], settings, f"producing to {topic!r} failed", operation="WRITE", topic=topic)
    if on_sent is not None:
        on_sent(count)
    return count


def produce_jsonl(
    bootstrap: KafkaTarget,
    topic: str,
    lines: Iterable[str],
    key_field: str | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Produce one record per non-blank JSON Lines line (see the module docstring); the count."""

    def records() -> Iterable[OutgoingRecord]:
        for number, line in enumerate(lines, start=1):
            record = parse_jsonl_line(line, number, key_field)
            if record is not None:
                yield record

    return produce_records(bootstrap, topic, records(), on_sent)
