"""The Confluent wire format: byte 0, a 4-byte big-endian schema id, then the payload (for
Protobuf the message-index varints come first; the Protobuf decoder reads them)."""

from __future__ import annotations

from typing import Final

from provisioner.formats.schemas import DecodeError

__all__ = ["HEADER_SIZE", "MAGIC", "split_header"]

MAGIC: Final = 0
HEADER_SIZE: Final = 5


def split_header(data: bytes) -> tuple[int, memoryview]:
    """The schema id and the payload of a record in the wire format; DecodeError otherwise."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(f"{len(data)} bytes, too short for the schema registry's wire format "
                          f"(magic byte and 4-byte schema id)")
    if data[0] != MAGIC:
        raise DecodeError(f"no magic byte: the first byte is 0x{data[0]:02x}, not 0x00 "
                          f"(not written by a schema-registry serializer)")
    return int.from_bytes(data[1:HEADER_SIZE], "big"), memoryview(data)[HEADER_SIZE:]
