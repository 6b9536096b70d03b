"""The shape of `event` as a schema describes it: which fields a record has and what CEL type each
value takes, so `validate` can say `event.amout` names no field before a consumer dead-letters every
record for it.

Built from an Avro schema (as a schema registry serves it, named types resolved) or a JSON Schema
(`source.schema`, or a `jsonschema` subject). The mapping follows spec.md's "Formats" section: what a
decoder puts in `event` is what the shape says. A shape is deliberately partial: anything it cannot
tell for sure (a union of several types, an open JSON object, a recursion it stops following) is
`dyn`, about which nothing is claimed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["DYN", "Shape", "from_avro", "from_json_schema"]

_MAX_DEPTH: Final = 64
"""Nesting followed when building a shape; deeper (or recursive) types are `dyn`."""


@dataclass(frozen=True, slots=True)
class Shape:
    """One value's CEL type: `map` for a record or map, `list`, a scalar type name, or `dyn`.

    `fields` lists a record's fields; `closed` says the record has no others (Avro records, JSON
    objects with `additionalProperties: false`). `items` is a list's element or a map's value.
    `nullable` says the value may also be null (an optional field, a union with null)."""

    kind: str
    fields: Mapping[str, Shape] = field(default_factory=dict)
    closed: bool = False
    items: Shape | None = None
    nullable: bool = False
    origin: str = ""
    """What the shape was built from (`subject orders-value, version 3`), for messages."""

    def field(self, name: str) -> Shape | None:
        """The shape of field `name`, or None when the shape says nothing about it."""
        found = self.fields.get(name)
        if found is not None:
            return found
        return self.items if self.kind == "map" and not self.fields else None

    def has_no(self, name: str) -> bool:
        """Whether the shape says for sure that field `name` cannot be there."""
        return self.kind == "map" and self.closed and name not in self.fields


DYN: Final = Shape("dyn")

_AVRO_PRIMITIVES: Final = {"null": "null", "boolean": "bool", "int": "int", "long": "int", "float": "double",
                           "double": "double", "bytes": "bytes", "string": "string"}
_AVRO_LOGICAL: Final = {
    "timestamp-millis": "timestamp", "timestamp-micros": "timestamp", "timestamp-nanos": "timestamp",
    "local-timestamp-millis": "timestamp", "local-timestamp-micros": "timestamp",
    "local-timestamp-nanos": "timestamp", "date": "timestamp", "time-millis": "duration",
    "time-micros": "duration", "decimal": "double", "uuid": "string",
}


def from_avro(schema: Any, origin: str = "", named: dict[str, Any] | None = None) -> Shape:
    """The shape of a value written with Avro `schema` (its JSON, parsed); `named` collects the
    named types by full name as they are met (pass the same dict for the schema's references
    first, dependencies first, so the schema can use theirs)."""
    names: dict[str, Any] = named if named is not None else {}
    return _avro(schema, names, None, 0, origin)


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _avro(schema: Any, names: dict[str, Any], namespace: str | None, depth: int, origin: str) -> Shape:
    if depth > _MAX_DEPTH:
        return DYN
    if isinstance(schema, str):
        if schema in _AVRO_PRIMITIVES:
            return Shape(_AVRO_PRIMITIVES[schema], origin=origin)
        named = names.get(_full_name(schema, namespace), names.get(schema))
        return DYN if named is None else _avro(named, names, namespace, depth + 1, origin)
    if isinstance(schema, list):
        return _avro_union(schema, names, namespace, depth, origin)
    if not isinstance(schema, dict):
        return DYN
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if isinstance(logical, str) and logical in _AVRO_LOGICAL and kind in ("int", "long", "bytes", "fixed", "string"):
        return Shape(_AVRO_LOGICAL[logical], origin=origin)
    if kind in ("record", "error", "enum", "fixed") and isinstance(schema.get("name"), str):
        own = schema.get("namespace") if isinstance(schema.get("namespace"), str) else namespace
        names.setdefault(_full_name(schema["name"], own), schema)
        namespace = own
    if kind in ("record", "error"):
        fields = {}
        for entry in schema.get("fields") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                fields[entry["name"]] = _avro(entry.get("type"), names, namespace, depth + 1, origin)
        return Shape("map", fields=fields, closed=True, origin=origin)
    if kind == "enum":
        return Shape("string", origin=origin)
    if kind == "fixed":
        return Shape("bytes", origin=origin)
    if kind == "array":
        return Shape("list", items=_avro(schema.get("items"), names, namespace, depth + 1, origin), origin=origin)
    if kind == "map":
        return Shape("map", items=_avro(schema.get("values"), names, namespace, depth + 1, origin), origin=origin)
    if isinstance(kind, (str, list, dict)):
        return _avro(kind, names, namespace, depth + 1, origin)
    return DYN


def _avro_union(branches: list[Any], names: dict[str, Any], namespace: str | None, depth: int,
                origin: str) -> Shape:
    shapes = [_avro(branch, names, namespace, depth + 1, origin) for branch in branches]
    others = [shape for shape in shapes if shape.kind != "null"]
    nullable = len(others) < len(shapes)
    if len(others) == 1:
        only = others[0]
        return Shape(only.kind, only.fields, only.closed, only.items, nullable, origin)
    if others and all(shape.kind == "map" and shape.closed for shape in others):
        # A union of records: a field of any branch may be there; one that several branches type
        # differently is left unchecked.
        fields: dict[str, Shape] = {}
        for shape in others:
            for name, field_shape in shape.fields.items():
                fields[name] = field_shape if fields.get(name, field_shape) == field_shape else DYN
        return Shape("map", fields=fields, closed=True, nullable=nullable, origin=origin)
    return Shape("dyn", nullable=nullable, origin=origin)


_JSON_TYPES: Final = {"string": "string", "integer": "int", "number": "number", "boolean": "bool",
                      "null": "null", "array": "list", "object": "map"}


def from_json_schema(schema: Any, origin: str = "") -> Shape:
    """The shape of a JSON value that satisfies `schema` (local `$ref`s into `$defs` followed)."""
    return _json(schema, schema, 0, origin)


def _json(schema: Any, root: Any, depth: int, origin: str) -> Shape:
    if depth > _MAX_DEPTH or not isinstance(schema, dict):
        return DYN
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
        return _json(target, root, depth + 1, origin)
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else declared if isinstance(declared, list) else []
    kinds = [_JSON_TYPES.get(t, "dyn") for t in types if isinstance(t, str)]
    nullable = "null" in kinds
    kinds = [k for k in kinds if k != "null"]
    if len(kinds) != 1:
        return Shape("dyn", nullable=nullable, origin=origin)
    kind = kinds[0]
    if kind == "map":
        properties = schema.get("properties")
        described = properties.items() if isinstance(properties, dict) else ()
        fields = {name: _json(sub, root, depth + 1, origin) for name, sub in described if isinstance(name, str)}
        closed = schema.get("additionalProperties") is False and not schema.get("patternProperties")
        listed = schema.get("required")
        required: list[Any] = listed if isinstance(listed, list) else []
        fields = {name: shape if name in required else _optional(shape) for name, shape in fields.items()}
        return Shape("map", fields=fields, closed=closed, nullable=nullable, origin=origin)
    if kind == "list":
        return Shape("list", items=_json(schema.get("items"), root, depth + 1, origin), nullable=nullable,
                     origin=origin)
    return Shape(kind, nullable=nullable, origin=origin)


def _optional(shape: Shape) -> Shape:
    return shape if shape.nullable else Shape(shape.kind, shape.fields, shape.closed, shape.items, True, shape.origin)
