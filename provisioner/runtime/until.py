"""`source.until` at the Kafka client: no record of a partition from its first record stamped after
the instant on.

`StoreConsumer` wraps its Kafka consumer in an `UntilBound` when the spec sets `source.until`, so the
loop above it never sees a record past the instant; `passed` tells which partitions reached it (the
consumer's owner, `runtime.rebuild`, decides from it when a store is frozen). A partition stops at
its first record after the instant, so a restart resumes at that record and stops again.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, TopicPartition

__all__ = ["UntilBound"]


class UntilBound:
    """A KafkaConsumer that returns no record of a partition from its first record stamped after
    `until_ms` on (and pauses that partition): what `source.until` hands the consumer loop."""

    def __init__(self, consumer: KafkaConsumer, until_ms: int) -> None:
        self._consumer = consumer
        self._until_ms = until_ms
        self.passed: dict[int, int] = {}  # partition -> offset of its first record after until

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    def poll(self, timeout_ms: int = 0, max_records: int | None = None, **kwargs: Any) -> dict[Any, list[Any]]:
        polled: dict[Any, list[Any]] = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records, **kwargs)
        out: dict[Any, list[Any]] = {}
        for tp, records in polled.items():
            if tp.partition in self.passed:
                continue
            kept = []
            for record in records:
                if record.timestamp > self._until_ms:
                    self.passed[tp.partition] = record.offset
                    self._consumer.pause(tp)
                    break
                kept.append(record)
            if kept:
                out[tp] = kept
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        passed = self.passed.get(tp.partition)
        if passed is not None and offset < passed:
            # Repositioned before the first record after until (a discarded batch): read up to it again.
            del self.passed[tp.partition]
            self._consumer.resume(tp)
        self._consumer.seek(tp, offset)
