"""Fast validation of event values against `source.schema` (spec.md, "Per-record semantics", step 3).

`source.schema` is a JSON Schema (2020-12) that every decoded event value must satisfy. Running
`jsonschema`'s generic validator per record dominates the cost of a spec that has a schema, so
`compile_schema` turns the schemas people actually write into nested Python closures once, at
pipeline construction, and each record then costs a few `isinstance` checks and dict look-ups.

Compiled natively (every keyword of the schema and of all its sub-schemas must be in this subset):

* boolean schemas; `type` (a name or a list of names); `enum`; `const`;
* objects: `properties`, `required`, `additionalProperties` (boolean or schema),
  `minProperties`, `maxProperties`;
* arrays: `items` (a schema), `prefixItems`, `minItems`, `maxItems`;
* strings: `minLength`, `maxLength` (in code points), `pattern` (see below);
* numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`;
* `allOf`, `anyOf`, `oneOf`, `not`;
* annotations, which never affect the verdict: `title`, `description`, `$comment`, `examples`,
  `default`, `deprecated`, `readOnly`, `writeOnly`, `format`, and `$schema` / `$id` on the root only.

`format` is an annotation: that is the 2020-12 default (its "format-annotation" vocabulary), so
`{"format": "email"}` accepts any value, natively and in the fallback alike.

A `pattern` is compiled natively only when it sits in a small portable regular-expression subset
(literals, escaped punctuation, positive ASCII character classes, groups, alternation, `^`,
greedy and lazy quantifiers) on which Python's `re` and ECMA-262 agree; `$`, `.`, `\\d`, `\\w`,
`\\s`, `\\b`, negated classes, look-arounds and back-references are not in it.

Anything else (`$ref`, `$defs`, `if`/`then`/`else`, `patternProperties`, `contains`, `uniqueItems`,
unknown keywords, a keyword value of an unexpected type, a pattern outside the portable subset)
makes the WHOLE schema fall back to `jsonschema.Draft202012Validator` (without a format checker,
with no retrieval of remote references). Either way the verdict is the one
`Draft202012Validator(schema).is_valid(value)` gives with patterns on RE2
(`provisioner.spec.linear_regex`, linear time) instead of Python's backtracking `re`; only the
wording of the messages differs. The one exception is an arithmetic overflow (a number too large
for `multipleOf` to be computed), on which `jsonschema` raises: here it is a failure instead, so a
hostile event becomes a dead letter rather than stopping the consumer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry
from referencing.exceptions import Unresolvable

from provisioner.spec.linear_regex import PatternError, Search, compile_search
from provisioner.spec.schema_rules import pattern_rule_problem

Validator = Callable[[Any], str | None]
"""Returns None when the value satisfies the schema, else a message naming where and why."""

__all__ = ["Validator", "compile_native", "compile_schema"]

_ANNOTATIONS = frozenset(
    {"title", "description", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly", "format"}
)
_ROOT_ONLY = frozenset({"$schema", "$id"})
_KEYWORDS = frozenset(
    {
        "type", "enum", "const",
        "properties", "required", "additionalProperties", "minProperties", "maxProperties",
        "items", "prefixItems", "minItems", "maxItems",
        "minLength", "maxLength", "pattern",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "allOf", "anyOf", "oneOf", "not",
    }
)  # fmt: skip
_MISSING = object()
_SHOW_LIMIT = 60


class _Unsupported(Exception):
    """The schema uses something outside the compiled subset."""


class _Failure:
    """Why a value failed; `path` is filled innermost-first while the failure travels outwards."""

    __slots__ = ("message", "path")

    def __init__(self, message: str) -> None:
        self.message = message
        self.path: list[str | int] = []

    def render(self) -> str:
        return f"at {_pointer(reversed(self.path))}: {self.message}"


_Check = Callable[[Any], _Failure | None]


def _pointer(parts: Any) -> str:
    """A JSON Pointer (RFC 6901) for a path, or "(root)" for the empty path."""
    text = "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)
    return text or "(root)"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


# --- JSON semantics ---------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda value: value is None,
    "boolean": lambda value: isinstance(value, bool),
    "integer": _is_integer,
    "number": _is_number,
    "string": lambda value: isinstance(value, str),
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
}

# Types whose JSON test is exactly `isinstance` (integer and number must also exclude bool).
_PYTHON_TYPES: dict[str, type] = {"string": str, "object": dict, "array": list, "boolean": bool}


def _json_equal(left: Any, right: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1 and false != 0, recursively through arrays and objects."""
    if left is right:
        return True
    if isinstance(left, str) or isinstance(right, str):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return len(left) == len(right) and all(
            name in right and _json_equal(item, right[name]) for name, item in left.items()
        )
    if isinstance(left, bool) or isinstance(right, bool):
        return False  # distinct objects, at least one a bool: true/false only equal themselves
    return bool(left == right)


