"""The shape a registered schema gives `event` (see `spec.event_shape`), for any registry format:
Avro (its references' named types first), JSON Schema, Protobuf (the schema's first message, as
message index [0] names it)."""

from __future__ import annotations

import json
from typing import Any

from provisioner.formats.schemas import DecodeError, RegisteredSchema
from provisioner.spec.event_shape import Shape, from_avro, from_json_schema

__all__ = ["shape_of_schema"]


def shape_of_schema(schema: RegisteredSchema, references: list[tuple[str, RegisteredSchema]],
                    origin: str) -> Shape:
    """The shape of the values `schema` decodes to; `references` as `resolve_references` gives
    them (dependencies first). Raises DecodeError for a schema that cannot be read."""
    try:
        if schema.schema_type == "AVRO":
            named: dict[str, Any] = {}
            for _, referenced in references:
                from_avro(json.loads(referenced.text), named=named)
            return from_avro(json.loads(schema.text), origin, named)
        if schema.schema_type == "JSON":
            return from_json_schema(json.loads(schema.text), origin)
    except ValueError as error:
        raise DecodeError(f"not a usable {schema.schema_type} schema: {error}") from None
    if schema.schema_type == "PROTOBUF":
        from provisioner.formats.proto_shape import shape_of_message
        from provisioner.formats.protobuf import compile_proto

        compiled = compile_proto(schema.text, {name: referenced.text for name, referenced in references})
        if not compiled.messages:
            raise DecodeError("the schema defines no message")
        return shape_of_message(compiled.messages[0], origin)
    raise DecodeError(f"a {schema.schema_type} schema is not one provisioner reads")
