"""Bulk producing through kafka-python, for processes whose Kafka client is kafka-python
(`stream.kafka` chooses; `confluent_produce` is the other). Large batches and a short linger for
throughput, acks=all and idempotence for order; errors mapped as in `kafka_python_admin`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from kafka import KafkaProducer

from provisioner.stream.kafka_python_admin import failure, mapped
from provisioner.stream.settings import KafkaSettings, kafka_python_config

if TYPE_CHECKING:
    from provisioner.stream.kafka import OutgoingRecord

__all__ = ["produce_records"]


def produce_records(settings: KafkaSettings, topic: str, records: Iterable[OutgoingRecord],
                    on_sent: Callable[[int], None] | None, client_id: str) -> int:
    with mapped(settings, f"cannot reach Kafka at {settings.bootstrap}"):
        # Large batches and a short linger: throughput for bulk loads, idempotence keeps order.
        producer = KafkaProducer(**kafka_python_config(settings), client_id=client_id, acks="all",
                                 linger_ms=20, batch_size=512 * 1024, max_request_size=8 * 1024 * 1024)
    failures: list[BaseException] = []
    count = 0
    doing = f"producing to {topic!r} failed"
    try:
        with mapped(settings, doing, operation="WRITE", topic=topic):
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
    finally:
        producer.close()
    if failures:
        raise failure(failures[0], settings, doing, operation="WRITE", topic=topic)
    return count
