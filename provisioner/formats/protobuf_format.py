"""`protobuf` record values: the Confluent wire format's header here, the message indexes and the
message in `provisioner.formats.protobuf` (`compile_proto(text, references).decode(payload)`),
which compiles the registered `.proto` text (and its imports, from the references) itself.

That module is imported on first use; where it is not installed, every `protobuf` record is a
dead letter saying so (a build without Protobuf support), never a crash.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from provisioner.formats.schemas import CompiledSchemas, DecodeError, RegisteredSchema, SchemaSource, resolve_references
from provisioner.formats.wire import split_header

__all__ = ["PROTOBUF_MODULE", "ProtobufFormat"]

PROTOBUF_MODULE: Final = "provisioner.formats.protobuf"


def _compiler() -> Any:
    try:
        module = importlib.import_module(PROTOBUF_MODULE)
    except ImportError:
        raise DecodeError("protobuf decoding is not available in this build of provisioner") from None
    return module.compile_proto


class ProtobufFormat:
    """`decode(bytes)` gives the message as CEL values, or raises DecodeError."""

    def __init__(self, source: SchemaSource) -> None:
        self._schemas: CompiledSchemas[Any] = CompiledSchemas(source, self._compile)

    def decode(self, data: bytes) -> Any:
        schema_id, payload = split_header(data)
        schema = self._schemas.compiled.get(schema_id)
        if schema is None:
            schema = self._schemas.load(schema_id)
        try:
            return schema.decode(bytes(payload))
        except ValueError as error:  # ProtoDecodeError
            raise DecodeError(f"payload does not decode with Protobuf schema {schema_id}: {error}") from None

    def _compile(self, schema_id: int, registered: RegisteredSchema) -> Any:
        compile_proto = _compiler()
        if registered.schema_type != "PROTOBUF":
            raise DecodeError(f"its type is {registered.schema_type}, not PROTOBUF")
        imports = {name: schema.text for name, schema in resolve_references(self._schemas.source, registered)}
        return compile_proto(registered.text, imports)
