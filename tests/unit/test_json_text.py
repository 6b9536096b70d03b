"""Values that are UTF-8 but not JSON are refused in the project's own words: what the parser
expected, what it found (never a raw control character) and the byte offset, which counts UTF-8
bytes where the parser counts characters."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.formats.json_text import NotJson
from provisioner.pipeline.process import decode_failure, decode_value


def refusal(value: bytes) -> str:
    with pytest.raises(ValueError) as raised:
        decode_value(value)
    return decode_failure(raised.value)


@pytest.mark.parametrize(("value", "message"), [
    (b"hello", "expected a value at offset 0, found 'h'"),
    (b"", "expected a value at offset 0, found the end"),
    (b"  ", "expected a value at offset 2, found the end"),
    (b'{"a": 1,}', "expected a property name in double quotes at offset 8, found '}'"),
    (b'{"a" 1}', "expected ':' at offset 5, found '1'"),
    (b"[1 2]", "expected ',' or a closing bracket at offset 3, found '2'"),
    (b"[1,]", "expected a value at offset 3, found ']'"),
    (b'{"a": "unterminated', "a string that is never closed, opened at offset 6"),
    (b'{"a":1} x', "more data after the value at offset 8, found 'x'"),
    (b'"\x01"', "a control character not escaped in a string at offset 1, found '\\x01'"),
    (b'{"a":\x1b}', "expected a value at offset 5, found '\\x1b'"),
    (b'{"a": "x\\qy"}', "an invalid escape in a string at offset 8, found '\\\\q'"),
    (b'"\\uzz"', "an invalid \\u escape in a string at offset 1, found '\\\\uzz\"'"),
    (b'"\xc3\xa9\xc3\xa9" x', "more data after the value at offset 7, found 'x'"),  # bytes, not characters
    (b'["\xe2\x82\xac", tru]', "expected a value at offset 8, found 't'"),
    (b'{"a": NaN}', "NaN is not a JSON value"),
    (b"-Infinity", "-Infinity is not a JSON value"),
])
def test_messages_name_what_was_expected_what_was_found_and_the_byte(value: bytes, message: str) -> None:
    assert refusal(value) == f"value is not JSON ({message})"


def test_the_offset_points_at_the_byte_found() -> None:
    value = '{"name": "Zoë", "city": "Köln" oops}'.encode()
    with pytest.raises(NotJson) as raised:
        decode_value(value)
    assert raised.value.offset is not None and value[raised.value.offset:].startswith(b"oops")


@given(st.text(max_size=40))
def test_any_text_that_is_not_json_is_refused_in_our_words(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        return  # valid JSON: nothing to refuse
    try:
        decode_value(data)
    except ValueError as error:
        message = decode_failure(error)
        assert message.startswith("value is not"), message
        assert message.isprintable() and "line 1 column" not in message and "char " not in message
        offset = getattr(error, "offset", None)
        assert offset is None or 0 <= offset <= len(data)
    else:
        raise AssertionError(f"{data!r} decoded although json.loads refuses it")
