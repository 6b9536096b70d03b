"""The text of a timestamp (CEL's `string()`, what the stores write), with its per-second cache:
the same as writing out the fields, for any instant and after the cache is emptied."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from provisioner.expr import times
from provisioner.expr.times import MAX_TIMESTAMP_NS, MIN_TIMESTAMP_NS, NS, format_timestamp, timestamp_ns


def written_out(ns: int) -> str:
    ts = timestamp_ns(ns)
    fraction = f".{ns % NS:09d}".rstrip("0") if ns % NS else ""
    return (f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
            f"{fraction}Z")


@given(st.integers(MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS), st.sampled_from([1, 1000, 10**6, 10**9]))
def test_the_text_of_any_timestamp_is_its_fields_written_out(ns: int, unit: int) -> None:
    ns -= ns % unit  # whole seconds, milliseconds and microseconds too
    if ns >= MIN_TIMESTAMP_NS:
        assert format_timestamp(timestamp_ns(ns)) == written_out(ns)


def test_the_text_stays_right_past_the_cache_s_size() -> None:
    for second in range(5000):
        ns = second * NS + 120_000_000
        assert format_timestamp(timestamp_ns(ns)) == written_out(ns)
    assert 0 < len(times._seconds_text) <= 4096
    assert format_timestamp(timestamp_ns(-1)) == "1969-12-31T23:59:59.999999999Z"
    assert format_timestamp(timestamp_ns(0)) == "1970-01-01T00:00:00Z"
