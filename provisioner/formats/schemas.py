"""What the decoders need from a schema registry, as pure types: a schema by id, and (for schema
references) a subject's version. The registry client (`provisioner.stream.registry`) implements
`SchemaSource`; tests and `provisioner test` can hand in a dictionary-backed one.

A `SchemaSource` raises `UnknownSchema` when the registry does not know the id (the record is a
dead letter) and a retryable `provisioner.errors.UnavailableError` when it cannot be asked (the
consumer backs off; never a dead letter).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Generic, Protocol, TypeVar

__all__ = [
    "CompiledSchemas",
    "DecodeError",
    "Reference",
    "RegisteredSchema",
    "SchemaMismatch",
    "SchemaSource",
    "StaticSchemas",
    "UnknownSchema",
    "resolve_references",
]

T = TypeVar("T")

MAX_REFERENCES: Final = 256
"""Most schemas one schema may pull in through references (transitively): a registry is trusted,
but a reference cycle or a runaway chain must not stall a consumer."""


class DecodeError(ValueError):
    """A record's bytes are not a value of their format: a dead letter (stage `decode`)."""


class UnknownSchema(DecodeError):
    """The registry does not know the schema id a record names (404)."""


class SchemaMismatch(ValueError):
    """A `jsonschema` record is JSON but does not satisfy its registered schema: stage `schema`."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A schema reference: the name the referring schema uses (an Avro full name, a `.proto`
    import path) and the subject version that defines it."""

    name: str
    subject: str
    version: int


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A schema as the registry serves it: its type (AVRO, PROTOBUF, JSON), text and references."""

    schema_type: str
    text: str
    references: tuple[Reference, ...] = field(default=())


class SchemaSource(Protocol):
    def schema(self, schema_id: int) -> RegisteredSchema:
        """The schema registered under `schema_id`; UnknownSchema if there is none."""

    def version(self, subject: str, version: int) -> RegisteredSchema:
        """A subject's version (how references are resolved); UnknownSchema if there is none."""


class StaticSchemas:
    """A `SchemaSource` over schemas held in memory (tests, `provisioner test`)."""

    def __init__(self, by_id: Mapping[int, RegisteredSchema],
                 versions: Mapping[tuple[str, int], RegisteredSchema] | None = None) -> None:
        self._by_id = dict(by_id)
        self._versions = dict(versions or {})

    def schema(self, schema_id: int) -> RegisteredSchema:
        found = self._by_id.get(schema_id)
        if found is None:
            raise UnknownSchema(f"schema id {schema_id} is not registered")
        return found

    def version(self, subject: str, version: int) -> RegisteredSchema:
        found = self._versions.get((subject, version))
        if found is None:
            raise UnknownSchema(f"subject {subject!r} has no version {version}")
        return found


def resolve_references(source: SchemaSource, schema: RegisteredSchema) -> list[tuple[str, RegisteredSchema]]:
    """Every schema `schema` references, transitively, each once, dependencies before the schemas
    that use them (the order Avro's parser needs), as (reference name, schema) pairs."""
    ordered: list[tuple[str, RegisteredSchema]] = []
    seen: set[tuple[str, int]] = set()

    def visit(current: RegisteredSchema, depth: int) -> None:
        for reference in current.references:
            key = (reference.subject, reference.version)
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > MAX_REFERENCES or depth > MAX_REFERENCES:
                raise DecodeError(f"the schema pulls in more than {MAX_REFERENCES} references")
            found = source.version(reference.subject, reference.version)
            visit(found, depth + 1)
            ordered.append((reference.name, found))

    visit(schema, 0)
    return ordered


class CompiledSchemas(Generic[T]):
    """What a format compiles from each schema id (a reader, a validator), fetched and compiled on
    first sight and kept: the hot path is one dict look-up. A schema that cannot be used is kept as
    its DecodeError (an id's content never changes); an unknown id is not (it may be registered
    later, and the registry client already spaces out its look-ups)."""

    def __init__(self, source: SchemaSource, compile_schema: Callable[[int, RegisteredSchema], T]) -> None:
        self.source = source
        self.compiled: dict[int, T] = {}
        self._compile = compile_schema
        self._failed: dict[int, DecodeError] = {}

    def load(self, schema_id: int) -> T:
        failed = self._failed.get(schema_id)
        if failed is not None:
            raise failed
        registered = self.source.schema(schema_id)
        try:
            compiled = self._compile(schema_id, registered)
        except (ValueError, RecursionError) as error:  # DecodeError, and the compilers' refusals
            kept = DecodeError(f"schema {schema_id}: {error}")
            self._failed[schema_id] = kept
            raise kept from None
        self.compiled[schema_id] = compiled
        return compiled
