"""pydantic's validation errors in the user's words: one place that turns each error into a message.

pydantic phrases errors for Python programmers ("Input should be a valid string", class names,
union tags such as `str` or `function-after[...]` inside the location, the raw regex of a pattern).
A spec's author wrote YAML, so every error type pydantic can report is translated here, and the
location is kept only where it names something in the document. Used for spec findings and for
CLI options (typer parses options with pydantic too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from provisioner.spec.durations import DURATION_PATTERN
from provisioner.spec.names import SECRET_KEY_PATTERN

Path = tuple[str | int, ...]

#: Patterns used by the models, said in words (a regex is not a message).
PATTERN_WORDS: dict[str, str] = {
    DURATION_PATTERN: "a duration: a number with a unit ms, s, m, h or d, e.g. 30s, 24h or 1h30m",
    SECRET_KEY_PATTERN: "a Secret key: letters, digits, '-', '_' and '.'",
}

#: What a type error expected, by pydantic error type.
EXPECTED: dict[str, str] = {
    "string_type": "a string",
    "string_unicode": "a string of valid Unicode",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "decimal_type": "a number",
    "decimal_parsing": "a number",
    "fraction_type": "a number",
    "fraction_parsing": "a number",
    "complex_type": "a number",
    "complex_str_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "none_required": "null",
    "bytes_type": "text",
    "dict_type": "a mapping",
    "mapping_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "dataclass_exact_type": "a mapping",
    "frozen_dict_type": "a mapping",
    "ordered_dict_type": "a mapping",
    "counter_type": "a mapping",
    "arguments_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "frozen_set_type": "a list",
    "deque_type": "a list",
    "iterable_type": "a list",
    "named_tuple_type": "a list",
    "date_type": "a date (2026-01-31)",
    "date_parsing": "a date (2026-01-31)",
    "date_from_datetime_parsing": "a date (2026-01-31)",
    "date_from_datetime_inexact": "a date without a time of day",
    "time_type": "a time of day (10:00:00)",
    "time_parsing": "a time of day (10:00:00)",
    "datetime_type": "an RFC 3339 timestamp (2026-01-31T00:00:00Z)",
    "datetime_parsing": "an RFC 3339 timestamp (2026-01-31T00:00:00Z)",
    "datetime_object_invalid": "an RFC 3339 timestamp (2026-01-31T00:00:00Z)",
    "datetime_from_date_parsing": "an RFC 3339 timestamp (2026-01-31T00:00:00Z)",
    "time_delta_type": "a duration (30s, 24h)",
    "time_delta_parsing": "a duration (30s, 24h)",
    "url_type": "a URL",
    "url_parsing": "a URL",
    "url_syntax_violation": "a URL",
    "uuid_type": "a UUID",
    "uuid_parsing": "a UUID",
    "callable_type": "a value of another kind",
    "is_instance_of": "a value of another kind",
    "is_subclass_of": "a value of another kind",
    "json_type": "JSON text",
    "json_invalid": "valid JSON",
    "needs_python_object": "a value of another kind",
    "enum": "one of the listed values",
}


def shown(value: Any) -> str:
    """A value as the user wrote it in YAML, short: `5`, `true`, `null`, `'abc'`, `a list`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 24 else f"a number of {len(text)} digits"
    if isinstance(value, str | bytes):
        text = value if isinstance(value, str) else value.decode("utf-8", "replace")
        return repr(text if len(text) <= 40 else text[:37] + "...")  # repr escapes what cannot print
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple | set | frozenset):
        return "a list"
    return "a value of another kind"


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1]}ies" if noun.endswith("y") else f"{count} {noun}s"


def _limit(value: Any) -> str:
    return shown(value) if not isinstance(value, str) else value


#: The message of a required field that is not there.
REQUIRED: Final = "required field is missing"

_FIXED: Final[dict[str, str]] = {kind: text for kinds, text in (
    (("missing", "missing_argument", "missing_keyword_only_argument", "missing_positional_only_argument",
      "missing_sentinel_error"), REQUIRED),
    (("extra_forbidden", "unexpected_keyword_argument", "unexpected_positional_argument"), "unknown field"),
    (("string_not_ascii",), "must be ASCII text"),
    (("recursion_loop", "recursion_depth_exceeded"), "is nested too deeply"),
    (("date_past", "datetime_past"), "must be in the past"),
    (("date_future", "datetime_future"), "must be in the future"),
    (("timezone_naive", "timezone_aware", "timezone_offset"), "has the wrong time zone"),
    (("decimal_max_digits", "decimal_max_places", "decimal_whole_digits"), "has too many digits"),
    (("frozen_field", "frozen_instance"), "cannot be changed"),
    (("set_item_not_hashable",), "lists items that cannot be compared"),
    (("multiple_argument_values",), "is given more than once"),
) for kind in kinds}

# A bound's words and the `ctx` key that holds it.
_BOUNDS: Final = {"greater_than": ("greater than", "gt"), "greater_than_equal": ("at least", "ge"),
                  "less_than": ("less than", "lt"), "less_than_equal": ("at most", "le"),
                  "multiple_of": ("a multiple of", "multiple_of")}

