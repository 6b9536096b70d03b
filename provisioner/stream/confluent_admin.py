"""Topic and offset look-ups through librdkafka's admin client, for processes whose Kafka client is
confluent (`stream.kafka` chooses; same functions as `kafka_python_admin`).

A refusal (credentials, an ACL, TLS) is raised as the `failures` error: librdkafka reports it to
`error_cb` and lets the request time out, so the callback's error is preferred over the timeout's.
Any other librdkafka error leaves as `KafkaUnavailable`. The admin client is held until every
future it returned is done (one collected with futures pending never completes them). Offsets come
from ListOffsets, which needs only DESCRIBE on the topic.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]

from provisioner.errors import ProvisionerError
from provisioner.stream.confluent import LIBRDKAFKA_LOGGER
from provisioner.stream.failures import KafkaUnavailable, from_confluent
from provisioner.stream.settings import KafkaSettings, rdkafka_config
from provisioner.stream.startfrom import start_offsets

__all__ = ["AdminOffsets", "broker_ready", "end_offsets", "ensure_topic", "topic_start_offsets"]

TIMEOUT = 15.0


class _Admin:
    """An AdminClient that keeps the last refusal librdkafka reported."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self.settings = settings
        self.refused: ProvisionerError | None = None
        config: dict[str, Any] = {**rdkafka_config(settings), "client.id": client_id, "error_cb": self._on_error,
                                  "log.connection.close": False, "logger": LIBRDKAFKA_LOGGER,
                                  # A metadata look-up must not create the topic it asks about.
                                  "allow.auto.create.topics": False}
        self.client = AdminClient(config)

    def _on_error(self, error: KafkaError) -> None:
        self.refused = from_confluent(error, self.settings) or self.refused

    def failure(self, error: Any, doing: str, topic: str, operation: str = "DESCRIBE") -> ProvisionerError:
        """`error` as ours: the refusal it is or was caused by, else KafkaUnavailable."""
        mapped = from_confluent(error, self.settings, operation=operation, topic=topic)
        if mapped is None:
            self.client.poll(0)  # serves error_cb
            mapped = self.refused
        if mapped is not None:
            return mapped
        cause = error.args[0] if isinstance(error, KafkaException) and error.args else error
        text = cause.str() if isinstance(cause, KafkaError) else str(cause)
        return KafkaUnavailable(f"{doing}: {text}")

    def partitions(self, topic: str, timeout: float = TIMEOUT) -> dict[int, Any] | None:
        """The topic's partitions (their metadata by number), None when it does not exist; a
        refusal to describe it raised as such (without DESCRIBE a topic looks absent)."""
        try:
            metadata = self.client.list_topics(topic, timeout=timeout)
        except KafkaException as error:
            raise self.failure(error, f"cannot reach Kafka at {self.settings.bootstrap}", topic) from None
        found = metadata.topics.get(topic)
        if found is not None and found.error is not None and found.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise self.failure(found.error, f"cannot describe topic {topic!r}", topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        return dict(found.partitions)


# ListOffsets fails with these while a partition has no leader: librdkafka's "No leaders found"
# (_NOENT) right after a topic is created, the broker's answers during an election.
_LEADERLESS = frozenset({KafkaError._NOENT, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION})
_LEADER_RETRY_S = 0.1


class AdminOffsets:
    """`startfrom.OffsetLookup` through ListOffsets, for one topic."""

    def __init__(self, admin: _Admin, topic: str, timeout: float = TIMEOUT) -> None:
        self._admin = admin
        self._topic = topic
        self._timeout = timeout

    def _list(self, partitions: Sequence[int], spec: Any) -> dict[int, int]:
        """The offsets asked, asked again while a partition has no leader yet (a topic just
        created, a leader being elected) until the timeout."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return self._list_once(partitions, spec)
            except KafkaException as error:
                cause = error.args[0] if error.args else None
                leaderless = isinstance(cause, KafkaError) and (cause.code() in _LEADERLESS or cause.retriable())
                if not leaderless or time.monotonic() + _LEADER_RETRY_S > deadline:
                    doing = f"cannot read the offsets of {self._topic!r}"
                    raise self._admin.failure(error, doing, self._topic) from None
                time.sleep(_LEADER_RETRY_S)

    def _list_once(self, partitions: Sequence[int], spec: Any) -> dict[int, int]:
        wanted = {TopicPartition(self._topic, p): spec for p in partitions}
        futures = self._admin.client.list_offsets(wanted, request_timeout=self._timeout)
        return {partition.partition: int(future.result().offset) for partition, future in futures.items()}

    def beginnings(self, partitions: Sequence[int]) -> dict[int, int]:
        return self._list(partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]

    def ends(self, partitions: Sequence[int]) -> dict[int, int]:
        return self._list(partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]

    def at_time(self, partitions: Sequence[int], epoch_ms: int) -> dict[int, int | None]:
        found = self._list(partitions, OffsetSpec.for_timestamp(epoch_ms))
        return {p: offset if offset >= 0 else None for p, offset in found.items()}


def broker_ready(settings: KafkaSettings, client_id: str) -> bool:
    """A metadata answer naming a broker: KRaft leaves fenced brokers out of it."""
    admin = _Admin(settings, client_id)
    try:
        metadata = admin.client.list_topics(timeout=3.0)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def ensure_topic(settings: KafkaSettings, topic: str, partitions: int, client_id: str) -> bool:
    admin = _Admin(settings, client_id)
    if admin.partitions(topic) is not None:
        return False
    doing = f"cannot create topic {topic!r}"
    future = admin.client.create_topics([NewTopic(topic, num_partitions=partitions)],
                                        request_timeout=TIMEOUT)[topic]
    try:
        future.result(timeout=TIMEOUT)
    except KafkaException as error:
        cause = error.args[0] if error.args else None
        if isinstance(cause, KafkaError) and cause.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False  # created concurrently by another process
        raise admin.failure(error, doing, topic, operation="CREATE") from None
    _await_leaders(admin, topic, partitions, doing)
    return True


def _await_leaders(admin: _Admin, topic: str, partitions: int, doing: str) -> None:
    """Wait until every partition of a new topic has a leader, so producing to it succeeds at once."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = admin.partitions(topic, timeout=max(0.1, deadline - time.monotonic()))
        if found is not None and len(found) >= partitions and all(p.leader >= 0 for p in found.values()):
            return
        time.sleep(0.05)
    raise KafkaUnavailable(f"{doing}: its partitions got no leader within {TIMEOUT:.0f}s")


def end_offsets(settings: KafkaSettings, topic: str, client_id: str, timeout: float = TIMEOUT) -> dict[int, int]:
    """The next offset of every partition of `topic`; KafkaUnavailable if it is missing."""
    admin = _Admin(settings, client_id)
    found = admin.partitions(topic, timeout)
    if found is None:
        raise KafkaUnavailable(f"topic {topic!r} does not exist")
    return AdminOffsets(admin, topic, timeout).ends(sorted(found))


def topic_start_offsets(settings: KafkaSettings, topic: str, start_from: str, client_id: str) -> dict[int, int]:
    admin = _Admin(settings, client_id)
    found = admin.partitions(topic)
    return start_offsets(AdminOffsets(admin, topic), sorted(found or ()), start_from)
