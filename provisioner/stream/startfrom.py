"""`source.startFrom` as offsets: where a store with no position starts reading, one rule for both
Kafka clients and for every caller (a new consumer, a replay, the size of a rebuild).

`earliest` is each partition's first offset, `latest` its end, and an RFC 3339 timestamp the first
record at or after that instant, or the end for a partition with none that late. Each client gives
the three look-ups (`OffsetLookup`); the rule never talks to Kafka itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from provisioner.spec.timestamps import to_epoch_ms

__all__ = ["OffsetLookup", "start_offsets"]


class OffsetLookup(Protocol):
    """One topic's offsets as a Kafka client reads them, partitions named by number."""

    def beginnings(self, partitions: Sequence[int]) -> dict[int, int]:
        """The first offset of each partition."""
        ...

    def ends(self, partitions: Sequence[int]) -> dict[int, int]:
        """The next offset of each partition (its end)."""
        ...

    def at_time(self, partitions: Sequence[int], epoch_ms: int) -> dict[int, int | None]:
        """The first offset whose record's timestamp is at or after `epoch_ms`; None where none is."""
        ...


def start_offsets(lookup: OffsetLookup, partitions: Sequence[int], start_from: str) -> dict[int, int]:
    """Where reading `start_from` (earliest, latest or an RFC 3339 timestamp) begins in each of
    `partitions`, keyed by partition number."""
    if not partitions:
        return {}
    if start_from == "earliest":
        return lookup.beginnings(partitions)
    if start_from == "latest":
        return lookup.ends(partitions)
    found = lookup.at_time(partitions, to_epoch_ms(start_from))
    late = [p for p in partitions if found.get(p) is None]
    ends = lookup.ends(late) if late else {}
    return {p: offset if (offset := found.get(p)) is not None else ends[p] for p in partitions}
