"""CEL timestamps and durations keep their nanoseconds through comparison, hashing, copy and pickle;
the per-second state and text kept to build and parse them fast give what building them field by
field gives."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.expr.errors import EvaluationError
from provisioner.expr.times import (
    MAX_TIMESTAMP_NS,
    MIN_TIMESTAMP_NS,
    NS,
    Duration,
    Timestamp,
    duration_ns,
    parse_timestamp,
    timestamp_ns,
)


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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS))
def test_a_timestamp_built_from_kept_state_equals_one_built_field_by_field(ns: int) -> None:
    ts = timestamp_ns(ns)
    built = _EPOCH + timedelta(microseconds=ns // 1000)
    assert type(ts) is Timestamp and ts.ns == ns and ts.tzinfo is UTC
    assert (ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond, ts.fold) == (
        built.year, built.month, built.day, built.hour, built.minute, built.second, built.microsecond, 0)


@given(st.integers(MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS), st.integers(0, 9), st.sampled_from(["Z", "z", "+01:30", "-00:00"]),
       st.sampled_from(["T", "t"]))
def test_parsing_the_same_second_again_gives_what_the_first_parse_gave(ns: int, digits: int, zone: str, sep: str) -> None:
    ts = timestamp_ns(ns)
    fraction = f".{ns % NS:09d}"[:digits + 1] if digits else ""
    text = f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}{sep}{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}{fraction}{zone}"
    try:
        first = parse_timestamp(text)
    except EvaluationError:
        return  # an offset that takes it out of range
    again = parse_timestamp(text)  # its second is now kept: the short path for Z forms
    assert (type(again), again.ns, again.isoformat()) == (type(first), first.ns, first.isoformat())
    if zone in ("Z", "z"):
        assert first.ns == ns - ns % NS + (int(fraction[1:].ljust(9, "0")) if digits else 0)


@pytest.mark.parametrize("text", ["2026-01-01T00:00:00.Z", "2026-01-01T00:00:00.1234567890Z", "2026-01-01T00:00:00.١Z",
                                  "2026-01-01T00:00:00.5", "2026-01-01T00:00:00.5Zx", "2026-01-01T00:00:00 Z",
                                  "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00"])
def test_a_kept_second_does_not_let_a_bad_ending_through(text: str) -> None:
    parse_timestamp("2026-01-01T00:00:00Z")  # the second kept
    with pytest.raises(EvaluationError, match="cannot parse"):
        parse_timestamp(text)