Wording = Callable[[str, Mapping[str, Any], Any], str]  # (kind, ctx, value) -> message


def _invalid(kind: str, ctx: Mapping[str, Any], value: Any) -> str:
    error = ctx.get("error")
    text = str(error) if error is not None else ""
    return text or "is not valid here"


def _choice(kind: str, ctx: Mapping[str, Any], value: Any) -> str:
    expected = str(ctx.get("expected", "")).replace("'", "")
    return f"must be one of {expected}, got {shown(value)}" if expected else f"{shown(value)} is not allowed here"


def _union_tag(kind: str, ctx: Mapping[str, Any], value: Any) -> str:
    tags = str(ctx.get("expected_tags", "")).replace("'", "")
    return f"must be one of {tags}" if tags else "is not one of the accepted forms"


def _bound(kind: str, ctx: Mapping[str, Any], value: Any) -> str:
    words, key = _BOUNDS[kind]
    return f"must be {words} {_limit(ctx.get(key))}, got {shown(value)}"


def _string_too_short(kind: str, ctx: Mapping[str, Any], value: Any) -> str:
    least = int(ctx.get("min_length", 1))
    return "must not be empty" if least == 1 else f"must have at least {_plural(least, 'character')}"


def _bytes_length(kind: str, ctx: Mapping[str, Any], value: Any) -> str:
    bound = "at least" if kind == "bytes_too_short" else "at most"
    return f"must have {bound} {_plural(int(ctx.get('min_length', ctx.get('max_length', 0))), 'byte')}"


def _length(kind: str, ctx: Mapping[str, Any], value: Any) -> str:
    noun = "entry" if str(ctx.get("field_type", "")).lower() == "dictionary" else "item"
    if kind == "too_short":
        least = int(ctx.get("min_length", 1))
        return "must not be empty" if least == 1 else f"needs at least {_plural(least, noun)}"
    return f"has {_plural(int(ctx.get('actual_length', 0)), noun)}, at most {int(ctx.get('max_length', 0))} allowed"


def _pattern(kind: str, ctx: Mapping[str, Any], value: Any) -> str:
    pattern_words = PATTERN_WORDS.get(str(ctx.get("pattern")))
    if pattern_words is None:
        return f"{shown(value)} is not in the accepted form"
    return f"must be {pattern_words}, got {shown(value)}"


_WORDED: Final[dict[str, Wording]] = {
    "value_error": _invalid,
    "assertion_error": _invalid,
    "literal_error": _choice,
    "enum": _choice,
    "union_tag_invalid": _union_tag,
    "union_tag_not_found": _union_tag,
    "int_parsing_size": lambda kind, ctx, value: f"{shown(value)} is too large a number",
    "finite_number": lambda kind, ctx, value: f"must be a finite number, got {shown(value)}",
    **dict.fromkeys(_BOUNDS, _bound),
    "string_too_short": _string_too_short,
    "string_too_long": lambda kind, ctx, value:
        f"must have at most {_plural(int(ctx.get('max_length', 0)), 'character')}",
    "bytes_too_short": _bytes_length,
    "bytes_too_long": _bytes_length,
    "too_short": _length,
    "too_long": _length,
    "string_pattern_mismatch": _pattern,
    "url_scheme": lambda kind, ctx, value:
        f"must be a URL starting with {str(ctx.get('expected_schemes', '')).replace(chr(39), '')}",
    "url_too_long": lambda kind, ctx, value:
        f"must be a URL of at most {_plural(int(ctx.get('max_length', 0)), 'character')}",
    "uuid_version": lambda kind, ctx, value: f"must be a version {ctx.get('expected_version')} UUID",
    "invalid_key": lambda kind, ctx, value: f"keys must be strings, got {shown(value)}",
}


def message(kind: str, ctx: Mapping[str, Any] | None, value: Any) -> str:
    """One error in words: what was expected and what was found, never pydantic's own phrasing."""
    fixed = _FIXED.get(kind)
    if fixed is not None:
        return fixed
    worded = _WORDED.get(kind)
    if worded is not None:
        return worded(kind, ctx or {}, value)
    expected_words = EXPECTED.get(kind)
    if expected_words is not None:
        return f"expected {expected_words}, got {shown(value)}"
    return f"{shown(value)} is not valid here"


@dataclass(frozen=True, slots=True)
class Worded:
    """One error after translation: the path as the user wrote it and the message."""

    path: Path
    message: str
    at_key: bool


@dataclass(frozen=True, slots=True)
class _Resolved:
    path: Path
    union: Path | None  # where the outermost union sits, when the location passed one
    error: Mapping[str, Any]
    key_error: bool


def key_text(key: Any) -> str:
    """A mapping key as YAML wrote it: `null`, `true`, `5` (YAML keys need not be strings)."""
    return key if isinstance(key, str) else shown(key) if key is None or isinstance(key, bool) else str(key)


