"""The compiled schema validator gives jsonschema's Draft 2020-12 verdict, natively or by falling back."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from provisioner.pipeline.event_schema import _portable_pattern, compile_native, compile_schema


def reference(schema: Any, value: Any) -> bool:
    return bool(Draft202012Validator(schema).is_valid(value))


def check_against_reference(schema: Any, value: Any, *, native: bool = True) -> None:
    if native:
        assert compile_native(schema) is not None, f"expected {schema!r} to compile natively"
    validator = compile_schema(schema)
    try:
        expected: bool | None = reference(schema, value)
    except OverflowError:
        expected = None  # jsonschema cannot decide; ours reports a failure instead of raising
    message = validator(value)
    if expected is None:
        assert message is not None
    else:
        assert (message is None) == expected, (schema, value, message)
    if message is not None:
        assert message.startswith("at ")


# --- hand-written cases: (schema, value, valid) -----------------------------------------------------

CASES: list[tuple[Any, Any, bool]] = [
    # boolean and empty schemas
    (True, {"a": 1}, True),
    (False, None, False),
    ({}, [1, "x"], True),
    # type
    ({"type": "string"}, "x", True),
    ({"type": "string"}, 5, False),
    ({"type": "integer"}, 1, True),
    ({"type": "integer"}, 1.0, True),
    ({"type": "integer"}, 1.5, False),
    ({"type": "integer"}, True, False),
    ({"type": "integer"}, float("inf"), False),
    ({"type": "number"}, 2.5, True),
    ({"type": "number"}, 10**30, True),
    ({"type": "number"}, False, False),
    ({"type": "boolean"}, False, True),
    ({"type": "boolean"}, 0, False),
    ({"type": "null"}, None, True),
    ({"type": "null"}, 0, False),
    ({"type": "array"}, [], True),
    ({"type": "array"}, {}, False),
    ({"type": "object"}, {}, True),
    ({"type": "object"}, [], False),
    ({"type": ["string", "null"]}, None, True),
    ({"type": ["string", "null"]}, 1, False),
    ({"type": ["integer", "boolean"]}, True, True),
    # enum and const: 1 == 1.0, but true != 1
    ({"enum": ["gold", "silver"]}, "gold", True),
    ({"enum": ["gold", "silver"]}, "bronze", False),
    ({"enum": ["gold", "silver"]}, 1, False),
    ({"enum": [1, "x", None]}, 1.0, True),
    ({"enum": [1, "x", None]}, True, False),
    ({"enum": [0]}, False, False),
    ({"enum": [False]}, 0, False),
    ({"enum": [[1, {"a": True}]]}, [1.0, {"a": True}], True),
    ({"enum": [[1, {"a": True}]]}, [1, {"a": 1}], False),
    ({"const": 1}, 1.0, True),
    ({"const": 1}, True, False),
    ({"const": True}, True, True),
    ({"const": {"a": [1, 2]}}, {"a": [1, 2.0]}, True),
    ({"const": {"a": [1, 2]}}, {"a": [1, 2], "b": 1}, False),
    ({"const": None}, None, True),
    ({"const": "1"}, 1, False),
    # objects
    ({"required": ["a"]}, {"a": None}, True),
    ({"required": ["a"]}, {"b": 1}, False),
    ({"required": ["a"]}, "not an object", True),
    ({"properties": {"a": {"type": "string"}}}, {"a": 1}, False),
    ({"properties": {"a": {"type": "string"}}}, {"b": 1}, True),
    ({"properties": {"a": False}}, {"a": 1}, False),
    ({"properties": {"a": {"type": "string"}}, "additionalProperties": False}, {"a": "x"}, True),
    ({"properties": {"a": {"type": "string"}}, "additionalProperties": False}, {"a": "x", "b": 1}, False),
    ({"additionalProperties": {"type": "integer"}, "properties": {"a": {}}}, {"a": "x", "b": 2.0}, True),
    ({"additionalProperties": {"type": "integer"}}, {"b": 2.5}, False),
    ({"minProperties": 1}, {}, False),
    ({"minProperties": 1}, {"a": 1}, True),
    ({"maxProperties": 1}, {"a": 1, "b": 2}, False),
    ({"maxProperties": 1}, [1, 2], True),
    # arrays
    ({"items": {"type": "integer"}}, [1, 2.0, 3], True),
    ({"items": {"type": "integer"}}, [1, "2"], False),
    ({"items": {"type": "integer"}}, "not an array", True),
    ({"prefixItems": [{"type": "string"}, {"type": "integer"}]}, ["a", 1, None], True),
    ({"prefixItems": [{"type": "string"}, {"type": "integer"}]}, ["a"], True),
    ({"prefixItems": [{"type": "string"}, {"type": "integer"}]}, [1], False),
    ({"prefixItems": [{"type": "string"}], "items": False}, ["a"], True),
    ({"prefixItems": [{"type": "string"}], "items": False}, ["a", "b"], False),
    ({"prefixItems": [{}], "items": {"type": "null"}}, [1, None, None], True),
    ({"prefixItems": [{}], "items": {"type": "null"}}, [1, None, 2], False),
    ({"minItems": 2}, [1], False),
    ({"minItems": 2}, [1, 2], True),
    ({"maxItems": 0}, [], True),
    ({"maxItems": 0}, [1], False),
    # strings (lengths in code points)
    ({"minLength": 2}, "ab", True),
    ({"minLength": 2}, "a", False),
    ({"minLength": 2}, 1, True),
    ({"maxLength": 1}, "😀", True),
    ({"maxLength": 1}, "é😀", False),
    ({"pattern": "^[a-z]+-[0-9]{2,3}"}, "ab-12", True),
    ({"pattern": "^[a-z]+-[0-9]{2,3}"}, "Ab-12", False),
    ({"pattern": "b+"}, "abbc", True),
    ({"pattern": "^(x|y)z?"}, "zz", False),
    ({"pattern": "a"}, 5, True),
    # numbers
    ({"minimum": 1}, 1, True),
    ({"minimum": 1}, 0.5, False),
    ({"minimum": 1}, "0", True),
    ({"maximum": 1.5}, 1.5, True),
    ({"maximum": 1.5}, 2, False),
    ({"exclusiveMinimum": 1}, 1.0, False),
    ({"exclusiveMinimum": 1}, 1.01, True),
    ({"exclusiveMaximum": 0}, -1, True),
    ({"exclusiveMaximum": 0}, 0, False),
    ({"minimum": 0}, True, True),
    ({"multipleOf": 2}, 4, True),
    ({"multipleOf": 2}, 4.0, True),
    ({"multipleOf": 2}, 3, False),
    ({"multipleOf": 0.5}, 1.5, True),
    ({"multipleOf": 0.1}, 0.3, False),
    ({"multipleOf": 0.01}, 1e308, False),  # quotient overflows: exact arithmetic
    ({"multipleOf": 0.5}, 1e308, True),
    ({"multipleOf": 1.5}, float("inf"), None),
    ({"multipleOf": 0.5}, 10**400, None),
    # combinators
    ({"allOf": [{"type": "integer"}, {"minimum": 2}]}, 3, True),
    ({"allOf": [{"type": "integer"}, {"minimum": 2}]}, 1, False),
    ({"anyOf": [{"type": "string"}, {"type": "null"}]}, None, True),
    ({"anyOf": [{"type": "string"}, {"type": "null"}]}, 1, False),
    ({"anyOf": [True, False]}, 1, True),
    ({"oneOf": [{"type": "integer"}, {"minimum": 2}]}, 1, True),
    ({"oneOf": [{"type": "integer"}, {"minimum": 2}]}, 3, False),
    ({"oneOf": [{"type": "integer"}, {"minimum": 2}]}, "x", True),  # minimum ignores strings
    ({"oneOf": [{"type": "integer"}, {"minimum": 2}]}, 1.5, False),
    ({"not": {"type": "string"}}, 1, True),
    ({"not": {"type": "string"}}, "x", False),
    ({"not": {}}, None, False),
    # annotations never change the verdict; format is an annotation in 2020-12
    ({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:x", "title": "t",
      "description": "d", "$comment": "c", "examples": [1], "default": 1, "deprecated": True,
      "readOnly": False, "writeOnly": False, "type": "integer"}, 3, True),
    ({"format": "email"}, "no at sign", True),
    ({"format": "date-time", "type": "string"}, "yesterday", True),
    # nesting
    ({"type": "object", "properties": {"customer": {"type": "object", "required": ["id"],
      "properties": {"id": {"type": "string"}}}}}, {"customer": {"id": "c1"}}, True),
    ({"type": "object", "properties": {"customer": {"type": "object", "required": ["id"],
      "properties": {"id": {"type": "string"}}}}}, {"customer": {"id": 5}}, False),
]


@pytest.mark.parametrize(("schema", "value", "valid"), CASES)
def test_keyword(schema: Any, value: Any, valid: bool | None) -> None:
    message = compile_schema(schema)(value)
    if valid is None:
        assert message is not None
    else:
        assert (message is None) is valid, message
    check_against_reference(schema, value)


def test_message_names_the_json_pointer() -> None:
    schema = {"type": "object", "properties": {"customer": {"properties": {"id": {"type": "string"}}}}}
    assert compile_schema(schema)({"customer": {"id": 5}}) == "at /customer/id: 5 is not of type 'string'"


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        ({"type": "object"}, [1], "at (root): [1] is not of type 'object'"),
        ({"required": ["name"]}, {}, "at (root): 'name' is a required property"),
        ({"items": {"enum": ["a"]}}, ["a", "b"], "at /1: 'b' is not one of ['a']"),
        ({"properties": {"a/b": {"properties": {"~": False}}}}, {"a/b": {"~": 1}},
         "at /a~1b/~0: no value is allowed here (false schema), got 1"),
        ({"additionalProperties": False}, {"x": 1}, "at /x: property 'x' is not allowed"),
        ({"prefixItems": [{}], "items": False}, [1, 2], "at /1: at most 1 items are allowed"),
        ({"type": "string"}, "x" * 100, None),
    ],
)
def test_messages(schema: Any, value: Any, message: str | None) -> None:
    assert compile_schema(schema)(value) == message


def test_long_values_are_shortened_in_messages() -> None:
    message = compile_schema({"type": "integer"})("x" * 1000)
    assert message is not None
    assert len(message) < 120
    assert message.endswith("is not of type 'integer'")


# --- fallback ----------------------------------------------------------------------------------------

FALLBACK: list[tuple[Any, Any, bool]] = [
    ({"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s"}, "x", True),
    ({"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s"}, 1, False),
    ({"properties": {"a": {"$ref": "#/$defs/n"}}, "$defs": {"n": {"type": "null"}}}, {"a": 1}, False),
    ({"if": {"type": "string"}, "then": {"minLength": 2}}, "a", False),
    ({"patternProperties": {"^x": {"type": "integer"}}, "additionalProperties": False}, {"x1": 1}, True),
    ({"contains": {"type": "string"}}, [1, 2], False),
    ({"uniqueItems": True}, [1, 1.0], False),
    ({"dependentSchemas": {"a": {"required": ["b"]}}}, {"a": 1}, False),
    ({"unevaluatedProperties": False, "properties": {"a": {}}}, {"a": 1, "b": 2}, False),
    ({"x-vendor": 1, "type": "string"}, 1, False),
    ({"items": {"$id": "urn:nested", "type": "string"}}, [1], False),
    ({"minimum": "1"}, "x", True),  # not a valid schema: jsonschema's own behaviour applies
]


@pytest.mark.parametrize(("schema", "value", "valid"), FALLBACK)
def test_fallback_keeps_jsonschemas_verdict(schema: Any, value: Any, valid: bool) -> None:
    assert compile_native(schema) is None
    message = compile_schema(schema)(value)
    assert (message is None) is valid, message
    check_against_reference(schema, value, native=False)


@pytest.mark.parametrize(("schema", "value", "valid"), [
    ({"pattern": "^[a-z]+$"}, "abc\n", False),  # `$` is the end of the text (ECMA-262's reading too)
    ({"pattern": "\\d"}, "٣", False),  # `\d` is an ASCII digit (ECMA-262's reading too)
    ({"pattern": "^a.c"}, "a\rc", True),
    ({"patternProperties": {"^(a+)+$": {"type": "integer"}}, "additionalProperties": False}, {"aaa": 1}, True),
    ({"patternProperties": {"^(a+)+$": {"type": "integer"}}, "additionalProperties": False}, {"aab": 1}, False),
    ({"patternProperties": {"^x": {"type": "integer"}}}, {"x1": "s"}, False),
    ({"propertyNames": {"pattern": "^(a+)+$"}}, {"a" * 30 + "b": 1}, False),
])
def test_fallback_patterns_run_on_re2(schema: Any, value: Any, valid: bool) -> None:
    assert (compile_schema(schema)(value) is None) is valid


def test_fallback_message_names_the_json_pointer() -> None:
    schema = {"$defs": {"id": {"type": "string"}}, "properties": {"customer": {"properties": {"id": {"$ref": "#/$defs/id"}}}}}
    assert compile_schema(schema)({"customer": {"id": 5}}) == "at /customer/id: 5 is not of type 'string'"


def test_fallback_ignores_format_too() -> None:
    assert compile_schema({"$defs": {}, "format": "email"})("no at sign") is None


@pytest.mark.parametrize(
    ("pattern", "portable"),
    [
        ("^[a-z0-9_-]+", True),
        ("^(?:ab|cd){1,3}x*?", True),
        ("\\.\\-\\/\\n", True),
        ("colou?r", True),
        ("é", True),
        ("^a$", False),
        ("a.b", False),
        ("\\d+", False),
        ("\\w", False),
        ("\\bword", False),
        ("[^a]", False),
        ("[]a]", False),
        ("[[a]]", False),
        ("[a--b]", False),
        ("(?=a)", False),
        ("(?P<n>a)", False),
        ("(a)\\1", False),
        ("a{,3}", False),
        ("a{", False),
        ("*a", False),
        ("a**", False),
        ("😀", False),
        ("[é]", False),
        ("\\", False),
    ],
)
def test_portable_patterns(pattern: str, portable: bool) -> None:
    assert _portable_pattern(pattern) is portable


# --- differential: random schemas from the subset against jsonschema -------------------------------

KEYS = ["a", "b", "c"]
NUMBERS = [0, 1, -1, 2, 3, 1.0, 2.0, -0.0, 0.5, 1.5, 2.5, 0.1, 0.3, 10**20, 1e20, 1e308, 2**53 + 1]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(NUMBERS),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "a", "ab", "abc", "b", "x-12", "A", "é😀", "a\n", "xyz"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from([*KEYS, "d"]), inner, max_size=4),
    ),
    max_leaves=12,
)

type_names = st.sampled_from(["null", "boolean", "integer", "number", "string", "array", "object"])
counts = st.integers(0, 3)
limits = st.sampled_from([0, 1, 2, -1, 1.0, 1.5, 2.5, 10**20])
PATTERNS = ["a", "^a", "b+", "^[a-c]{2}", "x|y", "^(ab)*c?", "[0-9]{2}", "é", "\\-1"]


def keyword(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    one = st.one_of(
        st.builds(lambda t: {"type": t}, st.one_of(type_names, st.lists(type_names, min_size=1, max_size=3))),
        st.builds(lambda e: {"enum": e}, st.lists(values, min_size=1, max_size=4)),
        st.builds(lambda c: {"const": c}, values),
        st.builds(lambda p: {"properties": p}, st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
        st.builds(lambda r: {"required": r}, st.lists(st.sampled_from(KEYS), max_size=3, unique=True)),
        st.builds(lambda a: {"additionalProperties": a}, inner),
        st.builds(lambda n: {"minProperties": n}, counts),
        st.builds(lambda n: {"maxProperties": n}, counts),
        st.builds(lambda i: {"items": i}, inner),
        st.builds(lambda p: {"prefixItems": p}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda n: {"minItems": n}, counts),
        st.builds(lambda n: {"maxItems": n}, counts),
        st.builds(lambda n: {"minLength": n}, counts),
        st.builds(lambda n: {"maxLength": n}, counts),
        st.builds(lambda p: {"pattern": p}, st.sampled_from(PATTERNS)),
        st.builds(lambda n: {"minimum": n}, limits),
        st.builds(lambda n: {"maximum": n}, limits),
        st.builds(lambda n: {"exclusiveMinimum": n}, limits),
        st.builds(lambda n: {"exclusiveMaximum": n}, limits),
        st.builds(lambda n: {"multipleOf": n}, st.sampled_from([1, 2, 3, 0.5, 0.1, 1.5, 2.0])),
        st.builds(lambda s: {"allOf": s}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda s: {"anyOf": s}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda s: {"oneOf": s}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda s: {"not": s}, inner),
        st.builds(lambda f: {"format": f, "title": "t"}, st.sampled_from(["email", "date-time", "ipv4"])),
    )
    return st.lists(one, min_size=0, max_size=4).map(lambda parts: {k: v for part in parts for k, v in part.items()})


schemas = st.recursive(st.booleans() | st.just({}), keyword, max_leaves=8)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemas, st.lists(values, min_size=1, max_size=6))
def test_differential_against_jsonschema(schema: Any, cases: list[Any]) -> None:
    for value in cases:
        check_against_reference(schema, value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemas, values)
def test_differential_values_shaped_by_the_schema(schema: Any, seed: Any) -> None:
    """Values built from the schema's own constants hit its edges (equal enums, exact limits)."""
    constants: list[Any] = [seed]

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for name, item in node.items():
                if name in ("enum", "examples"):
                    constants.extend(item)
                elif name in ("const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                    constants.append(item)
                else:
                    collect(item)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(schema)
    for value in constants:
        check_against_reference(schema, value)
        check_against_reference(schema, dict.fromkeys(KEYS, value))
        check_against_reference(schema, [value, value])
