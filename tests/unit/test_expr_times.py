"""CEL timestamps and durations keep their nanoseconds through comparison, hashing, copy and pickle."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta

from provisioner.expr.times import Duration, Timestamp, duration_ns, timestamp_ns


def test_timestamps_compare_and_hash_by_nanoseconds() -> None:
    a, b = timestamp_ns(1_000_000_001), timestamp_ns(1_000_000_002)
    assert a != b and a < b and b > a and a <= timestamp_ns(1_000_000_001)
    assert hash(a) == hash(timestamp_ns(1_000_000_001))
    assert timestamp_ns(1_000_000_000) == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert a != datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)  # the microsecond part hides 1 ns


def test_durations_compare_and_hash_by_nanoseconds() -> None:
    assert duration_ns(5) != timedelta(0) and duration_ns(5) < duration_ns(6)
    assert duration_ns(1000) == timedelta(microseconds=1)
    assert hash(duration_ns(7)) == hash(duration_ns(7))


def test_copy_and_pickle_keep_nanoseconds() -> None:
    for value in (timestamp_ns(1_700_000_000_123_456_789), duration_ns(-1_500_000_001)):
        for twin in (copy.copy(value), copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
            assert type(twin) is type(value) and twin.ns == value.ns and twin == value
    assert isinstance(timestamp_ns(0), Timestamp) and isinstance(duration_ns(0), Duration)
