"""A product's dead letters, read back from its dead-letter topic and grouped for a person.

Who calls it: `provisioner deadletters` (groups or a list) and `provisioner test --dead-letters`
(the original records). A dead letter is the refused record itself (key, value, its own headers)
plus the `provisioner.*` headers `stream.deadletters` adds: which product and store refused it, at
which stage and why, and where the record was in the source topic. Those headers are all this
module trusts; a message without `provisioner.product` (not ours) is passed over.

Grouping is by (store, stage, message): counts, first and last seen (the dead letter's own
timestamp: when the consumer refused it) and a few samples with their source coordinates. Samples
keep previews, not values, so grouping a million dead letters holds a few kilobytes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from provisioner.pipeline.ops import RecordLike
from provisioner.runtime.safe_text import preview_bytes, safe_text
from provisioner.spec.models import DataProduct
from provisioner.stream.deadletters import TRUNCATED_KEY_HEADER, TRUNCATED_VALUE_HEADER
from provisioner.stream.scan import Progress, TopicMissing, scan_topic, topic_range
from provisioner.stream.settings import KafkaTarget

__all__ = ["DeadLetterEntry", "DeadLetterGroup", "entry_of", "group_entries", "latest", "product_label",
           "read_dead_letters"]

SAMPLES = 3
T = TypeVar("T")


def product_label(product: DataProduct) -> str:
    """`<namespace>/<name>`, as the `provisioner.product` header names a product."""
    return f"{product.metadata.namespace}/{product.name}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One dead letter: why and where the record was refused, and the record as it was."""

    product: str
    store: str
    stage: str
    message: str
    version: str | None
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    timestamp_ms: int
    partition: int  # where the dead letter itself is, in the dead-letter topic
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]  # the record's own headers, without provisioner.*
    truncated: bool = False  # the dead letter holds only the start of the record's key or value

    @property
    def source(self) -> str:
        return f"{self.source_topic}[{self.source_partition}]@{self.source_offset}"

    def to_dict(self) -> dict[str, Any]:
        """For `-o json` and the list: every text made safe, the value previewed."""
        return {
            "store": self.store, "stage": self.stage, "message": safe_text(self.message, 4096),
            "version": self.version, "seen": _iso(self.timestamp_ms),
            "source": {"topic": self.source_topic, "partition": self.source_partition, "offset": self.source_offset},
            "deadLetter": {"partition": self.partition, "offset": self.offset},
            "key": preview_bytes(self.key), "value": preview_bytes(self.value),
            "headers": {safe_text(name, 200): preview_bytes(value) for name, value in self.headers},
            "truncated": self.truncated,
        }


def entry_of(record: RecordLike) -> DeadLetterEntry | None:
    """The dead letter a record of a dead-letter topic holds, None when it is not one of ours."""
    ours: dict[str, str] = {}
    own: list[tuple[str, bytes]] = []
    for name, raw in record.headers or ():
        value = raw if isinstance(raw, bytes) else b"" if raw is None else str(raw).encode()
        if name.startswith("provisioner."):
            ours[name] = value.decode("utf-8", "replace")
        else:
            own.append((name, value))
    if "provisioner.product" not in ours:
        return None
    return DeadLetterEntry(
        product=ours["provisioner.product"], store=ours.get("provisioner.store", ""),
        stage=ours.get("provisioner.error.stage", "?"), message=ours.get("provisioner.error.message", ""),
        version=ours.get("provisioner.version"), source_topic=ours.get("provisioner.source.topic", ""),
        source_partition=_int(ours.get("provisioner.source.partition")),
        source_offset=_int(ours.get("provisioner.source.offset")),
        timestamp_ms=record.timestamp, partition=record.partition, offset=record.offset,
        key=record.key, value=record.value, headers=tuple(own),
        truncated=TRUNCATED_VALUE_HEADER in ours or TRUNCATED_KEY_HEADER in ours,
    )


def read_dead_letters(kafka: KafkaTarget, product: DataProduct, *, stores: Iterable[str] | None = None,
                      stage: str | None = None, since_ms: int | None = None,
                      on_progress: Progress | None = None) -> Iterator[DeadLetterEntry]:
    """The product's dead letters in its dead-letter topic (only `stores`' and `stage`'s when
    given; only those sent at or after `since_ms`), up to the topic's end when the read began."""
    label = product_label(product)
    wanted = None if stores is None else frozenset(stores)
    try:
        where = topic_range(kafka, product.dead_letter_topic, since_ms=since_ms)
    except TopicMissing:
        return  # no store ever sent a dead letter
    for record in scan_topic(kafka, where, on_progress):
        entry = entry_of(record)
        if entry is None or entry.product != label:
            continue
        if (wanted is not None and entry.store not in wanted) or (stage is not None and entry.stage != stage):
            continue
        yield entry


@dataclass(slots=True)
class DeadLetterGroup:
    """Dead letters of one store refused at one stage with one message."""

    store: str
    stage: str
    message: str
    count: int = 0
    first_ms: int = 0
    last_ms: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, entry: DeadLetterEntry, samples: int) -> None:
        self.first_ms = entry.timestamp_ms if self.count == 0 else min(self.first_ms, entry.timestamp_ms)
        self.last_ms = max(self.last_ms, entry.timestamp_ms)
        self.count += 1
        if len(self.samples) < samples:
            self.samples.append({
                "source": {"topic": entry.source_topic, "partition": entry.source_partition,
                           "offset": entry.source_offset},
                "key": preview_bytes(entry.key, 80), "value": preview_bytes(entry.value),
            })

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "stage": self.stage, "message": safe_text(self.message, 4096),
                "count": self.count, "firstSeen": _iso(self.first_ms), "lastSeen": _iso(self.last_ms),
                "samples": self.samples}


def group_entries(entries: Iterable[DeadLetterEntry], samples: int = SAMPLES) -> list[DeadLetterGroup]:
    """Dead letters grouped by (store, stage, message), the largest groups first (then by store,
    stage, message, so the order is stable)."""
    groups: dict[tuple[str, str, str], DeadLetterGroup] = {}
    for entry in entries:
        key = (entry.store, entry.stage, entry.message)
        group = groups.get(key)
        if group is None:
            group = groups[key] = DeadLetterGroup(*key)
        group.add(entry, samples)
    return sorted(groups.values(), key=lambda g: (-g.count, g.store, g.stage, g.message))


def latest(items: Iterable[T], limit: int) -> list[T]:
    """The last `limit` of `items` (dead letters: the most recent of each partition come last),
    holding no more than `limit` at a time."""
    return list(deque(items, maxlen=limit))
