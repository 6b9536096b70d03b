"""Checking expressions against a registered schema before they run: `event.amout` where the
subject's latest Avro schema has `amount` is a finding at its file:line:column, not a stream of
run-time dead letters.

Pure: the caller fetches the schema. Only what can be known is checked: a field selected on a
record of the schema that the record (every record branch of a union, merged) does not have.
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

Shape = dict[str, Any] | None
"""A record's fields (name -> Shape), or None where nothing is known (maps, scalars, unknown)."""


def avro_shape(parsed: Any) -> Shape:
    """The record structure of a parsed Avro schema (fastavro's form, named types inline)."""
    named: dict[str, Any] = dict(parsed.get("__named_schemas", {})) if isinstance(parsed, dict) else {}
    done: dict[str, dict[str, Any]] = {}

    def shape(schema: Any) -> Shape:
        if isinstance(schema, str):
            if schema in done:
                return done[schema]
            target = named.get(schema)
            return None if target is None else shape(target)
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            shapes = [shape(b) for b in branches]
            if not shapes or any(s is None for s in shapes):
                return None
            if len(shapes) == 1:
                return shapes[0]  # itself, not a copy: a recursive type may still be filling it
            merged: dict[str, Any] = {}
            for found in shapes:
                assert found is not None
                for name, inner in found.items():
                    merged[name] = inner if name not in merged or merged[name] == inner else None
            return merged
        kind = schema.get("type")
        if kind in ("record", "error"):
            fields: dict[str, Any] = {}
            done[schema["name"]] = fields  # a recursive type refers to itself
            for field in schema.get("fields", ()):
                fields[field["name"]] = shape(field["type"])
            return fields
        if isinstance(kind, str | list | dict) and kind not in ("array", "map", "enum", "fixed"):
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


def _unknown(node: ast.Node, shape: Shape) -> Iterator[tuple[int, str, str, list[str]]]:
    """(source offset, written path, missing field, the record's fields) of each unknown selection."""
    if isinstance(node, ast.Select):
        path = _path(node)
        if path is not None:
            current: Shape = shape
            for depth, name in enumerate(path):
                if current is None:
                    break
                if name not in current:
                    yield node.pos, "event." + ".".join(path[: depth + 1]), name, sorted(current)
                    return
                current = current[name]
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
        for offset, written, missing, known in _unknown(tree, shape):
            close = difflib.get_close_matches(missing, known, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (it has {', '.join(known)})" if known else ""
            problems.append(Problem(path, f"{written}: {schema_name} has no field {missing!r}{hint}",
                                    column_offset=offset if "\n" not in source[:offset] else None))
    return problems
