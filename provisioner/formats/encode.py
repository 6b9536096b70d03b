"""Writing test values in the schema registry's wire format, for `provisioner test`: a test that
names a schema file gives its `given` values in JSON, and they are encoded with that schema (as a
producer's serializer would) and then decoded by the consumer's own decoder, so the expressions
see exactly what they will see in production (timestamps, durations, bytes).

JSON cannot spell every Avro value, so these text forms are read: timestamp-* and date as RFC 3339
(`2026-03-01T12:00:00Z`, `2026-03-01`) or their number; time-* as `HH:MM:SS[.ffffff]` or a number;
decimal as a number; bytes and fixed as base64.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Final

import fastavro

from provisioner.formats.schemas import RegisteredSchema, StaticSchemas

__all__ = ["TEST_SCHEMA_ID", "EncodeError", "test_encoder"]

TEST_SCHEMA_ID: Final = 1
_HEADER: Final = b"\x00" + TEST_SCHEMA_ID.to_bytes(4, "big")


class EncodeError(ValueError):
    """A test value that the named schema cannot encode; the message says why."""


def _timestamp(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return value


def _date(value: Any) -> Any:
    return date.fromisoformat(value[:10]) if isinstance(value, str) else value


def _time(value: Any) -> Any:
    return time.fromisoformat(value) if isinstance(value, str) else value


def _decimal(value: Any) -> Any:
    return Decimal(str(value)) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _bytes(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise EncodeError(f"{value!r} is not base64") from None
    return value


_LOGICAL: Final[dict[str, Callable[[Any], Any]]] = {
    "timestamp-millis": _timestamp, "timestamp-micros": _timestamp, "local-timestamp-millis": _timestamp,
    "local-timestamp-micros": _timestamp, "date": _date, "time-millis": _time, "time-micros": _time,
    "decimal": _decimal,
}


def _ready(schema: Any, value: Any, named: dict[str, Any]) -> Any:
    """`value` (from JSON) in the form fastavro's writer takes for `schema`."""
    if isinstance(schema, str):
        if schema == "bytes":
            return _bytes(value)
        target = named.get(schema)
        return value if target is None else _ready(target, value, named)
    if isinstance(schema, list):
        return _ready(_branch(schema, value, named), value, named)
    convert = _LOGICAL.get(schema.get("logicalType", ""))
    if convert is not None:
        return convert(value)
    kind = schema.get("type")
    if kind in ("record", "error") and isinstance(value, dict):
        named[schema["name"]] = schema
        return {f["name"]: _ready(f["type"], value[f["name"]], named) if f["name"] in value else value.get(f["name"])
                for f in schema.get("fields", ()) if f["name"] in value or "default" not in f}
    if kind == "array" and isinstance(value, list):
        return [_ready(schema["items"], v, named) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _ready(schema["values"], v, named) for k, v in value.items()}
    if kind in ("bytes", "fixed"):
        return _bytes(value)
    if isinstance(kind, str | dict | list):
        return _ready(kind, value, named)
    return value


def _kind(schema: Any, named: dict[str, Any]) -> str:
    if isinstance(schema, str):
        target = named.get(schema)
        return schema if target is None else _kind(target, named)
    if isinstance(schema, dict):
        return str(schema.get("type")) if isinstance(schema.get("type"), str) else "?"
    return "union"


def _branch(branches: list[Any], value: Any, named: dict[str, Any]) -> Any:
    """The union branch a JSON value is meant for: by its JSON type, a string for a string branch
    first, else for the first branch that reads that text (a timestamp, bytes, an enum symbol)."""
    kinds = [(branch, _kind(branch, named)) for branch in branches]
    wanted: tuple[str, ...]
    if value is None:
        wanted = ("null",)
    elif isinstance(value, bool):
        wanted = ("boolean",)
    elif isinstance(value, int | float):
        wanted = ("int", "long", "float", "double", "bytes")  # bytes: a decimal
    elif isinstance(value, dict):
        wanted = ("record", "error", "map")
    elif isinstance(value, list):
        wanted = ("array",)
    else:
        wanted = ("string", "long", "int", "bytes", "fixed", "enum")
    for kind in wanted:
        for branch, found in kinds:
            if found == kind:
                return branch
    return branches[0]


def test_encoder(fmt: str, schema_text: str) -> tuple[StaticSchemas, Callable[[Any], bytes]]:
    """The schemas a test's pipeline reads (the file's schema under id 1) and the function that
    encodes one `given` value. ValueError when the file is not a schema of that format."""
    if fmt == "avro":
        parsed = fastavro.parse_schema(json.loads(schema_text))
        named = dict(parsed.get("__named_schemas", {})) if isinstance(parsed, dict) else {}

        def encode(value: Any) -> bytes:
            out = io.BytesIO()
            try:
                fastavro.schemaless_writer(out, parsed, _ready(parsed, value, dict(named)))
            except EncodeError:
                raise
            except Exception as error:
                raise EncodeError(f"the value does not fit the schema: {type(error).__name__}: {error}") from None
            return _HEADER + out.getvalue()

        return StaticSchemas({TEST_SCHEMA_ID: RegisteredSchema("AVRO", schema_text)}), encode
    if fmt == "jsonschema":
        json.loads(schema_text)

        def encode_json(value: Any) -> bytes:
            return _HEADER + json.dumps(value, separators=(",", ":")).encode("utf-8")

        return StaticSchemas({TEST_SCHEMA_ID: RegisteredSchema("JSON", schema_text)}), encode_json
    raise ValueError(f"tests of source.format {fmt} take decoded values: leave out the test's schema")
