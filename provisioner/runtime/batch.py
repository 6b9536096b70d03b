"""The pure bookkeeping of one batch: what the pipeline made of its records, where the batch is cut
when `errors.mode: stop` meets an error, and which positions it ends at.

No I/O: the store consumer (`provisioner.runtime.consumer`) calls these between reading a batch and
writing it. `transform` is the one pass over the records; everything else touches only the changes,
the dead letters, or (at the end of each partition) a few records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from provisioner.pipeline.ops import Change, DeadLetter, Delete, Op, RecordLike, Skip, Upsert
from provisioner.stores.base import Rejected

__all__ = ["Batch", "cut_at_rejection", "end_positions", "halt_reason", "join_rejections", "transform"]


@dataclass(slots=True)
class Batch:
    """One batch after the pipeline: the records it covers and what becomes of them.

    `records` is what the batch's positions pass: the whole batch, or, when `halt` is set
    (errors.mode stop), only the records before the first failing one.
    """

    records: Sequence[RecordLike]
    changes: list[Change]
    dead: list[tuple[RecordLike, DeadLetter]]
    skips: int
    upserts: int
    halt: str | None = None

    @property
    def deletes(self) -> int:
        return len(self.changes) - self.upserts


def halt_reason(record: RecordLike, dead_letter: DeadLetter) -> str:
    """The status line of a consumer halted by errors.mode stop."""
    return (f"{dead_letter.stage} error at {record.topic}[{record.partition}]@{record.offset}: "
            f"{dead_letter.message} (errors.mode: stop)")


def transform(process: Callable[[RecordLike], Op], records: Sequence[RecordLike], *, stop: bool) -> Batch:
    """Run the pipeline over `records` in order, in one pass.

    With `stop` (errors.mode stop) the pass ends at the first dead letter: the batch covers the
    records before it and carries the halt reason; nothing after it is transformed.
    """
    changes: list[Change] = []
    append = changes.append
    dead: list[tuple[RecordLike, DeadLetter]] = []
    skips = 0
    upserts = 0
    for record in records:
        op = process(record)
        cls = type(op)
        if cls is Upsert:
            upserts += 1
            append(Change(record.partition, record.offset, record.timestamp, op))  # type: ignore[arg-type]
        elif cls is Skip:
            skips += 1
        elif cls is Delete:
            append(Change(record.partition, record.offset, record.timestamp, op))  # type: ignore[arg-type]
        elif stop:
            # Every record before this one was a change or a skip: that is where the batch ends.
            cut = len(changes) + skips
            return Batch(records[:cut], changes, [], skips, upserts, halt_reason(record, op))  # type: ignore[arg-type]
        else:
            dead.append((record, op))  # type: ignore[arg-type]
    return Batch(records, changes, dead, skips, upserts)


def join_rejections(batch: Batch, rejected: Sequence[Rejected]) -> None:
    """Changes the store refused become stage-`store` dead letters of their records, and leave the
    changes (so each record counts once: as an upsert, a delete, a skip or a dead letter)."""
    if not rejected:
        return
    by_position = {(r.partition, r.offset): r for r in batch.records}
    batch.dead.extend((by_position[(x.change.partition, x.change.offset)], x.dead_letter) for x in rejected)
    refused = {id(x.change) for x in rejected}
    batch.changes = [change for change in batch.changes if id(change) not in refused]
    batch.upserts = sum(1 for change in batch.changes if type(change.op) is Upsert)


def cut_at_rejection(batch: Batch, rejected: Sequence[Rejected]) -> Batch:
    """errors.mode stop: the batch up to (not including) the first change the store refused.

    The changes before it are the already-computed ones, cut; the pipeline does not run again.
    """
    if not rejected:
        return batch
    index = {(c.partition, c.offset): i for i, c in enumerate(batch.changes)}
    first = min(rejected, key=lambda x: index[(x.change.partition, x.change.offset)])
    kept = index[(first.change.partition, first.change.offset)]
    position = (first.change.partition, first.change.offset)
    cut = next(i for i, r in enumerate(batch.records) if (r.partition, r.offset) == position)
    changes = batch.changes[:kept]
    upserts = sum(1 for change in changes if type(change.op) is Upsert)
    # Records before the cut are changes or skips (a dead letter would have halted earlier).
    return Batch(batch.records[:cut], changes, [], cut - kept, upserts,
                 halt_reason(batch.records[cut], first.dead_letter))


def end_positions(records: Sequence[RecordLike], partitions: int) -> dict[int, int]:
    """The position each partition of the batch ends at (its last record's offset + 1).

    The records are in offset order within each partition, so the scan runs backwards and stops
    once it has seen `partitions` partitions (all the consumer owns).
    """
    end: dict[int, int] = {}
    for record in reversed(records):
        if record.partition not in end:
            end[record.partition] = record.offset + 1
            if len(end) == partitions:
                break
    return end