def _not_multiple(value: int | float, divisor: int | float) -> bool:
    """Whether `value` is not a multiple of `divisor`, computed the way jsonschema computes it."""
    try:
        if isinstance(divisor, float):
            quotient = value / divisor
            try:
                return int(quotient) != quotient
            except OverflowError:
                return (Fraction(value) / Fraction(divisor)).denominator != 1
        return bool(value % divisor)
    except OverflowError:
        return True


# --- portable patterns -------------------------------------------------------------------------------

_PUNCTUATION = frozenset("!\"#%&'(),-./:;<=>?@[\\]^_`{|}~*+$ ")
_CONTROL_ESCAPES = frozenset("ntrfv")
_QUANTIFIER = re.compile(r"\{[0-9]+(,[0-9]*)?\}\??")


def _portable_pattern(pattern: str) -> bool:
    """Whether Python's `re` and ECMA-262 (non-unicode mode) give the same verdict for this pattern."""
    index = 0
    end = len(pattern)
    atom = False  # whether a quantifier may follow
    while index < end:
        char = pattern[index]
        if char == "\\":
            index = _portable_escape(pattern, index)
            if index < 0:
                return False
            atom = True
        elif char == "[":
            index = _portable_class(pattern, index + 1)
            if index < 0:
                return False
            atom = True
        elif char in "*+?":
            if not atom:
                return False
            index += 2 if pattern[index + 1 : index + 2] == "?" else 1
            atom = False
        elif char == "{":
            match = _QUANTIFIER.match(pattern, index)
            if not atom or match is None:
                return False
            index = match.end()
            atom = False
        elif char == "(":
            if pattern.startswith("(?", index):
                if not pattern.startswith("(?:", index):
                    return False
                index += 3
            else:
                index += 1
            atom = False
        elif char == ")":
            index += 1
            atom = True
        elif char in "|^":
            index += 1
            atom = False
        elif char in "$.]}" or "\ud800" <= char <= "\udfff" or ord(char) > 0xFFFF:
            return False
        else:
            index += 1
            atom = True
    return True


def _portable_escape(pattern: str, index: int) -> int:
    """The index after the portable escape at `index` (a backslash), or -1: only punctuation and
    control escapes mean the same in both dialects."""
    if index + 1 >= len(pattern):
        return -1
    escaped = pattern[index + 1]
    if escaped not in _PUNCTUATION and escaped not in _CONTROL_ESCAPES:
        return -1
    return index + 2


def _portable_class(pattern: str, index: int) -> int:
    """The index after a portable character class whose body starts at `index`, or -1."""
    start = index
    end = len(pattern)
    while index < end:
        char = pattern[index]
        if char == "]":
            return index + 1 if index > start else -1  # `[]` means different things
        if char == "\\":
            index = _portable_escape(pattern, index)
            if index < 0:
                return -1
            continue
        if char in "[^" or not char.isascii() or pattern.startswith(("&&", "||", "--", "~~"), index):
            return -1
        index += 1
    return -1


# --- compilation -------------------------------------------------------------------------------------


def _number(value: Any) -> int | float:
    if not _is_number(value):
        raise _Unsupported
    return value  # type: ignore[no-any-return]


def _string_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Unsupported
    return value


def _schema_list(value: Any) -> list[_Check]:
    if not isinstance(value, list) or not value:
        raise _Unsupported
    return [_compile_or_accept(item) for item in value]


