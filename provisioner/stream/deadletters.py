"""Dead-letter production: the original record plus `provisioner.*` headers, acknowledged by Kafka.

The consumer calls `send_all` before committing the batch that passes the dead letters, and it only
commits when every send was acknowledged (acks=all), so a dead letter is never lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer

from provisioner.pipeline.ops import DeadLetter, RecordLike

MAX_MESSAGE_BYTES = 4096


def dead_letter_headers(record: RecordLike, dead_letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers plus the five `provisioner.*` headers of spec.md."""
    message = dead_letter.message.encode("utf-8")[:MAX_MESSAGE_BYTES]
    return [
        *((name, value) for name, value in record.headers if not name.startswith("provisioner.")),
        ("provisioner.error.stage", dead_letter.stage.encode()),
        ("provisioner.error.message", message),
        ("provisioner.source.topic", record.topic.encode()),
        ("provisioner.source.partition", str(record.partition).encode()),
        ("provisioner.source.offset", str(record.offset).encode()),
    ]


class DeadLetterProducer:
    """An idempotent, acks=all producer for one dead-letter topic."""

    def __init__(self, bootstrap: str, topic: str, client_id: str) -> None:
        self.topic = topic
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            client_id=client_id,
            retries=5,
        )

    def send_all(self, items: Sequence[tuple[RecordLike, DeadLetter]], timeout: float = 30.0) -> None:
        """Send and wait for every acknowledgement; raises (KafkaError) if any send failed."""
        futures: list[Any] = [
            self._producer.send(
                self.topic, key=record.key, value=record.value, headers=dead_letter_headers(record, dl)
            )
            for record, dl in items
        ]
        self._producer.flush(timeout=timeout)
        for future in futures:
            future.get(timeout=timeout)

    def close(self) -> None:
        self._producer.close(timeout=5)
