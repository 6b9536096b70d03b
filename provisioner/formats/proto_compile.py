"""Registered `.proto` schemas compiled into a descriptor pool, with only their references importable.

`protoc` (shipped as a Python module by grpcio-tools) compiles the text, in a child process: a hostile
schema can crash it (an option value nested 100,000 deep overflows its stack), and a crash there is
a refused schema, not a dead consumer. Its only source paths are a private temporary folder holding
the schema and its references, and the folder of the well-known types; protoc itself refuses
`..`, `.` and absolute import paths, and every file it returns is checked to be one of those.

A schema may also arrive as a base64 `FileDescriptorProto`: that is what confluent-kafka's Python
serializer registers, and a registry that keeps what it is given (srfake) serves it back as is.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

from google.protobuf import (
    any_pb2,
    api_pb2,
    descriptor_pb2,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    source_context_pb2,
    struct_pb2,
    timestamp_pb2,
    type_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError

PROTOC_TIMEOUT_S = 60
_MAX_ERROR = 600
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\.proto\Z")
# protoc's warnings, and the log lines of the library it is built on ("W0000 00:00:17.. parser.cc:659] ...").
_NOISE = re.compile(r"\s*(?:$|.*\bwarning:|WARNING: All log messages before|[IW]\d{4} \d\d:\d\d:\d\d)")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}\Z")
_BUILTIN_MODULES = (any_pb2, api_pb2, descriptor_pb2, duration_pb2, empty_pb2, field_mask_pb2,
                    source_context_pb2, struct_pb2, timestamp_pb2, type_pb2, wrappers_pb2)


_Files = dict[str, descriptor_pb2.FileDescriptorProto]


class ProtoSchemaError(ValueError):
    """The schema text (or one of its references) does not compile; the message says why."""


@functools.cache
def _well_known_dir() -> Path:
    return Path(str(resources.files("grpc_tools") / "_proto"))


@functools.cache
def _builtin_files() -> Mapping[str, descriptor_pb2.FileDescriptorProto]:
    files = {}
    for module in _BUILTIN_MODULES:
        proto = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        files[proto.name] = proto
    return files


@functools.lru_cache(maxsize=256)
def is_well_known(name: str) -> bool:
    """Whether `name` is one of the `google/protobuf/*.proto` files every consumer knows."""
    return name.startswith("google/protobuf/") and _NAME.match(name) is not None \
        and (_well_known_dir() / name).is_file()


def compile_files(text: str, references: Mapping[str, str]) -> tuple[DescriptorPool, str]:
    """A fresh pool holding the schema `text`, the references it imports and the well-known types,
    and the name of the schema's own file in it."""
    for name in references:
        if not isinstance(name, str) or _NAME.match(name) is None:
            raise ProtoSchemaError(f"reference {name!r} is not a relative .proto path (letters, digits, _ . - /)")
    main = next(n for n in (f"schema{i or ''}.proto" for i in range(len(references) + 1)) if n not in references)
    sources = {main: text} | {n: t for n, t in references.items() if not is_well_known(n)}
    texts: dict[str, str] = {}
    given: _Files = {}
    for name, source in sources.items():
        proto = _as_descriptor(name, source)
        if proto is None:
            texts[name] = source
        else:
            given[name] = proto
    known = dict(_builtin_files())
    if texts:
        known |= _run_protoc(texts, given)
    known |= given
    return _pool_of(main, known, allowed=set(sources)), main


def _as_descriptor(name: str, source: str) -> descriptor_pb2.FileDescriptorProto | None:
    """The FileDescriptorProto a base64 schema holds (named `name`, as its importers know it), or
    None when `source` is `.proto` text."""
    compact = "".join(source.split())
    if not compact or _BASE64.match(compact) is None:
        return None
    try:
        proto = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(compact, validate=True))
    except (binascii.Error, DecodeError) as exc:
        raise ProtoSchemaError(f"{name}: neither .proto text nor a base64 FileDescriptorProto ({exc})") from None
    proto.name = name
    return proto