def _accept(value: Any) -> None:
    return None


def _reject(value: Any) -> _Failure:
    return _Failure(f"no value is allowed here (false schema), got {_show(value)}")


def _compile_or_accept(schema: Any) -> _Check:
    check = _compile(schema, root=False)
    return _accept if check is None else check


def _sequence(checks: list[_Check]) -> _Check | None:
    """One check running `checks` in order, stopping at the first failure."""
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks

        def both(value: Any) -> _Failure | None:
            failure = first(value)
            return second(value) if failure is None else failure

        return both

    def every(value: Any) -> _Failure | None:
        for check in checks:
            failure = check(value)
            if failure is not None:
                return failure
        return None

    return every


def _guard(kind: str, checks: list[_Check]) -> _Check | None:
    """Type-specific checks, applied only when the value is of that JSON type."""
    inner = _sequence(checks)
    if inner is None:
        return None
    applies = _TYPES[kind]

    def guarded(value: Any) -> _Failure | None:
        return inner(value) if applies(value) else None

    return guarded


def _compile(schema: Any, *, root: bool) -> _Check | None:
    """A check for `schema`, None if it accepts everything; raises _Unsupported outside the subset."""
    if schema is True:
        return None
    if schema is False:
        return _reject
    if not isinstance(schema, dict):
        raise _Unsupported
    _check_keywords(schema, root=root)

    checks: list[_Check] = []
    kinds: list[str] | None = None
    if "type" in schema:
        kinds = _type_names(schema["type"])
        checks.append(_type_check(kinds))
    if "enum" in schema:
        checks.append(_enum_check(schema["enum"]))
    if "const" in schema:
        checks.append(_const_check(schema["const"]))
    checks.extend(_kind_checks(schema, kinds))
    checks.extend(_combinator_checks(schema))
    if kinds is not None and len(kinds) == 1 and len(checks) > 1:
        rest = _sequence(checks[1:])
        assert rest is not None
        return _typed(kinds[0], checks[0], rest)
    return _sequence(checks)


def _check_keywords(schema: dict[str, Any], *, root: bool) -> None:
    """Raise _Unsupported for a keyword outside the subset (or a root-only one below the root)."""
    for keyword, value in schema.items():
        if keyword in _ROOT_ONLY:
            if not root or not isinstance(value, str):
                raise _Unsupported
        elif keyword not in _KEYWORDS and keyword not in _ANNOTATIONS:
            raise _Unsupported


def _kind_checks(schema: dict[str, Any], kinds: list[str] | None) -> list[_Check]:
    """The checks of each kind's keywords: as they are when `type` names that one kind, else each
    guarded to apply to values of its kind only."""
    by_kind = {
        "object": _object_checks(schema),
        "array": _array_checks(schema),
        "string": _string_checks(schema),
        "number": _number_checks(schema),
    }
    single = kinds[0] if kinds is not None and len(kinds) == 1 else None
    if single == "integer":
        single = "number"
    checks: list[_Check] = []
    for kind, kind_checks in by_kind.items():
        if single is not None:
            if kind == single:
                checks.extend(kind_checks)  # the type check already ran
            continue  # other kinds: the type check already rejects those values
        guarded = _guard(kind, kind_checks)
        if guarded is not None:
            checks.append(guarded)
    return checks


def _type_names(value: Any) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in _TYPES for n in names):
        raise _Unsupported
    return names


def _type_check(kinds: list[str]) -> _Check:
    shown = ", ".join(repr(kind) for kind in kinds)
    if len(kinds) == 1 and kinds[0] in _PYTHON_TYPES:
        python_type = _PYTHON_TYPES[kinds[0]]

        def is_instance(value: Any) -> _Failure | None:
            return None if isinstance(value, python_type) else _Failure(f"{_show(value)} is not of type {shown}")

        return is_instance
    tests = [_TYPES[kind] for kind in kinds]
    test = tests[0]

    def of_type(value: Any) -> _Failure | None:
        return None if test(value) else _Failure(f"{_show(value)} is not of type {shown}")

    def of_types(value: Any) -> _Failure | None:
        for each in tests:
            if each(value):
                return None
        return _Failure(f"{_show(value)} is not of type {shown}")

    return of_type if len(tests) == 1 else of_types


