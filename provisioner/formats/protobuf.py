"""Protobuf record values decoded dynamically from the registered `.proto` text.

`compile_proto(text, references)` compiles a schema once (per schema id, by the caller's cache);
`ProtoSchema.decode(payload)` reads the Confluent message indexes that follow the schema id, then
the message they name, into the values expressions read (see `proto_values`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError, Message

from .proto_compile import ProtoSchemaError, compile_files
from .proto_values import BadValue, Plans

__all__ = ["ProtoDecodeError", "ProtoSchema", "ProtoSchemaError", "compile_proto"]

_MAX_VARINT_BYTES = 10


class ProtoDecodeError(ValueError):
    """The payload does not decode with its schema: bad message indexes, bad bytes, a bad value."""


def compile_proto(text: str, references: Mapping[str, str]) -> ProtoSchema:
    """Compile schema `text`; `references` maps each import path, as the schema's `import` statements
    write it, to that file's text. Only those and the well-known types (`google/protobuf/*.proto`)
    can be imported. Raises ProtoSchemaError naming the problem when it does not compile."""
    pool, main = compile_files(text, references)
    return ProtoSchema(pool, main)


class ProtoSchema:
    """One compiled schema; `decode` may be called from many threads."""

    __slots__ = ("_by_index", "_plans", "_top")

    def __init__(self, pool: DescriptorPool, main: str) -> None:
        self._plans = Plans(pool)
        self._top: list[Descriptor] = list(pool.FindFileByName(main).message_types_by_name.values())
        self._by_index: dict[tuple[int, ...], type[Message]] = {}

    @property
    def messages(self) -> list[Descriptor]:
        """The schema file's top-level message types, in order (message index [0] first)."""
        return list(self._top)

    def message_type(self, indexes: tuple[int, ...] = (0,)) -> type[Message]:
        """The message class `indexes` names (by default the file's first message type, the one a
        message-index list of `[0]` names); ProtoDecodeError when it names none."""
        return self._by_index.get(indexes) or self._message_class(indexes)

    def decode(self, payload: bytes) -> Any:
        """The value of `payload`, the bytes after the magic byte and schema id: the message-index
        varints, then the message."""
        indexes, start = _message_indexes(payload)
        cls = self._by_index.get(indexes) or self._message_class(indexes)
        try:
            message = cls.FromString(payload[start:])
            return self._plans.value_of(message)
        except DecodeError as exc:
            raise ProtoDecodeError(f"{cls.DESCRIPTOR.full_name} does not decode: {exc}") from None
        except BadValue as exc:
            raise ProtoDecodeError(f"{cls.DESCRIPTOR.full_name}: {exc}") from None
        except RecursionError:
            raise ProtoDecodeError(f"{cls.DESCRIPTOR.full_name}: nested too deeply") from None

    def _message_class(self, indexes: tuple[int, ...]) -> type[Message]:
        types, desc = self._top, None
        for i in indexes:
            if i >= len(types):
                where = f"{desc.full_name} has {len(types)} nested types" if desc else f"the schema has {len(types)}"
                raise ProtoDecodeError(f"message index {list(indexes)} names no message type ({where})")
            desc = types[i]
            types = list(desc.nested_types)
        assert desc is not None  # indexes is never empty
        cls = self._by_index[indexes] = self._plans.message_class(desc)
        return cls


def _message_indexes(payload: bytes) -> tuple[tuple[int, ...], int]:
    """The message indexes at the start of `payload` (a zigzag varint count, then as many zigzag
    varints; a count of 0 means [0], the first message type) and the offset of the message."""
    if not payload:
        raise ProtoDecodeError("empty payload: the message indexes are missing")
    if payload[0] == 0:
        return (0,), 1
    count, pos = _zigzag(payload, 0)
    if count < 0 or count > len(payload) - pos:
        raise ProtoDecodeError(f"bad message index count {count}")
    indexes = []
    for _ in range(count):
        index, pos = _zigzag(payload, pos)
        if index < 0:
            raise ProtoDecodeError(f"negative message index {index}")
        indexes.append(index)
    return tuple(indexes) or (0,), pos


def _zigzag(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(pos, min(len(data), pos + _MAX_VARINT_BYTES)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), i + 1
    raise ProtoDecodeError("truncated or overlong message index varint")
