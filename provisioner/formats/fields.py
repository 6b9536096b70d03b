"""Checking expressions against a registered schema before they run: `event.amout` where the
subject's latest Avro schema has `amount` is a finding at its file:line:column, not a stream of
run-time dead letters.

Pure: the caller fetches the schema. Only what can be known is checked: a field selected on a
record of the schema that the record (every record branch of a union, merged) does not have, and
a field compared with a literal of another type (`event.status == 5` on a string).
Selections under a map, or on anything the schema does not describe as a record, pass; so does a
`has()` test (it asks whether a field is there, which a field dropped by a later version is not).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator
from typing import Any

from provisioner.expr import ast
from provisioner.expr.errors import ExpressionError
from provisioner.expr.parser import parse
from provisioner.spec.models import DataProduct
from provisioner.spec.semantics import Problem

__all__ = ["Shape", "avro_shape", "schema_problems"]

Shape = dict[str, Any] | str | None
"""A record's fields (name -> Shape), a scalar's CEL type name, or None where nothing is known."""

_SCALARS = {"boolean": "bool", "int": "int", "long": "int", "float": "double", "double": "double",
            "bytes": "bytes", "string": "string", "enum": "string", "fixed": "bytes", "null": "null"}
_LOGICAL = {"timestamp-millis": "timestamp", "timestamp-micros": "timestamp", "timestamp-nanos": "timestamp",
            "local-timestamp-millis": "timestamp", "local-timestamp-micros": "timestamp",
            "local-timestamp-nanos": "timestamp", "date": "timestamp", "time-millis": "duration",
            "time-micros": "duration", "decimal": "double", "uuid": "string"}
_NUMBERS = frozenset({"int", "uint", "double"})
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})


def avro_shape(parsed: Any) -> Shape:
    """The record structure of a parsed Avro schema (fastavro's form, named types inline)."""
    named: dict[str, Any] = dict(parsed.get("__named_schemas", {})) if isinstance(parsed, dict) else {}
    done: dict[str, dict[str, Any]] = {}

    def shape(schema: Any) -> Shape:
        if isinstance(schema, str):
            if schema in done:
                return done[schema]
            if schema in _SCALARS:
                return _SCALARS[schema]
            target = named.get(schema)
            return None if target is None else shape(target)
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            shapes = [shape(b) for b in branches]
            if len(shapes) == 1:
                return shapes[0]  # itself, not a copy: a recursive type may still be filling it
            if not shapes or not all(isinstance(s, dict) for s in shapes):
                return None
            merged: dict[str, Any] = {}
            for found in shapes:
                assert isinstance(found, dict)
                for name, inner in found.items():
                    merged[name] = inner if name not in merged or merged[name] == inner else None
            return merged
        if schema.get("logicalType") in _LOGICAL:
            return _LOGICAL[schema["logicalType"]]
        kind = schema.get("type")
        if kind in ("enum", "fixed"):
            return _SCALARS[kind]
        if kind in ("record", "error"):
            fields: dict[str, Any] = {}
            done[schema["name"]] = fields  # a recursive type refers to itself
            for field in schema.get("fields", ()):
                fields[field["name"]] = shape(field["type"])
            return fields
        if isinstance(kind, str | list | dict) and kind not in ("array", "map"):
            return shape(kind)
        return None

    return shape(parsed)


def _children(node: ast.Node) -> Iterator[ast.Node]:
    for item in dataclasses.fields(node):
        value = getattr(node, item.name)
        if isinstance(value, ast.Node):
            yield value
        elif isinstance(value, list | tuple):
            for element in value:
                if isinstance(element, ast.Node):
                    yield element
                elif isinstance(element, tuple):
                    yield from (e for e in element if isinstance(e, ast.Node))


def _path(node: ast.Node) -> list[str] | None:
    """The field path of `event.a.b` (['a', 'b']), or None when `node` is not such a chain."""
    if isinstance(node, ast.Ident):
        return [] if node.name == "event" else None
    if isinstance(node, ast.Select) and not node.optional:
        inner = _path(node.operand)
        return None if inner is None else [*inner, node.field]
    return None


def _resolve(path: list[str], shape: Shape) -> tuple[int, Shape]:
    """How many of `path`'s fields the shape has (all of them: len(path)) and the last one's shape."""
    current = shape
    for depth, name in enumerate(path):
        if not isinstance(current, dict):
            return len(path), None  # a map, a scalar, or nothing known: not checked
        if name not in current:
            return depth, current
        current = current[name]
    return len(path), current


def _a(type_name: str) -> str:
    return f"{'an' if type_name[0] in 'aeiou' else 'a'} {type_name}"


def _literal_type(node: ast.Node) -> str | None:
    if not isinstance(node, ast.Literal) or node.value is None:
        return None
    value = node.value
    return {bool: "bool", int: "int", float: "double", str: "string", bytes: "bytes"}.get(type(value))


def _mismatches(node: ast.Node, shape: Shape) -> Iterator[tuple[int, str]]:
    """(source offset, message) of comparisons of a schema field with a literal of another type."""
    if isinstance(node, ast.Binary) and node.op in _COMPARISONS:
        for side, other in ((node.left, node.right), (node.right, node.left)):
            path, literal = _path(side), _literal_type(other)
            if path is None or literal is None:
                continue
            depth, found = _resolve(path, shape)
            if depth < len(path) or not isinstance(found, str) or found in ("null", literal):
                continue
            if found in _NUMBERS and literal in _NUMBERS:
                continue
            yield side.pos, (f"event.{'.'.join(path)} is {_a(found)} in {{schema}}, compared ({node.op}) "
                             f"with {_a(literal)}")
            return
    for child in _children(node):
        yield from _mismatches(child, shape)


def _unknown(node: ast.Node, shape: Shape) -> Iterator[tuple[int, str, str, list[str]]]:
    """(source offset, written path, missing field, the record's fields) of each unknown selection."""
    if isinstance(node, ast.Select):
        path = _path(node)
        if path is not None:
            depth, record = _resolve(path, shape)
            if depth < len(path) and isinstance(record, dict):
                yield node.pos, "event." + ".".join(path[: depth + 1]), path[depth], sorted(record)
            return
    if isinstance(node, ast.Has):
        yield from _unknown(node.operand, shape)  # the operand's own path must exist; the tested field may not
        return
    for child in _children(node):
        yield from _unknown(child, shape)


def schema_problems(product: DataProduct, shape: Shape, schema_name: str) -> list[Problem]:
    """Each selection of a field `schema_name` (e.g. "subject orders-value version 3") lacks."""
    spec = product.spec
    expressions: list[tuple[tuple[str, ...], str]] = []
    if spec.filter is not None:
        expressions.append((("spec", "filter"), spec.filter))
    if spec.delete is not None:
        expressions.append((("spec", "delete"), spec.delete))
    expressions += [(("spec", "fields", name), source) for name, source in spec.fields.items()]
    problems: list[Problem] = []
    for path, source in expressions:
        try:
            tree = parse(source)
        except ExpressionError:
            continue  # already a finding of its own
        found: list[tuple[int, str]] = []
        for offset, written, missing, known in _unknown(tree, shape):
            close = difflib.get_close_matches(missing, known, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (it has {', '.join(known)})" if known else ""
            found.append((offset, f"{written}: {schema_name} has no field {missing!r}{hint}"))
        found += [(offset, message.format(schema=schema_name)) for offset, message in _mismatches(tree, shape)]
        problems += [Problem(path, message, column_offset=offset if "\n" not in source[:offset] else None)
                     for offset, message in sorted(found)]
    return problems
