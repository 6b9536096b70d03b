"""`spec.order`: the order value of an op, and the rule that skips an op older than its key's last.

An order value is an int or a CEL timestamp; both become one Python int (a timestamp as
nanoseconds since the epoch), so every comparison, in the pipeline and in the stores, is an
integer comparison. A spec's expression has one type (validation refuses any static type but int,
timestamp and dyn); a `dyn` one (`event.version` read from JSON) may give either, and the two then
compare on that one scale.

The rule (spec.md "Per-record semantics", extended in the README): an UPSERT or DELETE of a key
applies only when its order value is at least the one last applied to that key (ties apply: the
later record wins); an older one is a skip with reason `stale`. A DELETE leaves a marker of its
order value that lasts `orderRetention` after the delete record's timestamp. The stores apply the
rule inside their atomic write; `OrderTracker` is the same rule in memory, for `provisioner test`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from provisioner.expr.times import Timestamp, datetime_ns
from provisioner.pipeline.ops import STALE, Change, Delete, Op, Upsert, render_key

# Every order value lies within these bounds: int64, and CEL timestamps (years 1 to 9999) in ns.
ORDER_MIN: Final = -(10**21)
ORDER_MAX: Final = 10**21
_ORDER_WIDTH: Final = 22


def order_of(value: Any) -> int | str:
    """The order value of an expression's result: an int, or (a str) why the result is not one."""
    kind = type(value)
    if kind is int:
        return value  # type: ignore[no-any-return]
    if kind is Timestamp:
        return value.ns  # type: ignore[no-any-return]
    if isinstance(value, datetime) and value.tzinfo is not None:
        return datetime_ns(value)  # `record.timestamp`: a plain datetime, in microseconds
    if value is None:
        return "order returned null, not int or timestamp"
    if isinstance(value, bool):
        return "order returned bool, not int or timestamp"
    name = {float: "double", str: "string", list: "list", dict: "map", bytes: "bytes"}.get(kind)
    return f"order returned {name or ('uint' if isinstance(value, int) else kind.__name__)}, not int or timestamp"


def order_text(order: int) -> str:
    """`order` as fixed-width decimal text whose byte order is the numeric order (for Redis, where
    Lua compares strings exactly but numbers only as doubles)."""
    return str(order - ORDER_MIN).zfill(_ORDER_WIDTH)


@dataclass(slots=True)
class _Last:
    order: int
    deleted_until_ms: int | None  # a delete's marker: when it expires; None for an upsert


class OrderTracker:
    """The order rule over a sequence of ops, in memory (no TTL, no store): what `provisioner test`
    shows. A delete marker counts while the record at hand is stamped before it expires."""

    def __init__(self, retention_ms: int) -> None:
        self._retention_ms = retention_ms
        self._last: dict[str, _Last] = {}

    def admit(self, op: Op, timestamp_ms: int) -> Op:
        """`op` if it applies, STALE if it is older than its key's last applied op."""
        if not isinstance(op, Upsert | Delete) or op.order is None:
            return op
        order = op.order
        key = render_key(op.key)
        last = self._last.get(key)
        if last is not None:
            expired = last.deleted_until_ms is not None and timestamp_ms >= last.deleted_until_ms
            if not expired and order < last.order:
                return STALE
        deleted_until = None if isinstance(op, Upsert) else timestamp_ms + self._retention_ms
        self._last[key] = _Last(order, deleted_until)
        return op


def newest_per_key(changes: Sequence[Change]) -> tuple[list[Change], int, int]:
    """Of one batch's ordered changes, the one a store applies per key: the highest order value,
    the later record on a tie. Also how many upserts and deletes were older than an earlier change
    of their key in the batch (stale). Keys are compared as rendered text, as Redis names rows."""
    newest: dict[str, Change] = {}
    stale_upserts = stale_deletes = 0
    for change in changes:
        op = change.op
        parts = op.key
        key = parts[0] if len(parts) == 1 and type(parts[0]) is str else render_key(parts)
        held = newest.get(key)
        if held is not None:
            if op.order < held.op.order:  # type: ignore[operator]
                if type(op) is Upsert:
                    stale_upserts += 1
                else:
                    stale_deletes += 1
                continue
            del newest[key]
        newest[key] = change
    return list(newest.values()), stale_upserts, stale_deletes