def _typed(kind: str, type_check: _Check, rest: _Check) -> _Check:
    """`type_check` then `rest`, in one call: the common `{"type": "object", ...}` shape."""
    if kind in _PYTHON_TYPES:
        python_type = _PYTHON_TYPES[kind]

        def instance_then(value: Any) -> _Failure | None:
            return rest(value) if isinstance(value, python_type) else type_check(value)

        return instance_then
    test = _TYPES[kind]

    def test_then(value: Any) -> _Failure | None:
        return rest(value) if test(value) else type_check(value)

    return test_then


def _simple_type(schema: Any) -> type | None:
    """The Python type for a sub-schema that is only `{"type": <string|object|array|boolean>}` (plus annotations)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("type"), str):
        return None
    if any(keyword != "type" and keyword not in _ANNOTATIONS for keyword in schema):
        return None
    return _PYTHON_TYPES.get(schema["type"])


def _enum_check(options: Any) -> _Check:
    if not isinstance(options, list):
        raise _Unsupported
    shown = _show(options)
    if all(isinstance(option, str) for option in options):
        strings = frozenset(options)

        def in_strings(value: Any) -> _Failure | None:
            if isinstance(value, str) and value in strings:
                return None
            return _Failure(f"{_show(value)} is not one of {shown}")

        return in_strings

    def in_options(value: Any) -> _Failure | None:
        for option in options:
            if _json_equal(option, value):
                return None
        return _Failure(f"{_show(value)} is not one of {shown}")

    return in_options


def _const_check(expected: Any) -> _Check:
    def equals(value: Any) -> _Failure | None:
        return None if _json_equal(value, expected) else _Failure(f"{_show(expected)} was expected")

    return equals


def _object_checks(schema: dict[str, Any]) -> list[_Check]:
    checks: list[_Check] = []
    required = _string_list(schema["required"]) if "required" in schema else []
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise _Unsupported
    compiled = [(name, _compile(sub, root=False)) for name, sub in properties.items()]
    present = [(name, _simple_type(properties[name]), check) for name, check in compiled if check is not None]
    if required or present:
        checks.append(_properties_check(required, present))
    if "additionalProperties" in schema:
        additional = _compile(schema["additionalProperties"], root=False)
        if additional is not None:
            checks.append(_additional_check(frozenset(properties), additional))
    if "minProperties" in schema:
        least = _number(schema["minProperties"])

        def min_properties(value: dict[str, Any]) -> _Failure | None:
            return _Failure(f"has fewer than {least} properties") if len(value) < least else None

        checks.append(min_properties)
    if "maxProperties" in schema:
        most = _number(schema["maxProperties"])

        def max_properties(value: dict[str, Any]) -> _Failure | None:
            return _Failure(f"has more than {most} properties") if len(value) > most else None

        checks.append(max_properties)
    return checks


def _properties_check(required: list[str], present: list[tuple[str, type | None, _Check]]) -> _Check:
    def properties(value: dict[str, Any]) -> _Failure | None:
        for name in required:
            if name not in value:
                return _Failure(f"{name!r} is a required property")
        for name, python_type, check in present:
            item = value.get(name, _MISSING)
            if item is _MISSING:
                continue
            if python_type is not None and isinstance(item, python_type):
                continue
            failure = check(item)
            if failure is not None:
                failure.path.append(name)
                return failure
        return None

    return properties


def _additional_check(known: frozenset[str], check: _Check) -> _Check:
    def additional(value: dict[str, Any]) -> _Failure | None:
        for name, item in value.items():
            if name not in known:
                failure = check(item)
                if failure is not None:
                    if check is _reject:
                        failure.message = f"property {name!r} is not allowed"
                    failure.path.append(name)
                    return failure
        return None

    return additional


def _array_checks(schema: dict[str, Any]) -> list[_Check]:
    checks: list[_Check] = []
    prefix: list[_Check] = []
    if "prefixItems" in schema:
        prefix = _schema_list(schema["prefixItems"])

        def prefix_items(value: list[Any]) -> _Failure | None:
            for index, (item, check) in enumerate(zip(value, prefix, strict=False)):
                failure = check(item)
                if failure is not None:
                    failure.path.append(index)
                    return failure
            return None

        checks.append(prefix_items)
    if "items" in schema:
        items = _compile(schema["items"], root=False)
        start = len(prefix)
        if items is not None:

            def each_item(value: list[Any]) -> _Failure | None:
                for index in range(start, len(value)):
                    failure = items(value[index])
                    if failure is not None:
                        if items is _reject:
                            failure.message = f"at most {start} items are allowed"
                        failure.path.append(index)
                        return failure
                return None

            checks.append(each_item)
    if "minItems" in schema:
        least = _number(schema["minItems"])

        def min_items(value: list[Any]) -> _Failure | None:
            return _Failure(f"has fewer than {least} items") if len(value) < least else None

        checks.append(min_items)
    if "maxItems" in schema:
        most = _number(schema["maxItems"])

        def max_items(value: list[Any]) -> _Failure | None:
            return _Failure(f"has more than {most} items") if len(value) > most else None

        checks.append(max_items)
    return checks


def _string_checks(schema: dict[str, Any]) -> list[_Check]:
    checks: list[_Check] = []
    if "minLength" in schema:
        least = _number(schema["minLength"])

        def min_length(value: str) -> _Failure | None:
            return _Failure(f"{_show(value)} is shorter than {least} characters") if len(value) < least else None

        checks.append(min_length)
    if "maxLength" in schema:
        most = _number(schema["maxLength"])

        def max_length(value: str) -> _Failure | None:
            return _Failure(f"{_show(value)} is longer than {most} characters") if len(value) > most else None

        checks.append(max_length)
    if "pattern" in schema:
        source = schema["pattern"]
        if not isinstance(source, str) or not _portable_pattern(source):
            raise _Unsupported
        try:
            search = compile_search(source)
        except PatternError as error:
            raise _Unsupported from error

        def pattern(value: str) -> _Failure | None:
            return None if search(value) else _Failure(f"{_show(value)} does not match {source!r}")

        checks.append(pattern)
    return checks


def _number_checks(schema: dict[str, Any]) -> list[_Check]:
    checks: list[_Check] = []
    if "minimum" in schema:
        low = _number(schema["minimum"])

        def minimum(value: float) -> _Failure | None:
            return _Failure(f"{value!r} is less than the minimum of {low!r}") if value < low else None

        checks.append(minimum)
    if "exclusiveMinimum" in schema:
        above = _number(schema["exclusiveMinimum"])

        def exclusive_minimum(value: float) -> _Failure | None:
            return _Failure(f"{value!r} is not greater than {above!r}") if value <= above else None

        checks.append(exclusive_minimum)
    if "maximum" in schema:
        high = _number(schema["maximum"])

        def maximum(value: float) -> _Failure | None:
            return _Failure(f"{value!r} is greater than the maximum of {high!r}") if value > high else None

        checks.append(maximum)
    if "exclusiveMaximum" in schema:
        below = _number(schema["exclusiveMaximum"])

        def exclusive_maximum(value: float) -> _Failure | None:
            return _Failure(f"{value!r} is not less than {below!r}") if value >= below else None

        checks.append(exclusive_maximum)
    if "multipleOf" in schema:
        divisor = _number(schema["multipleOf"])
        if divisor <= 0:
            raise _Unsupported

        def multiple_of(value: float) -> _Failure | None:
            return _Failure(f"{value!r} is not a multiple of {divisor!r}") if _not_multiple(value, divisor) else None

        checks.append(multiple_of)
    return checks


def _combinator_checks(schema: dict[str, Any]) -> list[_Check]:
    checks: list[_Check] = []
    if "allOf" in schema:
        all_of = _sequence(_schema_list(schema["allOf"]))
        if all_of is not None:
            checks.append(all_of)
    if "anyOf" in schema:
        any_of = _schema_list(schema["anyOf"])

        def any_valid(value: Any) -> _Failure | None:
            for check in any_of:
                if check(value) is None:
                    return None
            return _Failure(f"{_show(value)} is not valid under any of the anyOf schemas")

        checks.append(any_valid)
    if "oneOf" in schema:
        one_of = _schema_list(schema["oneOf"])

        def one_valid(value: Any) -> _Failure | None:
            matched = sum(1 for check in one_of if check(value) is None)
            if matched == 1:
                return None
            if matched == 0:
                return _Failure(f"{_show(value)} is not valid under any of the oneOf schemas")
            return _Failure(f"{_show(value)} is valid under {matched} of the oneOf schemas, not exactly one")

        checks.append(one_valid)
    if "not" in schema:
        negated = _compile_or_accept(schema["not"])

        def is_not(value: Any) -> _Failure | None:
            if negated(value) is None:
                return _Failure(f"{_show(value)} must not be valid under the 'not' schema")
            return None

        checks.append(is_not)
    return checks


# --- entry points ------------------------------------------------------------------------------------


def compile_native(schema: dict[str, Any] | bool) -> Validator | None:
    """A closure-compiled validator for `schema`, or None if it uses anything outside the subset."""
    try:
        check = _compile(schema, root=True)
    except _Unsupported:
        return None
    if check is None:
        return _accept
    root = check

    def validate(value: Any) -> str | None:
        failure = root(value)
        return None if failure is None else failure.render()

    return validate


def _linear_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _search(pattern)(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _linear_pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for pattern, subschema in patterns.items():
        search = _search(pattern)
        for name, value in instance.items():
            if search(name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _linear_additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    known = schema.get("properties", {})
    searches = [_search(pattern) for pattern in schema.get("patternProperties", {})]
    extras = [name for name in instance if name not in known and not any(s(name) for s in searches)]
    if isinstance(additional, dict):
        for name in extras:
            yield from validator.descend(instance[name], additional, path=name)
    elif additional is False and extras:
        listed = ", ".join(repr(name) for name in sorted(extras))
        yield ValidationError(f"additional properties are not allowed ({listed})")


_searches: dict[str, Search] = {}


def _search(pattern: str) -> Search:
    search = _searches.get(pattern)
    if search is None:
        search = _searches[pattern] = compile_search(pattern)
    return search


# jsonschema's Draft 2020-12 with every pattern on RE2 (linear time) instead of Python's
# backtracking `re`. `unevaluatedProperties` also matches `patternProperties` with `re`: a schema
# with both is refused (by validate, and here).
_LinearValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {
        "pattern": _linear_pattern,
        "patternProperties": _linear_pattern_properties,
        "additionalProperties": _linear_additional_properties,
    },
)
# No retrieval: a `$ref` outside the document is refused by validate, and at run time it is
# unresolvable (a dead letter) rather than a request to whatever URL it names.
_NO_RETRIEVAL: Registry[Any] = Registry()


def compile_schema(schema: dict[str, Any] | bool) -> Validator:
    """A validator for `schema`: compiled closures when possible, else jsonschema's Draft 2020-12 validator.

    The validator returns None for a valid value, else a message such as
    "at /customer/id: 5 is not of type 'string'". Patterns run on RE2 either way; a schema
    whose pattern RE2 refuses, or that combines `unevaluatedProperties` with `patternProperties`,
    raises ValueError (validate refuses both).
    """
    native = compile_native(schema)
    if native is not None:
        return native
    problem = pattern_rule_problem(schema)
    if problem is not None:
        raise ValueError(problem)
    fallback = _LinearValidator(schema, registry=_NO_RETRIEVAL)

    def validate(value: Any) -> str | None:
        try:
            error = next(iter(fallback.iter_errors(value)), None)
        except OverflowError:
            return "at (root): a number is too large to validate"
        except RecursionError:
            return "at (root): the schema recurses too deeply for this value (a $ref cycle, or a value nested too deep)"
        except Unresolvable as unresolvable:
            return f"at (root): the schema's reference {unresolvable.ref!r} cannot be resolved within it"
        if error is None:
            return None
        return f"at {_pointer(error.absolute_path)}: {error.message}"

    return validate
