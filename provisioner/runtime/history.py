"""The history of one key: every record of the source topic about it, what the spec made of each,
and whether the store's row is what those records give.

Who calls it: `provisioner explain`. Each record whose key (`pipeline.keyof`) renders to the key is
run through the same `Pipeline` the consumer runs, and an upsert or delete through the store's own
`prepare` (which refuses what the store cannot hold: a stage-`store` dead letter). Records at or
past the store's position in their partition are not applied yet and are marked so. Folding the
applied records in order (an upsert replaces the row, a delete removes it, anything else leaves
it) gives the row the store should hold; the store then says whether it holds exactly that, in its
own representation (`holds_row`).

Where to read: when the key is the record key and the producer used Kafka's default partitioner
(murmur2 of the key bytes, as the Java client and kafka-python do), all of a key's records are on
one partition, so only that one is read (`key_partition`). Otherwise every partition is scanned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from provisioner.pipeline.keyof import KeyOf, key_is_record_key
from provisioner.pipeline.ops import Change, Delete, KeyPart, Op, RecordLike, Upsert, render_key
from provisioner.pipeline.process import Pipeline
from provisioner.pipeline.testing import op_to_dict
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.base import Store
from provisioner.stream.scan import Progress, scan_topic, topic_range
from provisioner.stream.settings import KafkaTarget

__all__ = ["Explanation", "KeyedStore", "Step", "explain_key", "fold", "key_partition", "parse_key"]

Verdict = Literal["match", "mismatch", "unseen", "unknown", "not-applicable"]


class KeyedStore(Store, Protocol):
    """A store that can read one key's row back (Redis and Postgres)."""

    def read_row(self, key: tuple[KeyPart, ...]) -> dict[str, Any] | None: ...

    def holds_row(self, key: tuple[KeyPart, ...], row: Mapping[str, Any] | None) -> bool: ...


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record with `key` (murmur2, positive)."""
    from kafka.partitioner.default import murmur2

    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def parse_key(product: DataProduct, parts: Sequence[str]) -> tuple[str, ...]:
    """The key as given on the command line: one `--key` per key field, or one `--key` with the
    parts joined by `:` (split into as many parts as the key has fields). ValueError when the
    count does not fit."""
    count = len(product.key_fields)
    if len(parts) == 1 and count > 1:
        parts = parts[0].split(":", count - 1)
    if len(parts) != count:
        names = ", ".join(product.key_fields)
        raise ValueError(f"the key of {product.name!r} has {count} part(s) ({names}): give one --key per part, "
                         "or one --key with the parts joined by ':'")
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class Step:
    """One record about the key and what the spec did with it."""

    partition: int
    offset: int
    timestamp_ms: int
    op: Op
    applied: bool  # before the store's position in its partition: the store has applied it

    def to_dict(self) -> dict[str, Any]:
        when = datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)
        return {"partition": self.partition, "offset": self.offset,
                "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "applied": self.applied, **op_to_dict(self.op)}


def fold(steps: Sequence[Step]) -> tuple[Step | None, bool]:
    """The step whose op decides the row (the last applied upsert or delete), and whether any
    applied step decided it."""
    decisive = [step for step in steps if step.applied and isinstance(step.op, Upsert | Delete)]
    return (decisive[-1], True) if decisive else (None, False)


@dataclass(slots=True)
class Explanation:
    """What `explain` found for one key of one store."""

    product: str
    store: str
    key: str
    row: dict[str, Any] | None
    steps: list[Step] = field(default_factory=list)
    partitions_read: list[int] = field(default_factory=list)
    shortcut: bool = False
    since_ms: int | None = None
    produced_by: Step | None = None
    verdict: Verdict = "unseen"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        produced = self.produced_by
        return {
            "product": self.product, "store": self.store, "key": self.key, "row": self.row,
            "verdict": self.verdict, "notes": self.notes,
            "producedBy": None if produced is None else {"partition": produced.partition, "offset": produced.offset},
            "partitionsRead": self.partitions_read, "partitionShortcut": self.shortcut,
            "records": [step.to_dict() for step in self.steps],
        }


def _judge(op: Op, store: KeyedStore, record: RecordLike) -> Op:
    """`op` as the consumer would end it: an upsert or delete the store cannot hold is a dead letter."""
    if not isinstance(op, Upsert | Delete):
        return op
    _, rejected = store.prepare([Change(record.partition, record.offset, record.timestamp, op)])
    return rejected[0].dead_letter if rejected else op


def explain_key(product: DataProduct, store_spec: StoreSpec, store: KeyedStore, kafka: KafkaTarget,
                key: tuple[str, ...], *, since_ms: int | None = None, all_partitions: bool = False,
                on_progress: Progress | None = None) -> Explanation:
    """The key's history in the source topic and the verdict on the store's row (see the module)."""
    topic = product.spec.source.topic
    wanted = render_key(key)
    explanation = Explanation(product.name, store_spec.name, wanted, store.read_row(key), since_ms=since_ms)
    positions = store.read_positions()
    everything = topic_range(kafka, topic, since_ms=since_ms)
    partitions = sorted(everything.ends)
    if key_is_record_key(product) and not all_partitions:
        partitions = [key_partition(wanted.encode("utf-8"), len(everything.ends))]
        explanation.shortcut = True
    where = topic_range(kafka, topic, partitions=partitions, since_ms=since_ms)
    explanation.partitions_read = partitions
    about_key, pipeline = KeyOf(product).matcher(wanted), Pipeline(product)
    steps: list[Step] = []
    for record in scan_topic(kafka, where, on_progress):
        if not about_key(record):
            continue
        op = _judge(pipeline.process(record), store, record)
        applied = record.offset < positions.get(record.partition, 0)
        steps.append(Step(record.partition, record.offset, record.timestamp, op, applied))
    on_several = len({step.partition for step in steps}) > 1
    # One partition: offset order, the consumer's. Several: the consumer interleaves them by batch,
    # so time order is the best reading (and a note says the outcome may differ).
    steps.sort(key=(lambda s: (s.timestamp_ms, s.partition, s.offset)) if on_several
               else (lambda s: (s.partition, s.offset)))
    explanation.steps = steps
    _verdict(explanation, store_spec, store, on_several)
    return explanation


def _verdict(explanation: Explanation, store_spec: StoreSpec, store: KeyedStore, on_several: bool) -> None:
    steps, row, notes = explanation.steps, explanation.row, explanation.notes
    if on_several:
        notes.append("the key's records are on several partitions: the consumer applies each partition in order "
                     "but interleaves partitions by batch, so the last one applied may not be the latest in time")
    if any(not step.applied for step in steps):
        notes.append("records at or past the store's position are not applied yet (the consumer lags)")
    if store_spec.postgres is not None and store_spec.postgres.mode == "append":
        explanation.verdict = "not-applicable"
        notes.append("an append-mode table keeps every op as a row: the row shown is the last appended")
        return
    decisive, decided = fold(steps)
    explanation.produced_by = decisive if decisive is not None and isinstance(decisive.op, Upsert) else None
    if not steps:
        explanation.verdict = "unseen" if row is None else "unknown" if explanation.since_ms is not None else "mismatch"
        if row is not None:
            notes.append("no record read has this key, yet the store holds a row"
                         + (" (it may come from before --since)" if explanation.since_ms is not None else "")
                         + (" (if the producer does not use Kafka's default partitioner, use --all-partitions)"
                            if explanation.shortcut else ""))
        elif explanation.shortcut:
            notes.append("only the key's partition under Kafka's default partitioner was read; "
                         "--all-partitions reads every one")
        return
    if not decided:
        # Nothing applied set or removed the row in what was read.
        if explanation.since_ms is not None and row is not None:
            explanation.verdict = "unknown"
            notes.append("no upsert or delete of the key since --since: the row comes from earlier records")
            return
        explanation.verdict = "match" if row is None else "mismatch"
        return
    assert decisive is not None and isinstance(decisive.op, Upsert | Delete)
    expected = decisive.op.row if isinstance(decisive.op, Upsert) else None
    explanation.verdict = "match" if store.holds_row(decisive.op.key, expected) else "mismatch"
    if explanation.verdict == "mismatch" and row is None and store_spec.redis is not None and store_spec.redis.ttl:
        notes.append(f"the store has a ttl ({store_spec.redis.ttl}): the row may have expired")
