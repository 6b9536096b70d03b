"""What `source.schema` may use beyond being a valid JSON Schema: nothing that reaches out, nothing slow.

A consumer validates every record against the schema, so the schema must neither make it fetch a
URL (a `$ref` to `http://169.254.169.254/...` would be a request from inside the cluster) nor let one
record freeze it (a backtracking regular expression). Refused here, each with the path of the
keyword that breaks the rule:

* `$ref` / `$dynamicRef` / `$recursiveRef` that do not start with `#`: only references within the
  document are allowed;
* a `pattern` or `patternProperties` key that RE2 cannot compile (look-arounds, back-references);
* `unevaluatedProperties` in a schema that has `patternProperties`: the validator matches those
  patterns for `unevaluatedProperties` with Python's backtracking engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from provisioner.spec.linear_regex import pattern_problem

Path = tuple[str | int, ...]

__all__ = ["pattern_rule_problem", "schema_problems"]

_REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")
# Keywords whose values are data, not schemas: a "$ref" inside them is not a reference.
_DATA = frozenset({"enum", "const", "default", "examples"})


def _walk(node: Any, path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every object of the schema that may be read as a schema, with its path; iterative.

    Unknown keywords are walked too: a `$ref` can point into any part of the document.
    """
    pending: list[tuple[Any, Path]] = [(node, path)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, dict):
            yield where, item
            pending.extend((value, (*where, name)) for name, value in item.items() if name not in _DATA)
        elif isinstance(item, list):
            pending.extend((value, (*where, index)) for index, value in enumerate(item))


def _reference_problems(node: dict[str, Any], where: Path) -> Iterator[tuple[Path, str, bool]]:
    for keyword in _REFERENCES:
        ref = node.get(keyword)
        if isinstance(ref, str) and not ref.startswith("#"):
            yield ((*where, keyword),
                   f"{keyword} {ref!r} points outside this schema: only references within it "
                   "(starting with '#') are allowed, nothing is fetched", False)


def _pattern_problems(schema: Any, path: Path) -> Iterator[tuple[Path, str, bool]]:
    pattern_properties = False
    unevaluated: Path | None = None
    for where, node in _walk(schema, path):
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            problem = pattern_problem(pattern)
            if problem is not None:
                yield (*where, "pattern"), f"pattern {pattern!r}: {problem}", False
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict) and patterns:
            pattern_properties = True
            for key in patterns:
                problem = pattern_problem(str(key))
                if problem is not None:
                    yield (*where, "patternProperties", key), f"pattern {key!r}: {problem}", True
        if "unevaluatedProperties" in node and unevaluated is None:
            unevaluated = (*where, "unevaluatedProperties")
    if pattern_properties and unevaluated is not None:
        yield (unevaluated, "unevaluatedProperties cannot be used in a schema with patternProperties "
               "(their patterns would run on a backtracking engine): list the properties, or use "
               "additionalProperties", True)


def schema_problems(schema: Any, path: Path) -> list[tuple[Path, str, bool]]:
    """(path, message, at_key) for each part of `schema` (found at `path`) that breaks the rules."""
    found = [problem for where, node in _walk(schema, path) for problem in _reference_problems(node, where)]
    found.extend(_pattern_problems(schema, path))
    return sorted(found, key=lambda problem: [str(part) for part in problem[0]])


def pattern_rule_problem(schema: Any) -> str | None:
    """Why `schema` cannot run its patterns in linear time, or None. (A reference outside the
    document needs no such check at run time: the validator has nothing to retrieve it with.)"""
    return next((message for _, message, _ in _pattern_problems(schema, ())), None)
