"""Decoding record values and keys by `source.format` / `source.keyFormat` (spec.md, "Formats").

Pure: no I/O except through the `SchemaSource` the caller hands in (the registry client of
`provisioner.stream.registry`, or schemas held in memory). `avro` and `jsonschema` are decoded
here; `protobuf` by `provisioner.formats.protobuf` (`compile_proto`), imported when first needed.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BINARY_FORMATS"]

BINARY_FORMATS: Final = frozenset({"avro", "protobuf", "jsonschema"})
"""The formats whose records name a schema in a schema registry."""
