"""Topic and offset helpers through kafka-python, for processes whose Kafka client is
kafka-python (`stream.kafka` chooses; same functions as `confluent_admin`; `kafka_python_produce` produces).

Every kafka-python error leaves as ours: a refusal (credentials, an ACL, TLS) mapped by `failures`,
anything else `KafkaUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError, for_code

from provisioner.stream.failures import KafkaUnavailable, from_kafka_python
from provisioner.stream.settings import KafkaSettings, kafka_python_config
from provisioner.stream.startfrom import start_offsets

__all__ = ["KafkaPythonOffsets", "broker_ready", "end_offsets", "ensure_topic", "failure", "mapped",
           "topic_start_offsets"]


@contextmanager
def mapped(settings: KafkaSettings, doing: str, *, operation: str = "DESCRIBE",
           topic: str | None = None) -> Iterator[None]:
    """A kafka-python error as ours: an access problem named, anything else KafkaUnavailable."""
    try:
        yield
    except (KafkaError, OSError) as error:
        raise failure(error, settings, doing, operation=operation, topic=topic) from None


def failure(error: BaseException, settings: KafkaSettings, doing: str, *, operation: str = "DESCRIBE",
            topic: str | None = None) -> Exception:
    """`error` as ours (see `mapped`)."""
    mapped = from_kafka_python(error, settings, operation=operation, topic=topic)
    return mapped if mapped is not None else KafkaUnavailable(f"{doing}: {type(error).__name__}: {error}")


def _admin(settings: KafkaSettings, client_id: str) -> Any:
    with mapped(settings, f"cannot reach Kafka at {settings.bootstrap}"):
        return KafkaAdminClient(**kafka_python_config(settings), client_id=client_id, request_timeout_ms=15000)


class KafkaPythonOffsets:
    """`startfrom.OffsetLookup` over a kafka-python consumer, for one topic."""

    def __init__(self, consumer: KafkaConsumer, topic: str) -> None:
        self._consumer = consumer
        self._topic = topic

    def _tps(self, partitions: Sequence[int]) -> list[TopicPartition]:
        return [TopicPartition(self._topic, p) for p in partitions]

    def beginnings(self, partitions: Sequence[int]) -> dict[int, int]:
        return {tp.partition: int(o) for tp, o in self._consumer.beginning_offsets(self._tps(partitions)).items()}

    def ends(self, partitions: Sequence[int]) -> dict[int, int]:
        return {tp.partition: int(o) for tp, o in self._consumer.end_offsets(self._tps(partitions)).items()}

    def at_time(self, partitions: Sequence[int], epoch_ms: int) -> dict[int, int | None]:
        found = self._consumer.offsets_for_times(dict.fromkeys(self._tps(partitions), epoch_ms))
        return {tp.partition: None if at is None else int(at.offset) for tp, at in found.items()}


def broker_ready(settings: KafkaSettings, client_id: str) -> bool:
    try:
        admin = KafkaAdminClient(**kafka_python_config(settings), request_timeout_ms=3000,
                                 bootstrap_timeout_ms=3000, client_id=client_id)
    except (KafkaError, OSError):
        return False
    try:
        cluster = admin.describe_cluster()
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()
    return any(not broker.get("is_fenced", False) for broker in cluster.get("brokers") or [])


def ensure_topic(settings: KafkaSettings, topic: str, partitions: int, client_id: str) -> bool:
    admin = _admin(settings, client_id)
    try:
        with mapped(settings, f"cannot create topic {topic!r}", operation="CREATE", topic=topic):
            if topic in admin.list_topics():
                return False
            try:
                admin.create_topics({topic: {"num_partitions": partitions}}, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                return False  # created concurrently by another process
            return True
    finally:
        admin.close()


def end_offsets(settings: KafkaSettings, topic: str, client_id: str) -> dict[int, int]:
    admin = _admin(settings, client_id)
    try:
        with mapped(settings, f"cannot read the end offsets of {topic!r}", topic=topic):
            described = admin.describe_topics([topic])
            partitions = sorted(p["partition_index"] for d in described if d["error_code"] == 0
                                for p in d["partitions"])
            if not partitions:
                # Without DESCRIBE on it a topic looks absent: say so instead.
                refused = [d["error_code"] for d in described
                           if d["error_code"] not in (0, UnknownTopicOrPartitionError.errno)]
                if refused:
                    raise for_code(refused[0])()
                raise KafkaUnavailable(f"topic {topic!r} does not exist")
            offsets = admin.list_partition_offsets({TopicPartition(topic, p): OffsetSpec.LATEST for p in partitions})
    finally:
        admin.close()
    return {tp.partition: int(result.offset) for tp, result in offsets.items()}


def topic_start_offsets(settings: KafkaSettings, topic: str, start_from: str, client_id: str) -> dict[int, int]:
    with mapped(settings, f"cannot reach Kafka at {settings.bootstrap}"):
        client = KafkaConsumer(**kafka_python_config(settings), client_id=client_id, enable_auto_commit=False,
                               request_timeout_ms=15000)
    try:
        with mapped(settings, f"cannot read the offsets of {topic!r}", topic=topic):
            partitions = sorted(client.partitions_for_topic(topic) or ())
            return start_offsets(KafkaPythonOffsets(client, topic), partitions, start_from)
    finally:
        client.close()