def _run_protoc(texts: Mapping[str, str], given: _Files) -> _Files:
    with tempfile.TemporaryDirectory(prefix="provisioner-proto-") as tmp:
        root = Path(tmp)
        src = root / "src"
        for name, text in texts.items():
            path = src / name
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            except UnicodeEncodeError as exc:
                raise ProtoSchemaError(f"{name}: not UTF-8 text ({exc.reason})") from None
            except OSError as exc:
                raise ProtoSchemaError(f"{name[:100]}: cannot be stored as a file ({exc.strerror})") from None
        src.mkdir(exist_ok=True)
        args = [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={_well_known_dir()}",
                f"--proto_path={src}", "--include_imports", f"--descriptor_set_out={root / 'out.pb'}"]
        if given:
            given_set = descriptor_pb2.FileDescriptorSet(file=list(given.values()))
            (root / "given.pb").write_bytes(given_set.SerializeToString())
            args.append(f"--descriptor_set_in={root / 'given.pb'}")
        try:
            done = subprocess.run([*args, *texts], cwd=root, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=PROTOC_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ProtoSchemaError(f"compiling the schema took longer than {PROTOC_TIMEOUT_S} s") from None
        if done.returncode != 0:
            raise ProtoSchemaError(_protoc_failure(done.returncode, done.stderr, src))
        out = descriptor_pb2.FileDescriptorSet.FromString((root / "out.pb").read_bytes())
    return {f.name: f for f in out.file}


def _protoc_failure(code: int, stderr: bytes, src: Path) -> str:
    """protoc's errors on one line, with file names as the schema's imports write them."""
    text = stderr.decode("utf-8", "replace").replace(f"{src}/", "")
    errors = [line.strip() for line in text.splitlines() if line.strip() and not _NOISE.match(line)]
    if code < 0:
        errors.insert(0, f"the compiler crashed (signal {-code})")
    text = "; ".join(errors) or f"the compiler failed (exit status {code})"
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def _pool_of(main: str, known: Mapping[str, descriptor_pb2.FileDescriptorProto],
             allowed: set[str]) -> DescriptorPool:
    """A pool with `main` and what it imports, dependencies first; an import outside `known` (or a
    file `known` holds that is neither a given source nor a well-known type) is refused."""
    pool = DescriptorPool()
    for name in _dependency_order(main, known):
        if name not in allowed and not is_well_known(name):
            raise ProtoSchemaError(f"import {name!r} is neither a reference of the schema nor a well-known type")
        try:
            pool.Add(known[name])
        except (TypeError, ValueError, KeyError) as exc:
            raise ProtoSchemaError(f"{name}: {exc}") from None
    return pool


def _dependency_order(main: str, known: Mapping[str, descriptor_pb2.FileDescriptorProto]) -> Iterable[str]:
    """`main` and the files it imports, each after its own imports (iteratively: a chain of
    references may be long); an import cycle or a missing import is refused."""
    order: list[str] = []
    done: set[str] = set()
    stack: list[tuple[str, int]] = [(main, 0)]
    path: list[str] = []
    while stack:
        name, next_dep = stack.pop()
        if next_dep == 0:
            if name in done:
                continue
            if name not in known:
                importer = f" (imported by {path[-1]})" if path else ""
                raise ProtoSchemaError(f"import {name!r}{importer} is not among the schema's references")
            path.append(name)
        deps = known[name].dependency
        if next_dep < len(deps):
            stack.append((name, next_dep + 1))
            dep = deps[next_dep]
            if dep in path:
                raise ProtoSchemaError(f"import cycle: {' -> '.join([*path[path.index(dep):], dep])}")
            if dep not in done:
                stack.append((dep, 0))
            continue
        path.pop()
        done.add(name)
        order.append(name)
    return order
