"""The DataProduct model (v1alpha1) exactly as spec.md describes it.

pydantic v2 models with unknown fields rejected. Field-level rules (names, topics, durations) live
here as validators; rules that need the whole document (keys exist, columns name fields, every
expression compiles) live in `provisioner.spec.semantics`. Python attribute names are snake_case;
the YAML names are the camelCase aliases.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from provisioner.spec.durations import DURATION_PATTERN, parse_duration
from provisioner.spec.names import (
    PRODUCT_NAME_MAX,
    check_rfc1123_label,
    check_sql_identifier,
    check_topic_name,
)
from provisioner.spec.timestamps import parse_rfc3339

API_VERSION = "provisioner.dev/v1alpha1"
KIND = "DataProduct"
MAX_FIELDS = 256
MAX_STORES = 16
MAX_TESTS = 1000


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=False,
    )


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _positive_duration(value: str) -> str:
    if parse_duration(value).total_seconds() <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return value


def _topic(value: str) -> str:
    check_topic_name(value)
    return value


def _product_name(value: str) -> str:
    check_rfc1123_label(value, PRODUCT_NAME_MAX)
    return value


def _namespace(value: str) -> str:
    check_rfc1123_label(value, 63)
    return value


def _sql_identifier(value: str) -> str:
    check_sql_identifier(value)
    return value


def _start_from(value: str) -> str:
    if value in ("earliest", "latest"):
        return value
    try:
        parse_rfc3339(value)
    except ValueError:
        raise ValueError(f"{value!r} is not earliest, latest or an RFC 3339 timestamp (2026-01-31T00:00:00Z)") from None
    return value


Duration = Annotated[str, Field(pattern=DURATION_PATTERN), AfterValidator(_duration)]
PositiveDuration = Annotated[str, Field(pattern=DURATION_PATTERN), AfterValidator(_positive_duration)]
TopicName = Annotated[str, AfterValidator(_topic)]
SqlIdentifier = Annotated[str, AfterValidator(_sql_identifier)]
Expression = Annotated[str, Field(min_length=1, max_length=4096)]
ColumnType = Literal[
    "text",
    "integer",
    "bigint",
    "double precision",
    "numeric",
    "boolean",
    "jsonb",
    "timestamptz",
    "date",
    "uuid",
]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)


class Metadata(_Model):
    name: Annotated[str, AfterValidator(_product_name)]
    namespace: Annotated[str, AfterValidator(_namespace)] = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Owner(_Model):
    team: str | None = None
    contact: str | None = None


class Source(_Model):
    topic: TopicName
    format: Literal["json"] = "json"
    start_from: Annotated[str, AfterValidator(_start_from)] = "earliest"
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")


class SecretRef(_Model):
    name: Annotated[str, AfterValidator(_namespace)]
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class Connection(_Model):
    """Where an unmanaged store lives: a URL (`${ENV}` expanded at run time) or a Secret key."""

    url: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    secret_ref: SecretRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Connection:
        if (self.url is None) == (self.secret_ref is None):
            raise ValueError("set exactly one of url or secretRef")
        return self


class RedisSettings(_Model):
    key_prefix: Annotated[str, Field(max_length=256)] | None = None
    structure: Literal["hash", "json"] = "hash"
    ttl: PositiveDuration | None = None
    connection: Connection | None = None


class PostgresSettings(_Model):
    db_schema: SqlIdentifier = Field(default="public", alias="schema")
    table: SqlIdentifier | None = None
    mode: Literal["upsert", "append"] = "upsert"
    columns: dict[str, ColumnType] = Field(default_factory=dict)
    connection: Connection | None = None


class StoreSpec(_Model):
    name: Annotated[str, AfterValidator(_product_name)]
    redis: RedisSettings | None = None
    postgres: PostgresSettings | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> StoreSpec:
        if (self.redis is None) == (self.postgres is None):
            raise ValueError("a store sets exactly one of redis or postgres")
        return self

    @property
    def kind(self) -> Literal["redis", "postgres"]:
        return "redis" if self.redis is not None else "postgres"

    @property
    def connection(self) -> Connection | None:
        settings = self.redis or self.postgres
        return settings.connection if settings is not None else None

    @property
    def managed(self) -> bool:
        """Without a `connection`, provisioner provisions the store itself (spec.md, "Managed stores")."""
        return self.connection is None


class Errors(_Model):
    mode: Literal["deadLetter", "stop", "skip"] = "deadLetter"
    dead_letter_topic: TopicName | None = None


class Consumer(_Model):
    replicas: Annotated[int, Field(ge=0, le=64)] = 1
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    batch_latency: Duration = "200ms"


class GivenRecord(_Model):
    value: Any = None
    key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    partition: Annotated[int, Field(ge=0)] = 0
    offset: Annotated[int, Field(ge=0)] | None = None
    timestamp: str | None = None


class ExpectedUpsert(_Model):
    key: list[str | int]
    fields: dict[str, Any]


class ExpectedDelete(_Model):
    key: list[str | int]


class ExpectedDeadLetter(_Model):
    stage: Literal["decode", "schema", "filter", "delete", "fields", "key", "store"]


class ExpectedSkip(_Model):
    pass


class ExpectedOp(_Model):
    upsert: ExpectedUpsert | None = None
    delete: ExpectedDelete | None = None
    skip: ExpectedSkip | None = None
    dead_letter: ExpectedDeadLetter | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ExpectedOp:
        if sum(op is not None for op in (self.upsert, self.delete, self.skip, self.dead_letter)) != 1:
            raise ValueError("an expected op is exactly one of upsert, delete, skip, deadLetter")
        return self


class SpecTest(_Model):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    given: list[GivenRecord]
    expect: list[ExpectedOp]


class DataProductSpec(_Model):
    description: str | None = None
    owner: Owner | None = None
    source: Source
    filter: Expression | None = None
    delete: Expression | None = None
    fields: Annotated[dict[str, Expression], Field(min_length=1, max_length=MAX_FIELDS)]
    key: str | Annotated[list[str], Field(min_length=1, max_length=16)] | None = None
    stores: Annotated[list[StoreSpec], Field(min_length=1, max_length=MAX_STORES)]
    errors: Errors = Field(default_factory=Errors)
    consumer: Consumer = Field(default_factory=Consumer)
    freshness: PositiveDuration | None = None
    tests: Annotated[list[SpecTest], Field(max_length=MAX_TESTS)] = Field(default_factory=list)


class DataProduct(_Model):
    api_version: Literal["provisioner.dev/v1alpha1"]
    kind: Literal["DataProduct"]
    metadata: Metadata
    spec: DataProductSpec

    # Derived values, with the spec's defaults applied: the one place that knows them.

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def key_fields(self) -> tuple[str, ...]:
        key = self.spec.key
        if key is None:
            return ("key",)
        return (key,) if isinstance(key, str) else tuple(key)

    @property
    def fields(self) -> dict[str, str]:
        """Output fields in order, with the implicit `key: record.key` first when `key` is omitted."""
        if self.spec.key is None:
            return {"key": "record.key", **self.spec.fields}
        return dict(self.spec.fields)

    @property
    def dead_letter_topic(self) -> str:
        return self.spec.errors.dead_letter_topic or f"{self.metadata.name}.dlq"

    def store(self, name: str) -> StoreSpec:
        for store in self.spec.stores:
            if store.name == name:
                return store
        names = ", ".join(s.name for s in self.spec.stores)
        raise KeyError(f"data product {self.name!r} has no store {name!r} (stores: {names})")

    def key_prefix(self, store: StoreSpec) -> str:
        assert store.redis is not None
        prefix = store.redis.key_prefix
        return f"{self.metadata.name}:" if prefix is None else prefix

    def table(self, store: StoreSpec) -> str:
        assert store.postgres is not None
        return store.postgres.table or self.metadata.name.replace("-", "_")

    def consumer_group(self, store: StoreSpec) -> str:
        """One consumer group per (product, store), namespaced so two teams never share one."""
        return f"provisioner.{self.metadata.namespace}.{self.metadata.name}.{store.name}"
