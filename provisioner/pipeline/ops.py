"""The values that flow from Kafka through the pipeline into the stores.

`Record` is what the consumer reads; `Op` is what the pure pipeline makes of it; a `Change` is an
op tagged with the position of the record it came from, which is what a store applies. They are
plain slotted dataclasses, frozen except those built for every record (`Upsert`, `Delete`,
`Change`): a frozen dataclass sets each field through object.__setattr__, which makes building one
about three times dearer. Nothing changes them once built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Stage = Literal["decode", "schema", "filter", "delete", "fields", "key", "order", "store"]
KeyPart = str | int


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as the pipeline sees it (value `None` is a tombstone).

    Its attribute names are those of kafka-python's ConsumerRecord (`timestamp` in milliseconds),
    so the consumer hands the pipeline Kafka's records as they come, with no copy.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


class RecordLike(Protocol):
    """Any record with Record's attributes: ours, or kafka-python's ConsumerRecord."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(slots=True)
class Upsert:
    """Insert or replace the row identified by `key` (the key fields' values, in `key` order)."""

    key: tuple[KeyPart, ...]
    row: Mapping[str, Any]
    order: int | None = None  # `spec.order` as an int (a timestamp in ns since the epoch); None: unordered
    kind: Literal["upsert"] = field(default="upsert", init=False)


@dataclass(slots=True)
class Delete:
    """Remove the row identified by `key`."""

    key: tuple[KeyPart, ...]
    order: int | None = None  # as Upsert.order
    kind: Literal["delete"] = field(default="delete", init=False)


@dataclass(frozen=True, slots=True)
class Skip:
    """The filter dropped the record, or (reason `stale`) its op is older than the last one applied
    to its key (`spec.order`); it only advances the position."""

    reason: Literal["filter", "stale"] = "filter"
    kind: Literal["skip"] = field(default="skip", init=False)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The record cannot be applied; it goes to the dead-letter topic with `stage` and `message`."""

    stage: Stage
    message: str
    kind: Literal["deadLetter"] = field(default="deadLetter", init=False)


Op = Upsert | Delete | Skip | DeadLetter

SKIP = Skip()
STALE = Skip("stale")


@dataclass(slots=True)
class Change:
    """An op with the position of its record: what a store applies (append mode needs the position)."""

    partition: int
    offset: int
    timestamp_ms: int
    op: Upsert | Delete


def render_key(key: tuple[KeyPart, ...]) -> str:
    """Key text per spec.md "Keys": strings as they are, ints in decimal, parts joined with ':'."""
    if len(key) == 1:
        part = key[0]
        return part if isinstance(part, str) else str(part)
    return ":".join(part if isinstance(part, str) else str(part) for part in key)
