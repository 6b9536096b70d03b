"""Protobuf values written from their proto3 JSON form, as a producer's serializer writes them:
the message indexes (`[0]`, the file's first message type, as the single byte 0), then the message.

JSON spells a value as the proto3 JSON mapping does (RFC 3339 timestamps, `"3.5s"` durations, bytes
as base64, enums by name, int64 as a number or a string); field names as written in the `.proto`
or as their JSON names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from google.protobuf import json_format

from .protobuf import ProtoDecodeError, compile_proto

__all__ = ["FIRST_MESSAGE", "proto_encoder"]

FIRST_MESSAGE: Final = b"\x00"


def proto_encoder(text: str, references: Mapping[str, str]) -> Callable[[Any], bytes]:
    """The function that writes one JSON value as the first message type of schema `text` (message
    indexes and message, without the wire header). ValueError when the schema does not compile or
    has no message type; each call raises ValueError when the value does not fit the message."""
    try:
        cls = compile_proto(text, references).message_type()
    except ProtoDecodeError:
        raise ValueError("the schema defines no message type") from None

    def encode(value: Any) -> bytes:
        if not isinstance(value, dict):
            raise ValueError(f"{cls.DESCRIPTOR.full_name} is a message: the value must be a JSON object")
        try:
            message = json_format.ParseDict(value, cls())
        except json_format.ParseError as error:
            raise ValueError(f"the value does not fit {cls.DESCRIPTOR.full_name}: {error}") from None
        return FIRST_MESSAGE + message.SerializeToString()

    return encode
