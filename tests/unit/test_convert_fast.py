"""The shortcuts of the Postgres conversions give what the general paths give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from provisioner.stores.convert import ConversionError, _to_timestamptz, to_timestamptz, utc_text
from provisioner.stores.postgres import _fast


def outcome(value: object) -> str | None:
    try:
        return _to_timestamptz(value)
    except ConversionError:
        return "refused"


def fast_outcome(value: object) -> str | None:
    try:
        return to_timestamptz(value)
    except ConversionError:
        return "refused"


moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
digits = st.text(alphabet="0123456789", min_size=0, max_size=8)


@st.composite
def timestamp_texts(draw: st.DrawFn) -> str:
    moment = draw(moments)
    text = moment.strftime("%Y-%m-%d") + draw(st.sampled_from("Tt ")) + moment.strftime("%H:%M:%S")
    fraction = draw(digits)
    if fraction:
        text += "." + fraction
    text += draw(st.sampled_from(["Z", "z", "+00:00", "+02:00", ""]))
    if draw(st.booleans()):
        # Mangle one character: an invalid date, hour, digit or separator.
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.sampled_from("93x-:٣")) + text[at + 1:]
    return text


@given(timestamp_texts())
def test_timestamptz_fast_path_agrees_with_the_general_path(text: str) -> None:
    assert fast_outcome(text) == outcome(text)


@given(timestamp_texts())
def test_utc_text_passed_as_is_means_the_same_instant(text: str) -> None:
    column = _fast("timestamptz", to_timestamptz)
    if utc_text(text):
        assert column(text) == text
        assert datetime.fromisoformat(text) == datetime.fromisoformat(outcome(text) or "")
    else:
        assert fast_outcome(text) == (column(text) if outcome(text) != "refused" else "refused")


def test_key_columns_keep_the_canonical_text() -> None:
    key = _fast("timestamptz", to_timestamptz, key=True)
    assert key("2026-01-01T00:00:00.276Z") == "2026-01-01T00:00:00.276000+00:00"
    assert key("2026-01-01T00:00:00.000Z") == key("2026-01-01T00:00:00Z") == "2026-01-01T00:00:00+00:00"


def test_edge_dates() -> None:
    assert to_timestamptz("0001-01-01T00:00:00Z") == "0001-01-01T00:00:00+00:00"
    assert to_timestamptz("9999-12-31T23:59:59.999999Z") == "9999-12-31T23:59:59.999999+00:00"
    assert to_timestamptz(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=5)) == (
        "2026-01-01T00:00:00.000005+00:00")
    assert not utc_text("0000-01-01T00:00:00Z")
