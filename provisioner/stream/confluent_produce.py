"""Bulk producing through librdkafka, for processes whose Kafka client is confluent (`stream.kafka`
chooses; `kafka_python_admin.produce_records` is the other).

acks=all and idempotence keep every partition in the order given; keys go to partitions by murmur2,
as Java's and kafka-python's producers place them (librdkafka's own default hashes differently).
Only failed deliveries are reported back, so a large load costs no Python call per record beyond
`produce`. A refusal (credentials, no WRITE on the topic, TLS) reported to `error_cb` stops the load
and is raised as the `failures` error; any other failed delivery as `KafkaUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Producer

from provisioner.errors import ProvisionerError
from provisioner.stream.confluent import LIBRDKAFKA_LOGGER
from provisioner.stream.failures import KafkaUnavailable, from_confluent
from provisioner.stream.settings import KafkaSettings, rdkafka_config

if TYPE_CHECKING:
    from provisioner.stream.kafka import OutgoingRecord

__all__ = ["produce_records"]

# How long one record may wait for its acknowledgement (retries included) before the load fails.
DELIVERY_TIMEOUT_MS = 60_000


class _Load:
    """One producer and what went wrong so far."""

    def __init__(self, settings: KafkaSettings, topic: str, client_id: str) -> None:
        self.settings = settings
        self.topic = topic
        self.failed: KafkaError | None = None
        self.refused: ProvisionerError | None = None
        self.producer = Producer({
            **rdkafka_config(settings), "client.id": client_id, "acks": "all", "enable.idempotence": True,
            "partitioner": "murmur2_random", "linger.ms": 20, "batch.size": 512 * 1024,
            "message.max.bytes": 8 * 1024 * 1024, "message.timeout.ms": DELIVERY_TIMEOUT_MS,
            "delivery.report.only.error": True, "on_delivery": self._delivered, "error_cb": self._on_error,
            "log.connection.close": False, "logger": LIBRDKAFKA_LOGGER,
        })

    def _delivered(self, error: KafkaError | None, message: Any) -> None:
        if error is not None and self.failed is None:
            self.failed = error

    def _on_error(self, error: KafkaError) -> None:
        self.refused = from_confluent(error, self.settings, operation="WRITE", topic=self.topic) or self.refused

    def check(self) -> None:
        """Raise what went wrong, if anything did."""
        if self.refused is not None:
            raise self.refused
        if self.failed is not None:
            raise (from_confluent(self.failed, self.settings, operation="WRITE", topic=self.topic)
                   or KafkaUnavailable(f"producing to {self.topic!r} failed: {self.failed.str()}"))

    def send(self, record: OutgoingRecord) -> None:
        key = record.key.encode() if isinstance(record.key, str) else record.key
        headers: list[tuple[str, str | bytes | None]] | None = (
            [(k, v.encode()) for k, v in record.headers.items()] if record.headers else None)
        partition = record.partition if record.partition is not None else -1
        timestamp = record.timestamp_ms or 0  # 0: now
        while True:
            try:
                self.producer.produce(self.topic, record.value, key, partition=partition, timestamp=timestamp,
                                      headers=headers)
                return
            except BufferError:
                # The local queue is full: let deliveries drain it (and report failures).
                self.producer.poll(0.1)
                self.check()
            except KafkaException as error:
                raise (from_confluent(error, self.settings, operation="WRITE", topic=self.topic)
                       or KafkaUnavailable(f"producing to {self.topic!r} failed: {error}")) from None

    def flush(self) -> None:
        while self.producer.flush(1.0):
            self.check()
        self.check()


def produce_records(settings: KafkaSettings, topic: str, records: Iterable[OutgoingRecord],
                    on_sent: Callable[[int], None] | None, client_id: str) -> int:
    load = _Load(settings, topic, client_id)
    count = 0
    try:
        for record in records:
            load.send(record)
            count += 1
            if count % 1000 == 0:
                load.producer.poll(0)
                load.check()
                if on_sent is not None:
                    on_sent(count)
        load.flush()
    except BaseException:
        load.producer.purge()  # a failed load leaves nothing queued to hold the producer open
        raise
    return count
