"""The Kafka consumer seam: the few operations the store consumer needs, and which client provides them.

Two clients implement `StreamConsumer`, one module each: `confluent` (librdkafka through
confluent-kafka, the default: records decoded in C, several times cheaper per record) and
`kafka-python` (pure Python: for platforms without the librdkafka wheel, and for debugging).
`provisioner consume --kafka-client` or PROVISIONER_KAFKA_CLIENT chooses (`chosen_client`) for every
Kafka call of the process: the consumer, its dead letters and the topic, offset and produce helpers
of `stream.kafka`, so a process loads one client library. `open_consumer` builds a consumer.

Both hand the loop records with the attributes of `pipeline.ops.RecordLike`, as a flat list in which
each partition's records are in offset order. Neither reads or trusts Kafka's committed offsets: the
owner positions every assigned partition with `seek` (the store's positions are the truth), and
`commit` is advisory, for lag tools. A rebalance is never acted on inside the client: it sets
`Assignment.changed`, and the owner repositions once `poll` returns. A consumer is used from the
thread that polls it only: a confluent-kafka call from another thread while `poll` waits was seen
to hold that poll back for over a minute.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from provisioner.errors import ConfigurationError, UnavailableError
from provisioner.pipeline.ops import RecordLike
from provisioner.stream.settings import KafkaTarget

__all__ = [
    "DEFAULT_KAFKA_CLIENT",
    "KAFKA_CLIENTS",
    "KAFKA_CLIENT_ENV",
    "Assignment",
    "BrokerTimeout",
    "KafkaClientError",
    "StreamConsumer",
    "chosen_client",
    "open_consumer",
]

CONFLUENT: Final = "confluent"
KAFKA_PYTHON: Final = "kafka-python"
KAFKA_CLIENTS: Final = (CONFLUENT, KAFKA_PYTHON)
# Chosen by measurement (bench/hydrate.py): librdkafka decodes a record in ~1 us, kafka-python in ~5.
DEFAULT_KAFKA_CLIENT: Final = CONFLUENT
KAFKA_CLIENT_ENV: Final = "PROVISIONER_KAFKA_CLIENT"

# Fetch settings both clients use: big fetches, answered within 100 ms when the topic is quiet.
FETCH_MAX_WAIT_MS: Final = 100
MAX_PARTITION_FETCH_BYTES: Final = 4 * 1024 * 1024
FETCH_MAX_BYTES: Final = 32 * 1024 * 1024


class KafkaClientError(ConfigurationError):
    """PROVISIONER_KAFKA_CLIENT names no Kafka client."""


def chosen_client(client: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The Kafka client of this process: `client` when a caller was told one (`--kafka-client`),
    else PROVISIONER_KAFKA_CLIENT, else the default."""
    env = os.environ if environ is None else environ
    name = client or env.get(KAFKA_CLIENT_ENV, "").strip() or DEFAULT_KAFKA_CLIENT
    if name not in KAFKA_CLIENTS:
        raise KafkaClientError(f"{KAFKA_CLIENT_ENV}: unknown Kafka client {name!r} (one of {', '.join(KAFKA_CLIENTS)})")
    return name


class BrokerTimeout(UnavailableError):
    """A bounded request (end offsets, topic metadata) got no answer in time."""


class Assignment:
    """Set by the client when its partitions changed (assigned, revoked or lost); the owner clears
    it once it has repositioned, or sets it to ask for a repositioning itself."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        self.changed = True


class StreamConsumer(Protocol):
    """One subscription to one topic in a consumer group, partitions named by number."""

    def poll(self, timeout: float, max_records: int) -> Sequence[RecordLike]:
        """Up to `max_records` records, waiting at most `timeout` seconds for the first ones.
        Rebalance callbacks run in here (and set `Assignment.changed`)."""
        ...

    def assignment(self) -> list[int]:
        """The partitions of the topic this member owns now."""
        ...

    def seek(self, positions: Mapping[int, int]) -> None:
        """Fetch each assigned partition from the given offset next (the whole assignment)."""
        ...

    def pause(self, partitions: Sequence[int]) -> None: ...

    def resume(self, partitions: Sequence[int]) -> None: ...

    def commit(self, positions: Mapping[int, int]) -> None:
        """Commit these next offsets to Kafka, asynchronously (advisory only)."""
        ...

    def start_offsets(self, partitions: Sequence[int], start_from: str) -> dict[int, int]:
        """Where a store with no position starts (`source.startFrom`: earliest, latest or an RFC 3339
        timestamp, by `stream.startfrom.start_offsets`)."""
        ...

    def end_offsets(self, partitions: Sequence[int] | None, timeout: float) -> dict[int, int]:
        """The end of each partition (all the topic's when None); BrokerTimeout if no answer in time."""
        ...

    def high_watermarks(self) -> dict[int, int]:
        """The end of each assigned partition as last seen in a fetch, without a request (those known)."""
        ...

    def close(self) -> None: ...


def open_consumer(
    client: str,
    *,
    bootstrap: KafkaTarget,
    topic: str,
    group: str,
    client_id: str,
    max_records: int,
    assignment: Assignment,
    settings: Mapping[str, Any] | None = None,
) -> StreamConsumer:
    """A `client` consumer subscribed to `topic` in `group`, auto commit off, connected as
    `bootstrap` says (settings, or a plaintext address). `settings` override
    the defaults in kafka-python's spelling (`session_timeout_ms`); the confluent client translates
    them to librdkafka's (`session.timeout.ms`)."""
    if client == CONFLUENT:
        from provisioner.stream.confluent import ConfluentConsumer

        return ConfluentConsumer(bootstrap=bootstrap, topic=topic, group=group, client_id=client_id,
                                 assignment=assignment, settings=settings or {})
    if client == KAFKA_PYTHON:
        from provisioner.stream.kafka_python import KafkaPythonConsumer

        return KafkaPythonConsumer(bootstrap=bootstrap, topic=topic, group=group, client_id=client_id,
                                   max_records=max_records, assignment=assignment, settings=settings or {})
    raise ValueError(f"unknown Kafka client {client!r}: one of {', '.join(KAFKA_CLIENTS)}")