def _find_key(node: Any, key: str, path: Path = ()) -> Path | None:
    """The path of the first mapping key equal to `key`, depth first."""
    if isinstance(node, dict):
        if key in node:
            return (*path, key)
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return None
    for part, child in items:
        found = _find_key(child, key, (*path, part if isinstance(part, str | int) else key_text(part)))
        if found is not None:
            return found
    return None


def _resolve(data: Any, loc: Sequence[str | int], error: Mapping[str, Any]) -> _Resolved:
    """Keep the parts of `loc` that exist in the document; the rest are union tags.

    A union tag can coincide with a key of the value (`key: {str: 1}`), so the walk backtracks:
    the right reading ends at the very object pydantic reports as the input."""
    kind = error["type"]
    target = error.get("input")
    if kind == "invalid_key" or "[key]" in loc:  # an error about a mapping's key: the input is the key
        end = len(loc) - 1 if kind == "invalid_key" else list(loc).index("[key]") - 1
        parent = _resolve(data, loc[:end], {**error, "type": "missing", "input": None})
        return _Resolved((*parent.path, key_text(target)), None, error, True)

    def walk(current: Any, index: int, path: Path, union: Path | None) -> tuple[Path, Path | None] | None:
        if index == len(loc):
            return (path, union) if current is target or kind == "missing" else None
        part = loc[index]
        if kind == "missing" and index == len(loc) - 1 and isinstance(current, dict) and part not in current:
            return (*path, part), union
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and not isinstance(part, bool) \
            and 0 <= part < len(current)
        if in_dict or in_list:
            step = key_text(part) if in_dict and not isinstance(part, str) else part
            found = walk(current[part], index + 1, (*path, step), union)
            if found is not None:
                return found
        return walk(current, index + 1, path, path if union is None else union)  # `part` is a union tag

    if not loc and target is not data and isinstance(target, str):
        # pydantic gives up on a whole mapping over one key it cannot read (a lone surrogate), with no
        # location: find the key in the document.
        key_path = _find_key(data, target)
        if key_path is not None:
            return _Resolved(key_path, None, error, True)
    found = walk(data, 0, (), None)
    if found is None:  # the input is not in the document (a default, a converted value): keep what exists
        path: list[str | int] = []
        current = data
        for part in loc:
            if isinstance(current, dict | list) and not isinstance(part, bool):
                try:
                    current = current[part]  # type: ignore[index]
                except (KeyError, IndexError, TypeError):
                    continue
                path.append(part)
        return _Resolved(tuple(path), None, error, False)
    return _Resolved(found[0], found[1], error, False)


def _one(item: _Resolved) -> Worded:
    kind = item.error["type"]
    value = item.error.get("input")
    text = message(kind, item.error.get("ctx"), value)
    if kind == "string_unicode" and item.key_error:
        text = f"keys must be valid Unicode, got {shown(value)}"
    elif (item.key_error and kind in EXPECTED) or kind == "invalid_key":
        text = f"keys must be strings, got {shown(value)}"
    return Worded(item.path, text, at_key=item.key_error or kind in ("extra_forbidden", "missing"))


def _merged(union: Path, items: list[_Resolved]) -> list[Worded]:
    """A value that matched no branch of a union: say every accepted form at once, unless a branch
    got further into the value, whose own errors then say more."""
    deeper = [item for item in items if len(item.path) > len(union)]
    if deeper:
        return [_one(item) for item in deeper]
    expected: list[str] = []
    other: list[str] = []
    for item in items:
        phrase = EXPECTED.get(item.error["type"])
        if phrase is not None:
            if phrase not in expected:
                expected.append(phrase)
        else:
            other.append(message(item.error["type"], item.error.get("ctx"), item.error.get("input")))
    value = items[0].error.get("input")
    if expected and not other:
        return [Worded(union, f"expected {' or '.join(expected)}, got {shown(value)}", at_key=False)]
    return [Worded(union, "; or ".join([*(f"expected {e}" for e in expected), *other]), at_key=False)]


def translate(data: Any, errors: Sequence[Mapping[str, Any]]) -> list[Worded]:
    """Every pydantic error of one validation, worded and located in `data`, duplicates dropped."""
    resolved = [_resolve(data, tuple(error["loc"]), error) for error in errors]
    unions: dict[Path, list[_Resolved]] = {}
    order: list[tuple[str, Any]] = []
    for item in resolved:
        if item.union is None:
            order.append(("one", item))
        else:
            if item.union not in unions:
                order.append(("union", item.union))
            unions.setdefault(item.union, []).append(item)
    worded: list[Worded] = []
    seen: set[tuple[Path, str]] = set()
    for what, thing in order:
        for entry in ([_one(thing)] if what == "one" else _merged(thing, unions[thing])):
            if (entry.path, entry.message) not in seen:
                seen.add((entry.path, entry.message))
                worded.append(entry)
    return worded


def option_message(error: BaseException | None) -> str | None:
    """A CLI option's bad value in words, when pydantic refused it (else None): the first error only,
    as the caller names the option."""
    if not isinstance(error, ValidationError):
        return None
    errors = error.errors()
    if not errors:
        return None
    first = errors[0]
    return message(first["type"], first.get("ctx"), first.get("input"))
