"""Avro's timestamps as CEL timestamps, built straight from the integer on the wire (through the
per-second datetime state `expr.times` keeps), without a timedelta or a datetime in between."""

from __future__ import annotations

from typing import Final

from provisioner.expr.errors import EvaluationError
from provisioner.expr.times import (
    MAX_TIMESTAMP_NS,
    MIN_TIMESTAMP_NS,
    Timestamp,
    second_state,
    timestamp_ns,
    timestamp_of_state,
)

__all__ = ["timestamp_from_millis", "timestamp_from_nanos"]

_MS: Final = 1_000_000
_MIN_MS: Final = -(-MIN_TIMESTAMP_NS // _MS)
_MAX_MS: Final = MAX_TIMESTAMP_NS // _MS

timestamp_from_nanos = timestamp_ns
"""The Timestamp `ns` nanoseconds after the epoch; an error out of CEL's range."""


def timestamp_from_millis(ms: int) -> Timestamp:
    """The Timestamp `ms` milliseconds after the epoch (the commonest Avro timestamp)."""
    if not _MIN_MS <= ms <= _MAX_MS:
        raise EvaluationError("timestamp out of range")
    second, millis = divmod(ms, 1000)
    return timestamp_of_state(second_state(second) | millis * 1000, ms * _MS)
