"""The wording layer: every pydantic error type in the user's words, located where the user wrote it."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core.core_schema import ErrorType
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.spec.durations import DURATION_PATTERN
from provisioner.spec.models import DataProduct
from provisioner.spec.wording import message, option_message, shown, translate

# Library phrasing no finding or option error may contain (kept in step with test_fuzz_validate.py).
FORBIDDEN = ("Input should", "validation error", "pydantic", "errors.pydantic.dev", "Value error", "type=",
             "ModelField", "BaseModel", "function-after", "function-before", "constrained-", "Traceback",
             "Assertion failed", "unable to parse")

# Context pydantic gives each error type that has one (the values a real error would carry).
CONTEXT: dict[str, dict[str, Any]] = {
    "greater_than": {"gt": 0}, "greater_than_equal": {"ge": 1}, "less_than": {"lt": 10},
    "less_than_equal": {"le": 64}, "multiple_of": {"multiple_of": 2},
    "too_short": {"field_type": "List", "min_length": 1, "actual_length": 0},
    "too_long": {"field_type": "Dictionary", "max_length": 16, "actual_length": 17},
    "string_too_short": {"min_length": 3}, "string_too_long": {"max_length": 200},
    "string_pattern_mismatch": {"pattern": DURATION_PATTERN},
    "literal_error": {"expected": "'hash' or 'json'"}, "enum": {"expected": "'a' or 'b'"},
    "value_error": {"error": ValueError("'x' is not a legal Kafka topic name")},
    "assertion_error": {"error": AssertionError("never")},
    "union_tag_invalid": {"discriminator": "'kind'", "tag": "x", "expected_tags": "'a', 'b'"},
    "union_tag_not_found": {"discriminator": "'kind'"},
    "url_scheme": {"expected_schemes": "'redis'"}, "url_too_long": {"max_length": 10},
    "uuid_version": {"expected_version": 4},
    "bytes_too_short": {"min_length": 1}, "bytes_too_long": {"max_length": 9},
}


@pytest.mark.parametrize("kind", get_args(ErrorType))
def test_every_pydantic_error_type_has_words(kind: str) -> None:
    text = message(kind, CONTEXT.get(kind), "bogus")
    assert text and not any(phrase in text for phrase in FORBIDDEN), text
    assert "^" not in text and "\\d" not in text  # never a regex


@pytest.mark.parametrize(("kind", "ctx", "value", "expected"), [
    ("string_type", None, 5, "expected a string, got 5"),
    ("int_type", None, True, "expected an integer, got true"),
    ("int_from_float", None, 1.5, "expected an integer, got 1.5"),
    ("dict_type", None, [1], "expected a mapping, got a list"),
    ("model_type", None, "x", "expected a mapping, got 'x'"),
    ("list_type", None, {"a": 1}, "expected a list, got a mapping"),
    ("bool_type", None, None, "expected true or false, got null"),
    ("missing", None, {}, "required field is missing"),
    ("extra_forbidden", None, 1, "unknown field"),
    ("literal_error", {"expected": "'deadLetter', 'stop' or 'skip'"}, "bogus",
     "must be one of deadLetter, stop or skip, got 'bogus'"),
    ("greater_than_equal", {"ge": 0}, -1, "must be at least 0, got -1"),
    ("less_than_equal", {"le": 64}, 65, "must be at most 64, got 65"),
    ("too_short", {"field_type": "List", "min_length": 1, "actual_length": 0}, [], "must not be empty"),
    ("too_long", {"field_type": "List", "max_length": 16, "actual_length": 17}, [], "has 17 items, at most 16 allowed"),
    ("string_too_long", {"max_length": 200}, "x" * 201, "must have at most 200 characters"),
    ("string_pattern_mismatch", {"pattern": DURATION_PATTERN}, "3 weeks",
     "must be a duration: a number with a unit ms, s, m, h or d, e.g. 30s, 24h or 1h30m, got '3 weeks'"),
    ("string_pattern_mismatch", {"pattern": "^[a]+$"}, "b", "'b' is not in the accepted form"),
    ("value_error", {"error": ValueError("set exactly one of url or secretRef")}, {},
     "set exactly one of url or secretRef"),
    ("int_parsing_size", None, "9" * 50, "'9999999999999999999999999999999999999...' is too large a number"),
    ("recursion_loop", None, [], "is nested too deeply"),
])
def test_translation(kind: str, ctx: dict[str, Any] | None, value: Any, expected: str) -> None:
    assert message(kind, ctx, value) == expected


def test_values_are_shown_as_yaml_and_short() -> None:
    assert [shown(v) for v in (None, True, 3, 2.5, "a", [1], {"a": 1})] == [
        "null", "true", "3", "2.5", "'a'", "a list", "a mapping"]
    assert len(shown("x" * 1000)) < 50
    assert shown("\udc80") == "'\\udc80'"  # a lone surrogate cannot break the output


class _Inner(BaseModel):
    count: int = Field(default=0, strict=True, ge=0)


class _Outer(BaseModel):
    key: str | list[str] | None = None
    parts: list[str | int] = []
    inner: _Inner | None = None
    labels: dict[str, str] = {}


def _worded(data: Any) -> list[tuple[tuple[Any, ...], str]]:
    try:
        _Outer.model_validate(data)
    except ValidationError as error:
        return [(w.path, w.message) for w in translate(data, error.errors())]
    raise AssertionError("expected the data to be refused")


def test_a_union_is_one_finding_at_the_field_without_tags() -> None:
    assert _worded({"key": 5}) == [(("key",), "expected a string or a list, got 5")]


def test_a_union_tag_that_is_also_a_key_of_the_value_is_not_a_path() -> None:
    assert _worded({"key": {"str": 1}}) == [(("key",), "expected a string or a list, got a mapping")]


def test_the_branch_that_got_further_speaks_for_the_union() -> None:
    assert _worded({"key": [1, "a", 2]}) == [(("key", 0), "expected a string, got 1"),
                                             (("key", 2), "expected a string, got 2")]


def test_list_items_of_a_union_type_are_merged_per_item() -> None:
    assert _worded({"parts": ["a", 1.5]}) == [(("parts", 1), "expected a string or an integer, got 1.5")]


def test_nested_and_missing_and_key_errors_are_located() -> None:
    assert _worded({"inner": {"count": True}}) == [(("inner", "count"), "expected an integer, got true")]
    assert _worded({"labels": {5: "x"}}) == [(("labels", "5"), "keys must be strings, got 5")]


def test_keys_that_are_not_strings_are_named_as_yaml_wrote_them() -> None:
    data = {None: 1, False: 2, "kind": "DataProduct"}
    with pytest.raises(ValidationError) as caught:
        DataProduct.model_validate(data)
    worded = [(w.path, w.message) for w in translate(data, caught.value.errors()) if "keys" in w.message]
    assert worded == [(("null",), "keys must be strings, got null"), (("false",), "keys must be strings, got false")]


def test_option_message_translates_a_validation_error_and_nothing_else() -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(int).validate_python("abc")
    assert option_message(caught.value) == "expected an integer, got 'abc'"
    assert option_message(ValueError("x")) is None
    assert option_message(None) is None


@pytest.mark.parametrize(("args", "expected"), [
    (["validate", "specs", "-o", "bogus"], "'bogus' is not one of 'text', 'json'"),
    (["plan", "specs", "--target", "bogus"], "'bogus' is not one of 'local', 'k8s'"),
    (["inspect", "x", "--store", "s", "--limit", "abc"], "expected an integer, got 'abc'"),
    (["inspect", "x", "--store", "s", "--limit", "0"], "must be at least 1, got '0'"),
    (["inspect", "x", "--store", "s", "--limit", "true"], "expected an integer, got 'true'"),
    (["apply", "specs", "--timeout", "x"], "expected a number, got 'x'"),
    (["dev", "generate", "orders", "-n", "-3"], "must be at least 0, got '-3'"),
    (["dev", "generate", "bogus"], "'bogus' is not one of 'orders', 'customers', 'readings'"),
    (["dev", "kafka", "up", "--port", "x"], "expected an integer, got 'x'"),
])
def test_bad_options_are_said_in_the_users_words(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert expected in result.output, result.output
    assert not any(phrase in result.output for phrase in FORBIDDEN), result.output


def test_a_key_pydantic_cannot_read_is_found_in_the_document() -> None:
    data = {"kind": "DataProduct", "\udc80": 1}  # pydantic drops the whole mapping, with no location
    with pytest.raises(ValidationError) as caught:
        DataProduct.model_validate(data)
    assert [(w.path, w.message) for w in translate(data, caught.value.errors())] == [
        (("\udc80",), "keys must be valid Unicode, got '\\udc80'")]
