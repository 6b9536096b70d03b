"""Try a (changed) spec on the records that are dead letters now, before shipping it.

Who calls it: `provisioner test SPEC --dead-letters`. Each dead letter holds the refused record
(key, value, its own headers) and where it was (`provisioner.source.*`); the record is rebuilt from
those and run through the spec's `Pipeline`, and an upsert or delete through the store's own
`prepare` (pure: it converts without connecting), exactly as the consumer would. A record refused
again by the same store (a dead letter sent twice after a retried batch) is tried once.

The dead letter does not keep the record's own timestamp: the dead letter's (when it was refused)
stands in for it, so an expression reading `record.timestamp` sees that instant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from provisioner.pipeline.ops import Change, DeadLetter, Delete, Op, Record, Upsert
from provisioner.pipeline.process import Pipeline
from provisioner.pipeline.testing import op_to_dict
from provisioner.runtime.dead_letter_report import DeadLetterEntry
from provisioner.runtime.safe_text import preview_bytes, safe_text
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.base import Store
from provisioner.stores.registry import open_store
from provisioner.stream.deadletters import MAX_DEAD_LETTER_BYTES

__all__ = ["RetryOutcome", "retry_dead_letters"]

# `prepare` never connects: these URLs only satisfy the constructors.
_OFFLINE_URLS = {"redis": "redis://offline.invalid:6379/0", "postgres": "postgresql://offline.invalid/offline"}


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """One dead letter tried again: what refused it then, and the op the spec gives it now."""

    entry: DeadLetterEntry
    op: Op

    @property
    def passes(self) -> bool:
        return not isinstance(self.op, DeadLetter)

    def to_dict(self) -> dict[str, Any]:
        entry = self.entry
        return {
            "store": entry.store, "passes": self.passes,
            "source": {"topic": entry.source_topic, "partition": entry.source_partition, "offset": entry.source_offset},
            "key": preview_bytes(entry.key, 80),
            "was": {"stage": entry.stage, "message": safe_text(entry.message, 4096)},
            "now": op_to_dict(self.op),
        }


def _record(entry: DeadLetterEntry) -> Record:
    return Record(topic=entry.source_topic, partition=entry.source_partition or 0, offset=entry.source_offset or 0,
                  timestamp=entry.timestamp_ms, key=entry.key, value=entry.value, headers=entry.headers)


def _offline_store(product: DataProduct, store_spec: StoreSpec) -> Store:
    return open_store(product, store_spec, _OFFLINE_URLS[store_spec.kind])


def retry_dead_letters(product: DataProduct, entries: Iterable[DeadLetterEntry]) -> list[RetryOutcome]:
    """Every distinct dead letter of `entries` (per store and source record) run through
    `product`'s pipeline and the refusing store's conversions, in the order read. Dead letters
    of a store the spec no longer has are left out."""
    pipeline = Pipeline(product)
    names = {spec.name for spec in product.spec.stores}
    stores: dict[str, Store] = {}
    seen: set[tuple[str, str, int | None, int | None]] = set()
    outcomes: list[RetryOutcome] = []
    for entry in entries:
        identity = (entry.store, entry.source_topic, entry.source_partition, entry.source_offset)
        if entry.store not in names or identity in seen:
            continue
        seen.add(identity)
        if entry.truncated:
            outcomes.append(RetryOutcome(entry, DeadLetter(
                "decode", f"not tried: the record was larger than {MAX_DEAD_LETTER_BYTES:,} bytes, so its dead "
                          "letter keeps only its start (read it from the source topic at the offset above)")))
            continue
        record = _record(entry)
        op = pipeline.process(record)
        if isinstance(op, Upsert | Delete):
            store = stores.get(entry.store)
            if store is None:
                store = stores[entry.store] = _offline_store(product, product.store(entry.store))
            _, rejected = store.prepare([Change(record.partition, record.offset, record.timestamp, op)])
            if rejected:
                op = rejected[0].dead_letter
        outcomes.append(RetryOutcome(entry, op))
    return outcomes
