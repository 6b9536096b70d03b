"""The kafka-python `StreamConsumer`: pure Python, the fallback to the confluent client.

Its ConsumerRecords already have the attributes the pipeline reads, so they are handed on as they
come. kafka-python swallows exceptions raised in rebalance listeners, which therefore only set the
`Assignment` flag. Its poll never raises for an unreachable broker: `end_offsets` with a timeout
is how the owner tells a quiet topic from a broker that is gone. A broker that refuses us
(authentication, authorization, TLS) raises from the call that met it, mapped by `failures`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from provisioner.pipeline.ops import RecordLike
from provisioner.stream.client import (
    FETCH_MAX_BYTES,
    FETCH_MAX_WAIT_MS,
    MAX_PARTITION_FETCH_BYTES,
    Assignment,
    BrokerTimeout,
)
from provisioner.stream.failures import from_kafka_python
from provisioner.stream.kafka_python_admin import KafkaPythonOffsets
from provisioner.stream.settings import KafkaSettings, KafkaTarget, kafka_python_config, settings_of
from provisioner.stream.startfrom import start_offsets

__all__ = ["KafkaPythonConsumer"]

CLOSE_TIMEOUT_MS = 5000


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, assignment: Assignment) -> None:
        self._assignment = assignment

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._assignment.changed = True

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._assignment.changed = True

    def on_partitions_lost(self, lost: Any) -> None:
        # Evicted (session expired while paused): whatever batch is in hand must not be applied
        # on the strength of positions read before; the fence would refuse it anyway.
        self._assignment.changed = True


class KafkaPythonConsumer:
    """A kafka-python KafkaConsumer subscribed to one topic (see `client.StreamConsumer`)."""

    def __init__(self, *, bootstrap: KafkaTarget, topic: str, group: str, client_id: str, max_records: int,
                 assignment: Assignment, settings: Mapping[str, Any]) -> None:
        self._topic = topic
        self._group = group
        self._connection: KafkaSettings = settings_of(bootstrap)
        config: dict[str, Any] = {
            **kafka_python_config(self._connection),
            "group_id": group,
            "client_id": client_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": max_records,
            "check_crcs": False,
            "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
            "max_partition_fetch_bytes": MAX_PARTITION_FETCH_BYTES,
            "fetch_max_bytes": FETCH_MAX_BYTES,
            **settings,
        }
        with self._mapped():
            self._consumer = KafkaConsumer(**config)
        assignment.changed = True
        self._consumer.subscribe([topic], listener=_Listener(assignment))

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self._topic, partition)

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """A refusal by the broker raised as ours; any other error as it is."""
        try:
            yield
        except (KafkaError, OSError) as error:
            refused = from_kafka_python(error, self._connection, topic=self._topic, group=self._group)
            if refused is None:
                raise
            raise refused from None

    def poll(self, timeout: float, max_records: int) -> Sequence[RecordLike]:
        with self._mapped():
            polled = self._consumer.poll(timeout_ms=max(1, int(timeout * 1000)), max_records=max_records)
        if not polled:
            return []
        if len(polled) == 1:
            records: list[RecordLike] = next(iter(polled.values()))
            return records
        return list(chain.from_iterable(polled.values()))

    def assignment(self) -> list[int]:
        return sorted(tp.partition for tp in self._consumer.assignment())

    def seek(self, positions: Mapping[int, int]) -> None:
        for partition, offset in positions.items():
            self._consumer.seek(self._tp(partition), offset)

    def pause(self, partitions: Sequence[int]) -> None:
        self._consumer.pause(*map(self._tp, partitions))

    def resume(self, partitions: Sequence[int]) -> None:
        self._consumer.resume(*map(self._tp, partitions))

    def commit(self, positions: Mapping[int, int]) -> None:
        self._consumer.commit_async({self._tp(p): OffsetAndMetadata(o, "", -1) for p, o in positions.items()})

    def start_offsets(self, partitions: Sequence[int], start_from: str) -> dict[int, int]:
        with self._mapped():
            return start_offsets(KafkaPythonOffsets(self._consumer, self._topic), partitions, start_from)

    def end_offsets(self, partitions: Sequence[int] | None, timeout: float) -> dict[int, int]:
        with self._mapped():
            if partitions is None:
                partitions = sorted(self._consumer.partitions_for_topic(self._topic) or ())
            if not partitions:
                return {}
            try:
                ends = self._consumer.end_offsets([self._tp(p) for p in partitions], timeout_ms=int(timeout * 1000))
            except KafkaTimeoutError as error:
                raise BrokerTimeout(str(error)) from None
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    def high_watermarks(self) -> dict[int, int]:
        ends: dict[int, int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is not None:
                ends[tp.partition] = int(high)
        return ends

    def close(self) -> None:
        self._consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
