"""Thin Kafka helpers: create a topic, produce JSON Lines or generated events, read end offsets,
find where a new consumer starts, and tell a transient Kafka failure from a permanent one.

Called by `provisioner dev produce|generate`, by the local runtime (`up` creates source topics and
reports lag, `replay` finds where it starts), by a rebuild, by the store consumer (`is_transient`)
and by the integration tests. Each helper goes through the process's Kafka client
(`client.chosen_client`: confluent-kafka unless PROVISIONER_KAFKA_CLIENT says kafka-python; a
`client` argument overrides it, as a consumer told `--kafka-client` passes), implemented once per
client in `confluent_admin`/`confluent_produce` and `kafka_python_admin`.

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
from typing import Protocol

from provisioner.errors import ConfigurationError, is_retryable
from provisioner.pipeline.eventfile import ENVELOPE_KEYS, EventLine, EventLineError, parse_line
from provisioner.stream.client import CONFLUENT, chosen_client
from provisioner.stream.failures import KafkaUnavailable
from provisioner.stream.settings import KafkaSettings, KafkaTarget, settings_of

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
    "topic_start_offsets",
]

CLIENT_ID = "provisioner-dev"


class EventFileError(ConfigurationError):
    """A line of an event file is malformed (not JSON, a bad key, timestamp, headers or partition)."""


def is_transient(error: BaseException) -> bool:
    """Whether retrying later may help: an error `provisioner.errors.is_retryable` says so of, any
    kafka-python error (a broker down, a timeout, a rebalance in progress), or a confluent-kafka
    one unless librdkafka calls it fatal or it is a bad argument or setting (a bug or a bad input)."""
    if is_retryable(error):
        return True
    kafka_errors = sys.modules.get("kafka.errors")  # not loaded: not one of its errors
    if kafka_errors is not None and isinstance(error, kafka_errors.KafkaError):
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


# -- through the process's client ------------------------------------------------------------


class _Admin(Protocol):
    """What each client's admin module provides (`confluent_admin`, `kafka_python_admin`), in the
    package's errors."""

    def broker_ready(self, settings: KafkaSettings, client_id: str) -> bool: ...

    def ensure_topic(self, settings: KafkaSettings, topic: str, partitions: int, client_id: str) -> bool: ...

    def end_offsets(self, settings: KafkaSettings, topic: str, client_id: str) -> dict[int, int]: ...

    def topic_start_offsets(self, settings: KafkaSettings, topic: str, start_from: str,
                            client_id: str) -> dict[int, int]: ...


def _helpers(client: str | None) -> _Admin:
    """The admin module of `client`, else of the process's client (`client.chosen_client`)."""
    if chosen_client(client) == CONFLUENT:
        from provisioner.stream import confluent_admin

        return confluent_admin
    from provisioner.stream import kafka_python_admin

    return kafka_python_admin


def broker_ready(target: KafkaTarget, *, client: str | None = None) -> bool:
    """Whether a broker answers a metadata request as `target` connects, and is unfenced (False
    for a refusal too: a broker still starting may not know its users yet)."""
    return _helpers(client).broker_ready(settings_of(target), "provisioner-ready-probe")


def ensure_topic(bootstrap: KafkaTarget, topic: str, partitions: int = 3, *, client: str | None = None) -> bool:
    """Create `topic` with `partitions` partitions (the broker's default replication) unless it
    exists; whether it was created. Waits until it has leaders."""
    return _helpers(client).ensure_topic(settings_of(bootstrap), topic, partitions, CLIENT_ID)


def end_offsets(bootstrap: KafkaTarget, topic: str, *, client: str | None = None) -> dict[int, int]:
    """The next offset of every partition of `topic` (its end); KafkaUnavailable if it is missing."""
    return _helpers(client).end_offsets(settings_of(bootstrap), topic, CLIENT_ID)


def topic_start_offsets(target: KafkaTarget, topic: str, start_from: str, *,
                        client: str | None = None) -> dict[int, int]:
    """Where reading `start_from` begins in every partition of `topic` (none for a missing topic),
    by the consumer's own rule (`startfrom.start_offsets`), so a replay starts exactly where a new
    consumer would."""
    return _helpers(client).topic_start_offsets(settings_of(target), topic, start_from, CLIENT_ID)


# -- producing --------------------------------------------------------------------------------


def produce_records(
    bootstrap: KafkaTarget,
    topic: str,
    records: Iterable[OutgoingRecord],
    on_sent: Callable[[int], None] | None = None,
    *,
    client: str | None = None,
) -> int:
    """Produce `records` to `topic` (acks=all, idempotent, batched, keys placed by murmur2 as Java
    clients place them); how many were acknowledged.

    `on_sent(n)` is called with the running count every 1000 records, for progress bars."""
    if chosen_client(client) == CONFLUENT:
        from provisioner.stream.confluent_produce import produce_records as produce
    else:
        from provisioner.stream.kafka_python_produce import produce_records as produce
    count = produce(settings_of(bootstrap), topic, records, on_sent, CLIENT_ID)
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
