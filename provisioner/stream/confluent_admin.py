"""Topic look-ups through librdkafka's admin client, for processes whose Kafka client is confluent.

`stream.kafka.end_offsets` calls it when the client is confluent, so a consumer process talks to
Kafka through one library. A refusal (credentials, an ACL, TLS) is raised as the `failures` error:
librdkafka reports it to `error_cb` and lets the request time out, so the callback's error is
preferred over the timeout's.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from provisioner.errors import ProvisionerError
from provisioner.stream.confluent import LIBRDKAFKA_LOGGER
from provisioner.stream.failures import KafkaUnavailable, from_confluent
from provisioner.stream.settings import KafkaSettings, rdkafka_config

__all__ = ["end_offsets"]


class _Admin:
    """An AdminClient that keeps the last refusal librdkafka reported."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self.settings = settings
        self.refused: ProvisionerError | None = None
        config: dict[str, Any] = {**rdkafka_config(settings), "client.id": client_id, "error_cb": self._on_error,
                                  "log.connection.close": False, "logger": LIBRDKAFKA_LOGGER}
        self.client = AdminClient(config)

    def _on_error(self, error: KafkaError) -> None:
        self.refused = from_confluent(error, self.settings) or self.refused

    def failure(self, error: Any, doing: str, topic: str) -> ProvisionerError:
        """`error` as ours: the refusal it is or was caused by, else KafkaUnavailable."""
        mapped = from_confluent(error, self.settings, operation="DESCRIBE", topic=topic)
        if mapped is None:
            self.client.poll(0)  # serves error_cb
            mapped = self.refused
        if mapped is not None:
            return mapped
        cause = error.args[0] if isinstance(error, KafkaException) and error.args else error
        text = cause.str() if isinstance(cause, KafkaError) else str(cause)
        return KafkaUnavailable(f"{doing}: {text}")


def end_offsets(settings: KafkaSettings, topic: str, client_id: str, timeout: float = 15.0) -> dict[int, int]:
    """The next offset of every partition of `topic`; KafkaUnavailable if it is missing."""
    admin = _Admin(settings, client_id)
    try:
        metadata = admin.client.list_topics(topic, timeout=timeout)
    except KafkaException as error:
        raise admin.failure(error, f"cannot reach Kafka at {settings.bootstrap}", topic) from None
    found = metadata.topics.get(topic)
    if found is not None and found.error is not None and found.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
        raise admin.failure(found.error, f"cannot describe topic {topic!r}", topic)
    if found is None or found.error is not None or not found.partitions:
        raise KafkaUnavailable(f"topic {topic!r} does not exist")
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    wanted = {TopicPartition(topic, p): latest for p in sorted(found.partitions)}
    ends: dict[int, int] = {}
    for partition, future in admin.client.list_offsets(wanted, request_timeout=timeout).items():
        try:
            ends[partition.partition] = int(future.result().offset)
        except KafkaException as error:
            raise admin.failure(error, f"cannot read the end offsets of {topic!r}", topic) from None
    return ends
