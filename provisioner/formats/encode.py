"""Writing JSON values in the schema registry's wire format, byte for byte as confluent-kafka's
serializers write them: for `provisioner test` (a test that names a schema file gives its `given`
values in JSON; they are encoded with that schema and decoded by the consumer's own decoder, so
the expressions see exactly what they will see in production) and for `provisioner dev produce
--format` (JSON Lines into a topic, the schema registered first).

JSON cannot spell every Avro value, so these text forms are read: timestamp-* and date as RFC 3339
(`2026-03-01T12:00:00Z`, `2026-03-01`) or their number; time-* as `HH:MM:SS[.ffffff]` or a number;
decimal as a number; bytes and fixed as base64. Protobuf values are read as the proto3 JSON
mapping writes them (`provisioner.formats.proto_encode`, imported when first needed); JSON Schema
values are written as compact UTF-8 JSON.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import io
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Final

import fastavro

from provisioner.formats.schemas import RegisteredSchema, StaticSchemas

__all__ = ["SCHEMA_TYPES", "TEST_SCHEMA_ID", "EncodeError", "schema_encoder", "test_encoder"]

TEST_SCHEMA_ID: Final = 1
SCHEMA_TYPES: Final = {"avro": "AVRO", "protobuf": "PROTOBUF", "jsonschema": "JSON"}
"""The registry's `schemaType` of each format."""


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


def _avro_payload(schema_text: str) -> Callable[[Any], bytes]:
    try:
        parsed = fastavro.parse_schema(json.loads(schema_text))
    except ValueError:
        raise
    except Exception as error:  # fastavro's SchemaParseException and kin
        raise ValueError(f"not an Avro schema: {error}") from None
    named = dict(parsed.get("__named_schemas", {})) if isinstance(parsed, dict) else {}

    def encode(value: Any) -> bytes:
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, parsed, _ready(parsed, value, dict(named)))
        except EncodeError:
            raise
        except Exception as error:
            raise EncodeError(f"the value does not fit the schema: {type(error).__name__}: {error}") from None
        return out.getvalue()

    return encode


def _json_payload(schema_text: str) -> Callable[[Any], bytes]:
    json.loads(schema_text)

    def encode(value: Any) -> bytes:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: only its JSON escape can carry it
            return json.dumps(value, separators=(",", ":")).encode("ascii")

    return encode


def _protobuf_payload(schema_text: str) -> Callable[[Any], bytes]:
    try:
        module = importlib.import_module("provisioner.formats.proto_encode")
    except ImportError:
        raise ValueError("protobuf encoding is not available in this build of provisioner") from None
    write: Callable[[Any], bytes] = module.proto_encoder(schema_text, {})

    def encode(value: Any) -> bytes:
        try:
            return write(value)
        except ValueError as error:
            raise EncodeError(str(error)) from None

    return encode


_PAYLOADS: Final[dict[str, Callable[[str], Callable[[Any], bytes]]]] = {
    "avro": _avro_payload, "jsonschema": _json_payload, "protobuf": _protobuf_payload}


def schema_encoder(fmt: str, schema_text: str, schema_id: int) -> tuple[RegisteredSchema, Callable[[Any], bytes]]:
    """The schema as the registry keeps it and the function that writes one JSON value in the
    wire format under `schema_id` (EncodeError when the value does not fit). ValueError when the
    text is not a schema of `fmt` (a `.proto` may import only the well-known types here)."""
    payload = _PAYLOADS.get(fmt)
    if payload is None:
        raise ValueError(f"{fmt} is not a schema-registry format (avro, protobuf or jsonschema)")
    write = payload(schema_text)
    header = b"\x00" + schema_id.to_bytes(4, "big")

    def encode(value: Any) -> bytes:
        return header + write(value)

    return RegisteredSchema(SCHEMA_TYPES[fmt], schema_text), encode


def test_encoder(fmt: str, schema_text: str) -> tuple[StaticSchemas, Callable[[Any], bytes]]:
    """The schemas a test's pipeline reads (the file's schema under id 1) and the function that
    encodes one `given` value. ValueError when the file is not a schema of that format."""
    registered, encode = schema_encoder(fmt, schema_text, TEST_SCHEMA_ID)
    return StaticSchemas({TEST_SCHEMA_ID: registered}), encode
