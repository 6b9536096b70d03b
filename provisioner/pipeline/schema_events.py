"""JSON events written in a schema-registry format and judged by the consumer's own decoder, for
`provisioner dev produce --format` and `provisioner test --events --schema`: a value the schema
cannot encode, or whose bytes the consumer would refuse (a JSON Schema it breaks), is refused
here, naming why, instead of becoming a dead letter later."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provisioner.formats.decoders import registry_decoder
from provisioner.formats.encode import EncodeError, schema_encoder
from provisioner.formats.schemas import RegisteredSchema, StaticSchemas
from provisioner.pipeline.event_schema import compile_schema
from provisioner.pipeline.process import decode_value

__all__ = ["EncodeError", "checked_encoder"]


def checked_encoder(fmt: str, schema_text: str, schema_id: int) -> tuple[RegisteredSchema, Callable[[Any], bytes]]:
    """The schema as registered and the function that writes one JSON value in `fmt`'s wire format
    under `schema_id`; that function raises EncodeError when the value does not fit the schema or
    the consumer would not decode the bytes. ValueError when `schema_text` is not a schema of `fmt`."""
    registered, encode = schema_encoder(fmt, schema_text, schema_id)
    decode = registry_decoder(fmt, StaticSchemas({schema_id: registered}), decode_json=decode_value,
                              compile_schema=compile_schema)

    def checked(value: Any) -> bytes:
        data = encode(value)
        try:
            decode(data)
        except ValueError as error:  # DecodeError, SchemaMismatch
            raise EncodeError(f"the consumer would refuse it: {error}") from None
        return data

    return registered, checked
