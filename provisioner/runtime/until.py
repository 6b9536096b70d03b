"""`source.until` at the Kafka client: no record of a partition from its first record stamped after
the instant on.

`StoreConsumer` wraps its Kafka consumer in an `UntilBound` when the spec sets `source.until`, so the
loop above it never sees a record past the instant; `passed` tells which partitions reached it (the
consumer's owner, `runtime.rebuild`, decides from it when a store is frozen). A partition stops at
its first record after the instant, so a restart resumes at that record and stops again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import attrgetter

from provisioner.pipeline.ops import RecordLike
from provisioner.stream.client import StreamConsumer

__all__ = ["UntilBound"]

_timestamp = attrgetter("timestamp")


class UntilBound:
    """A StreamConsumer that returns no record of a partition from its first record stamped after
    `until_ms` on (and pauses that partition): what `source.until` hands the consumer loop."""

    def __init__(self, consumer: StreamConsumer, until_ms: int) -> None:
        self._consumer = consumer
        self._until_ms = until_ms
        self.passed: dict[int, int] = {}  # partition -> offset of its first record after until

    def poll(self, timeout: float, max_records: int) -> Sequence[RecordLike]:
        records = self._consumer.poll(timeout, max_records)
        if not records or (not self.passed and max(map(_timestamp, records)) <= self._until_ms):
            return records
        kept: list[RecordLike] = []
        for record in records:
            partition = record.partition
            if partition in self.passed:
                continue
            if record.timestamp > self._until_ms:
                self.passed[partition] = record.offset
                self._consumer.pause([partition])
                continue
            kept.append(record)
        return kept

    def seek(self, positions: Mapping[int, int]) -> None:
        resumed = []
        for partition, offset in positions.items():
            passed = self.passed.get(partition)
            if passed is not None and offset < passed:
                # Repositioned before the first record after until (a discarded batch): read up to it again.
                del self.passed[partition]
                resumed.append(partition)
        if resumed:
            self._consumer.resume(resumed)
        self._consumer.seek(positions)
        still = [p for p in positions if p in self.passed]
        if still:
            self._consumer.pause(still)  # a client may resume what it repositions

    def assignment(self) -> list[int]:
        return self._consumer.assignment()

    def pause(self, partitions: Sequence[int]) -> None:
        self._consumer.pause(partitions)

    def resume(self, partitions: Sequence[int]) -> None:
        self._consumer.resume(partitions)

    def commit(self, positions: Mapping[int, int]) -> None:
        self._consumer.commit(positions)

    def start_offsets(self, partitions: Sequence[int], start_from: str) -> dict[int, int]:
        return self._consumer.start_offsets(partitions, start_from)

    def end_offsets(self, partitions: Sequence[int] | None, timeout: float) -> dict[int, int]:
        return self._consumer.end_offsets(partitions, timeout)

    def high_watermarks(self) -> dict[int, int]:
        return self._consumer.high_watermarks()

    def close(self) -> None:
        self._consumer.close()
