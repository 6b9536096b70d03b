"""Avro's timestamps as CEL timestamps, built straight from the integer on the wire.

`timestamp_ns` goes through a timedelta and a datetime before the Timestamp; here the Timestamp is
made in one call from datetime's own 10-byte state (the form pickle uses: year, month, day, hour,
minute, second, microsecond), whose leading seven bytes are kept per second (events of a stream
mostly share their seconds), at half the cost. The values are the same: the exact `ns`, the
datetime floored to the microsecond, in UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from provisioner.expr.errors import EvaluationError
from provisioner.expr.times import MAX_TIMESTAMP_NS, MIN_TIMESTAMP_NS, Timestamp

__all__ = ["timestamp_from_millis", "timestamp_from_nanos"]

_NS: Final = 1_000_000_000
_MS: Final = 1_000_000
_MIN_MS: Final = -(-MIN_TIMESTAMP_NS // _MS)
_MAX_MS: Final = MAX_TIMESTAMP_NS // _MS
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS_KEPT: Final = 4096
_seconds: dict[int, int] = {}
# datetime's constructor from its state (what unpickling calls), which typeshed does not declare.
_from_state: Final[Callable[[bytes, tzinfo], Timestamp]] = Timestamp  # type: ignore[assignment]


def _second(second: int) -> int:
    """The state of the second `second` after the epoch, as an integer with the microseconds 0."""
    moment = _EPOCH + timedelta(seconds=second)
    state = int.from_bytes(bytes((moment.year >> 8, moment.year & 0xFF, moment.month, moment.day,
                                  moment.hour, moment.minute, moment.second, 0, 0, 0)), "big")
    if len(_seconds) >= _SECONDS_KEPT:
        _seconds.clear()
    _seconds[second] = state
    return state


def timestamp_from_nanos(ns: int) -> Timestamp:
    """The Timestamp `ns` nanoseconds after the epoch; an error out of CEL's range."""
    if not MIN_TIMESTAMP_NS <= ns <= MAX_TIMESTAMP_NS:
        raise EvaluationError("timestamp out of range")
    second, nanos = divmod(ns, _NS)
    ts = _from_state(((_seconds.get(second) or _second(second)) | nanos // 1000).to_bytes(10, "big"), UTC)
    ts.ns = ns
    return ts


def timestamp_from_millis(ms: int) -> Timestamp:
    """The Timestamp `ms` milliseconds after the epoch (the commonest Avro timestamp)."""
    if not _MIN_MS <= ms <= _MAX_MS:
        raise EvaluationError("timestamp out of range")
    second, millis = divmod(ms, 1000)
    ts = _from_state(((_seconds.get(second) or _second(second)) | millis * 1000).to_bytes(10, "big"), UTC)
    ts.ns = ms * _MS
    return ts
