"""`jsonschema` record values: JSON after the Confluent wire-format header, which must satisfy the
schema registered under its id (stage `schema` when it does not).

The JSON decoder and the schema compiler are handed in by the pipeline (the consumer's own bounded
decoder and its RE2-backed validator), so JSON means the same here as for the `json` format.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from provisioner.formats.json_text import NotJson
from provisioner.formats.schemas import CompiledSchemas, DecodeError, RegisteredSchema, SchemaMismatch, SchemaSource
from provisioner.formats.utf8 import NotUtf8
from provisioner.formats.wire import split_header

__all__ = ["JsonSchemaFormat"]

Validator = Callable[[Any], str | None]


class JsonSchemaFormat:
    """`decode(bytes)` gives the JSON value, DecodeError when it is not one (or its schema is not
    usable), SchemaMismatch when it breaks its registered schema."""

    def __init__(self, source: SchemaSource, decode_json: Callable[[bytes], Any],
                 compile_schema: Callable[[Any], Validator]) -> None:
        self._decode_json = decode_json
        self._compile_schema = compile_schema
        self._schemas = CompiledSchemas(source, self._compile)

    def decode(self, data: bytes) -> Any:
        schema_id, payload = split_header(data)
        validator = self._schemas.compiled.get(schema_id)
        if validator is None:
            validator = self._schemas.load(schema_id)
        try:
            value = self._decode_json(bytes(payload))
        except (NotUtf8, NotJson) as error:
            raise DecodeError(f"payload is {error}") from None
        except ValueError as error:  # a decode bound
            raise DecodeError(f"payload is refused: {error}") from None
        failure = validator(value)
        if failure is not None:
            raise SchemaMismatch(f"does not satisfy registered JSON schema {schema_id}: {failure}")
        return value

    def _compile(self, schema_id: int, registered: RegisteredSchema) -> Validator:
        if registered.schema_type != "JSON":
            raise DecodeError(f"its type is {registered.schema_type}, not JSON")
        if registered.references:
            raise DecodeError("JSON schemas with references are not supported")
        schema = json.loads(registered.text)
        if not isinstance(schema, Mapping | bool):
            raise DecodeError("it is not a JSON schema (an object or a boolean)")
        return self._compile_schema(schema)
