"""The `protobuf` format's hook: the wire header is read here, and the registered `.proto` text,
its imports (from the schema's references) and the payload after the 5-byte header go to
`provisioner.formats.protobuf.compile_proto(...).decode(...)`; a missing module or a payload it
refuses is a `decode` dead letter."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from typing import Any

import pytest

from provisioner.formats.protobuf_format import PROTOBUF_MODULE, ProtobufFormat
from provisioner.formats.schemas import DecodeError, Reference, RegisteredSchema, StaticSchemas

MAIN = RegisteredSchema("PROTOBUF", 'syntax = "proto3"; import "money.proto"; message Order { Money m = 1; }',
                        (Reference("money.proto", "money-value", 3),))
MONEY = RegisteredSchema("PROTOBUF", 'syntax = "proto3"; message Money { int64 cents = 1; }')
SOURCE = StaticSchemas({4: MAIN, 5: RegisteredSchema("AVRO", '"string"')}, {("money-value", 3): MONEY})


class ProtoDecodeError(ValueError):
    pass


def fake_module(calls: list[tuple[str, dict[str, str]]]) -> types.ModuleType:
    module = types.ModuleType(PROTOBUF_MODULE)

    class Schema:
        def decode(self, payload: bytes) -> Any:
            if payload == b"\xff":
                raise ProtoDecodeError("truncated message")
            return {"payload": payload}

    def compile_proto(text: str, references: Mapping[str, str]) -> Schema:
        calls.append((text, dict(references)))
        return Schema()

    module.compile_proto = compile_proto  # type: ignore[attr-defined]
    return module


def test_the_proto_text_its_imports_and_the_payload_go_to_the_protobuf_module(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, str]]] = []
    monkeypatch.setitem(sys.modules, PROTOBUF_MODULE, fake_module(calls))
    decoder = ProtobufFormat(SOURCE)
    assert decoder.decode(b"\x00\x00\x00\x00\x04\x00\x08\x05") == {"payload": b"\x00\x08\x05"}
    assert decoder.decode(b"\x00\x00\x00\x00\x04\x02\x01") == {"payload": b"\x02\x01"}
    assert calls == [(MAIN.text, {"money.proto": MONEY.text})]  # compiled once per schema id
    with pytest.raises(DecodeError, match="does not decode with Protobuf schema 4: truncated message"):
        decoder.decode(b"\x00\x00\x00\x00\x04\xff")
    with pytest.raises(DecodeError, match="schema 5: its type is AVRO, not PROTOBUF"):
        decoder.decode(b"\x00\x00\x00\x00\x05\x00")


def test_without_the_protobuf_module_records_are_decode_errors_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, PROTOBUF_MODULE, None)  # what an absent module imports as
    with pytest.raises(DecodeError, match="protobuf decoding is not available"):
        ProtobufFormat(SOURCE).decode(b"\x00\x00\x00\x00\x04\x00")
