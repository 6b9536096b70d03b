"""Protobuf message classes as a producer has them, made by protoc itself (grpcio-tools) rather
than by the consumer's compiler under test: `.proto` files compiled into a descriptor set, loaded
into a pool of their own, classes from `message_factory` (no generated modules)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

WELL_KNOWN = str(Path(protoc.__file__).parent / "_proto")


def message_classes(folder: Path, files: Mapping[str, str], *names: str) -> list[Any]:
    """The classes of message types `names` (full names) of `files` (import path -> text)."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    out = folder / "descriptors.pb"
    code = protoc.main(["protoc", f"-I{folder}", f"-I{WELL_KNOWN}", "--include_imports",
                        f"--descriptor_set_out={out}", *files])
    assert code == 0, f"protoc failed on {sorted(files)}"
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(file)
    return [message_factory.GetMessageClass(pool.FindMessageTypeByName(name)) for name in names]
