"""What Kafka knows about a product's consumers: end offsets, consumer-group members and dead
letters per product and store, read by a long-lived observer (one admin client, one dead-letter
reader) so that watching many products costs a few requests per refresh, not a client each.

Dead letters are counted from the dead-letter topic itself, by their `provisioner.product`
(`<namespace>/<name>`) and `provisioner.store` headers: the reader keeps its offsets and counts and
reads only what arrived since the last call. Counts are of messages, so a dead letter sent again
after a discarded batch counts twice (spec.md allows duplicates; the headers identify them).

Thread-safe: every call holds one lock (kafka-python's clients are not thread-safe). Any Kafka
failure raises KafkaUnavailable (retryable). Called by `provisioner.kube.observe`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from provisioner.stream.failures import from_kafka_python
from provisioner.stream.kafka import CLIENT_ID, KafkaUnavailable
from provisioner.stream.settings import KafkaSettings, KafkaTarget, kafka_python_config, settings_of

__all__ = ["KafkaObserver"]

_PARTITIONS_TTL_S = 60.0


class KafkaObserver:
    """End offsets, group members and dead-letter counts, from one broker connection."""

    def __init__(self, bootstrap: KafkaTarget, *, timeout_ms: int = 10_000) -> None:
        self.connection = settings_of(bootstrap)
        self.bootstrap = self.connection.bootstrap
        self._timeout_ms = timeout_ms
        self._lock = threading.Lock()
        self._admin: Any = None
        self._partitions: dict[str, tuple[float, list[int]]] = {}
        self._dead_letter_readers: dict[str, _DeadLetterReader] = {}

    def close(self) -> None:
        with self._lock:
            for reader in self._dead_letter_readers.values():
                reader.close()
            self._dead_letter_readers.clear()
            if self._admin is not None:
                self._admin.close()
                self._admin = None

    def end_offsets(self, topic: str) -> dict[int, int] | None:
        """The next offset of every partition of `topic`; None when the topic does not exist."""
        from kafka import TopicPartition
        from kafka.admin import OffsetSpec
        from kafka.errors import KafkaError

        with self._lock:
            try:
                partitions = self._topic_partitions(topic)
                if not partitions:
                    return None
                offsets = self._client().list_partition_offsets(
                    {TopicPartition(topic, p): OffsetSpec.LATEST for p in partitions})
            except KafkaError as error:
                self._reset()
                raise _failure(error, self.connection, f"cannot read the end offsets of {topic!r}",
                               topic=topic) from None
        return {tp.partition: int(result.offset) for tp, result in offsets.items()}

    def group_members(self, group: str) -> int:
        """How many consumers are members of `group` now (0 for an empty or unknown group)."""
        from kafka.errors import KafkaError

        with self._lock:
            try:
                described = self._client().describe_groups([group])
            except KafkaError as error:
                self._reset()
                raise _failure(error, self.connection, f"cannot describe consumer group {group!r}",
                               group=group) from None
        info = described.get(group) if isinstance(described, dict) else None
        if not info:
            return 0
        members = info.get("members") or []
        return len(members)

    def dead_letters(self, topic: str) -> Counter[tuple[str, str]]:
        """Dead letters in `topic` so far, by (`<namespace>/<name>`, store)."""
        with self._lock:
            reader = self._dead_letter_readers.get(topic)
            if reader is None:
                reader = self._dead_letter_readers[topic] = _DeadLetterReader(self.connection, topic)
            partitions = self._topic_partitions(topic)
            if not partitions:
                return Counter()
            return reader.catch_up(partitions)

    # -- internals (called with the lock held) -------------------------------------------------------

    def _client(self) -> Any:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        if self._admin is None:
            try:
                self._admin = KafkaAdminClient(**kafka_python_config(self.connection),
                                               client_id=f"{CLIENT_ID}-observer", request_timeout_ms=self._timeout_ms)
            except KafkaError as error:
                raise _failure(error, self.connection, f"cannot reach Kafka at {self.bootstrap}") from None
        return self._admin

    def _reset(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            finally:
                self._admin = None

    def _topic_partitions(self, topic: str) -> list[int]:
        from kafka.errors import KafkaError

        cached = self._partitions.get(topic)
        now = time.monotonic()
        if cached is not None and now - cached[0] < _PARTITIONS_TTL_S and cached[1]:
            return cached[1]
        try:
            described = self._client().describe_topics([topic])
        except KafkaError as error:
            self._reset()
            raise _failure(error, self.connection, f"cannot describe topic {topic!r}", topic=topic) from None
        partitions = sorted(p["partition_index"] for d in described if d["error_code"] == 0 for p in d["partitions"])
        self._partitions[topic] = (now, partitions)
        return partitions


def _failure(error: Exception, connection: KafkaSettings, doing: str, *, topic: str | None = None,
             group: str | None = None) -> Exception:
    """A refusal named (credentials, an ACL, TLS), else KafkaUnavailable with the error's type only."""
    refused = from_kafka_python(error, connection, operation="DESCRIBE", topic=topic, group=group)
    return refused if refused is not None else KafkaUnavailable(f"{doing}: {type(error).__name__}")


class _DeadLetterReader:
    """Reads one dead-letter topic from the start, once, and counts by product and store."""

    def __init__(self, connection: KafkaSettings, topic: str) -> None:
        self.topic = topic
        self._connection = connection
        self._consumer: Any = None
        self._assigned: list[int] = []
        self.counts: Counter[tuple[str, str]] = Counter()

    def catch_up(self, partitions: list[int]) -> Counter[tuple[str, str]]:
        from kafka import KafkaConsumer, TopicPartition
        from kafka.errors import KafkaError

        try:
            if self._consumer is None:
                self._consumer = KafkaConsumer(**kafka_python_config(self._connection),
                                               client_id=f"{CLIENT_ID}-dlq-counter",
                                               enable_auto_commit=False, group_id=None,
                                               auto_offset_reset="earliest", consumer_timeout_ms=1000)
            if partitions != self._assigned:
                known = {tp.partition: self._consumer.position(tp) for tp in self._consumer.assignment()}
                assignment = [TopicPartition(self.topic, p) for p in partitions]
                self._consumer.assign(assignment)
                for tp in assignment:
                    if tp.partition in known:
                        self._consumer.seek(tp, known[tp.partition])
                    else:
                        self._consumer.seek_to_beginning(tp)
                self._assigned = partitions
            assignment = [TopicPartition(self.topic, p) for p in partitions]
            ends = self._consumer.end_offsets(assignment)
            deadline = time.monotonic() + 30
            while any(self._consumer.position(tp) < ends[tp] for tp in assignment):
                batches = self._consumer.poll(timeout_ms=500, max_records=5000)
                for records in batches.values():
                    for record in records:
                        headers = dict(record.headers or [])
                        product = headers.get("provisioner.product", b"").decode("utf-8", "replace")
                        store = headers.get("provisioner.store", b"").decode("utf-8", "replace")
                        self.counts[(product, store)] += 1
                if time.monotonic() > deadline:
                    break
        except KafkaError as error:
            self.close()
            raise _failure(error, self._connection, f"cannot read dead letters from {self.topic!r}",
                           topic=self.topic) from None
        return Counter(self.counts)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
            self._assigned = []
            self.counts = Counter()
