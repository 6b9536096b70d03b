"""The decoder of a format, chosen once per pipeline: a function from a record's bytes to its
CEL value, raising DecodeError (stage `decode`) or SchemaMismatch (stage `schema`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provisioner.formats.avro import AvroFormat
from provisioner.formats.jsonschema import JsonSchemaFormat, Validator
from provisioner.formats.protobuf_format import ProtobufFormat
from provisioner.formats.schemas import DecodeError, RegisteredSchema, SchemaSource

__all__ = ["Decode", "NoRegistry", "registry_decoder"]

Decode = Callable[[bytes], Any]


class NoRegistry:
    """The `SchemaSource` of a pipeline given none: every schema'd record says what is missing."""

    def schema(self, schema_id: int) -> RegisteredSchema:
        raise DecodeError(f"schema {schema_id}: no schema registry is configured "
                          f"(schema.registry.url in the Kafka client properties)")

    def version(self, subject: str, version: int) -> RegisteredSchema:
        raise DecodeError(f"subject {subject!r} version {version}: no schema registry is configured")


def registry_decoder(fmt: str, source: SchemaSource, *, decode_json: Decode,
                     compile_schema: Callable[[Any], Validator]) -> Decode:
    """The decoder of `avro`, `protobuf` or `jsonschema` records over `source`."""
    if fmt == "avro":
        return AvroFormat(source).decode
    if fmt == "protobuf":
        return ProtobufFormat(source).decode
    if fmt == "jsonschema":
        return JsonSchemaFormat(source, decode_json, compile_schema).decode
    raise ValueError(f"{fmt!r} is not a schema-registry format")
