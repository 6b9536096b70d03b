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
    SECRET_KEY_PATTERN,
    check_label_value,
    check_qualified_name,
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
        # No coercion: `replicas: true` or `batchSize: "10"` is a mistake to report, not a 1 or a 10.
        strict=True,
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
        instant = parse_rfc3339(value)
    except ValueError:
        raise ValueError(f"{value!r} is not earliest, latest or an RFC 3339 timestamp (2026-01-31T00:00:00Z)") from None
    if instant.timestamp() < 0:
        # Kafka's timestamps start at the Unix epoch; a negative one asks the broker for something else
        # (-1 means latest, -2 earliest), so an instant before it is refused rather than misread.
        raise ValueError(f"{value!r} is before 1970-01-01T00:00:00Z, where Kafka's timestamps start: use earliest")
    return value


def _key_prefix(value: str) -> str:
    if value.startswith("\uffff"):
        raise ValueError("a key prefix must not start with U+FFFF: keys under it are versions being rebuilt")
    return value


def _qualified_name(value: str) -> str:
    check_qualified_name(value)
    return value


def _label_value(value: str) -> str:
    check_label_value(value)
    return value


def consumer_group_id(namespace: str, product: str, store: str) -> str:
    """The consumer group of a product's store (`DataProduct.consumer_group`)."""
    return f"provisioner.{namespace}.{product}.{store}"


MAX_ANNOTATIONS_BYTES = 256 * 1024  # the API server's limit on all of an object's annotations together


def _annotations(value: dict[str, str]) -> dict[str, str]:
    size = sum(len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
               for k, v in value.items())
    if size > MAX_ANNOTATIONS_BYTES:
        raise ValueError(f"annotations total {size} bytes, more than Kubernetes' {MAX_ANNOTATIONS_BYTES // 1024} KiB")
    return value


def _until(value: str) -> str:
    try:
        parse_rfc3339(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp (2026-01-31T00:00:00Z)") from None
    return value


Duration = Annotated[str, Field(pattern=DURATION_PATTERN), AfterValidator(_duration)]
PositiveDuration = Annotated[str, Field(pattern=DURATION_PATTERN), AfterValidator(_positive_duration)]
TopicName = Annotated[str, AfterValidator(_topic)]
SqlIdentifier = Annotated[str, AfterValidator(_sql_identifier)]
Expression = Annotated[str, Field(min_length=1, max_length=4096)]
LabelKey = Annotated[str, AfterValidator(_qualified_name)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
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
    """The product's name, namespace, labels and annotations."""

    name: Annotated[str, AfterValidator(_product_name), Field(
        description="The product's name: an RFC 1123 label of at most 40 characters.")]
    namespace: Annotated[str, AfterValidator(_namespace), Field(
        description="The namespace the product and its objects live in.")] = "default"
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, description="Labels of the product.")
    annotations: Annotated[dict[LabelKey, str], AfterValidator(_annotations)] = Field(
        default_factory=dict, description="Annotations of the product.")


class Owner(_Model):
    """Who answers for the product."""

    team: str | None = Field(default=None, description="The owning team.")
    contact: str | None = Field(default=None, description="How to reach the owners (an email address, a channel).")


class SecretName(_Model):
    """A Kubernetes Secret of the product's namespace, by name."""

    name: Annotated[str, AfterValidator(_namespace), Field(description="The Secret's name.")]


class KafkaCredentials(_Model):
    """Where the product's consumers get their Kafka client settings instead of the platform's."""

    secret_ref: SecretName = Field(
        description="A Secret of the product's namespace holding client.properties and its PEM files.")


class Source(_Model):
    """The Kafka topic the product reads, and how its records are decoded."""

    topic: TopicName = Field(description="The Kafka topic to read: a legal topic name.")
    format: Literal["json", "avro", "protobuf", "jsonschema"] = Field(
        default="json",
        description="How record values are encoded: json, or avro, protobuf or jsonschema in the schema "
                    "registry's wire format (the schema fetched by id from the configured registry).")
    key_format: Literal["string", "json", "avro", "protobuf", "jsonschema"] = Field(
        default="string", description="How record keys are decoded for record.key: string (UTF-8), json, "
                                      "or avro, protobuf or jsonschema in the schema registry's wire format.")
    start_from: Annotated[str, AfterValidator(_start_from)] = Field(
        default="earliest",
        description="Where a new consumer starts: earliest, latest or an RFC 3339 timestamp.")
    json_schema: dict[str, Any] | None = Field(
        default=None, alias="schema",
        description="A JSON Schema (2020-12) every event value must satisfy; a value that does not is a dead letter.")
    until: Annotated[str, AfterValidator(_until)] | None = Field(
        default=None,
        description="An RFC 3339 timestamp: the store holds the state as of this instant (records stamped "
                    "after it are not applied) and stops following once every partition passed it.")
    credentials: KafkaCredentials | None = Field(
        default=None,
        description="The product's own Kafka user (in a cluster): a Secret of the product's namespace with the "
                    "keys the platform's has (client.properties and the PEM files it names).")


class SecretRef(_Model):
    """A key of a Kubernetes Secret in the product's namespace."""

    name: Annotated[str, AfterValidator(_namespace), Field(description="The Secret's name.")]
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN,
                              description="The key whose value is the store's URL.")]


class Connection(_Model):
    """Where an unmanaged store lives: a URL (`${ENV}` expanded at run time) or a Secret key."""

    url: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        default=None,
        description="The store's URL (redis://... or postgresql://...); ${ENV_VAR} is expanded at run time.")
    secret_ref: SecretRef | None = Field(
        default=None, description="A Kubernetes Secret key holding the store's URL.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Connection:
        if (self.url is None) == (self.secret_ref is None):
            raise ValueError("set exactly one of url or secretRef")
        return self


class RedisSettings(_Model):
    """A Redis store: one key per row."""

    key_prefix: Annotated[str, Field(max_length=256), AfterValidator(_key_prefix)] | None = Field(
        default=None, description='Prefix of every key (default "<metadata.name>:").')
    structure: Literal["hash", "json"] = Field(
        default="hash", description="hash: a Redis hash per row; json: a JSON string per row.")
    ttl: PositiveDuration | None = Field(
        default=None, description="Expiry of a row, reset on every upsert (units ms, s, m, h, d).")
    connection: Connection | None = Field(
        default=None, description="Where the store lives; absent: provisioner provisions it (managed).")


class PostgresSettings(_Model):
    """A Postgres store: one table."""

    db_schema: SqlIdentifier = Field(default="public", alias="schema", description="The table's SQL schema.")
    table: SqlIdentifier | None = Field(
        default=None, description="The table (default metadata.name with '-' replaced by '_').")
    mode: Literal["upsert", "append"] = Field(
        default="upsert", description="upsert: one row per key; append: a changelog row per upsert and delete.")
    columns: dict[str, ColumnType] = Field(
        default_factory=dict, description="SQL types of output fields (default text).")
    connection: Connection | None = Field(
        default=None, description="Where the store lives; absent: provisioner provisions it (managed).")


class StoreSpec(_Model):
    """A store the product hydrates, with its own consumer: exactly one of redis or postgres."""

    name: Annotated[str, AfterValidator(_product_name), Field(
        description="The store's name, unique within the product: an RFC 1123 label of at most 40 characters.")]
    redis: RedisSettings | None = Field(default=None, description="A Redis store.")
    postgres: PostgresSettings | None = Field(default=None, description="A Postgres store.")

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
    """What a consumer does with a record it cannot process."""

    mode: Literal["deadLetter", "stop", "skip"] = Field(
        default="deadLetter",
        description="deadLetter: send it to the dead-letter topic; stop: halt the consumer; skip: count and log it.")
    dead_letter_topic: TopicName | None = Field(
        default=None, description='The dead-letter topic (default "<metadata.name>.dlq").')


class Autoscale(_Model):
    """The operator sets each store's consumer replicas from its lag, between `replicas` and this."""

    max_replicas: Annotated[int, Field(ge=1, le=64, description=(
        "Most replicas of each store's consumer (also never more than the topic's partitions)."))]
    catch_up_within: PositiveDuration = Field(
        default="2m", description="Enough replicas that the lag would be read within this, at the measured pace.")


class Consumer(_Model):
    """How each store's consumer runs."""

    replicas: Annotated[int, Field(ge=0, le=64,
                                   description="Replicas of each store's consumer (one consumer group); "
                                               "with autoscale, the fewest.")] = 1
    batch_size: Annotated[int, Field(ge=1, le=100_000,
                                     description="Most records applied in one store transaction.")] = 5000
    batch_latency: Duration = Field(default="200ms", description="Longest wait to fill a batch.")
    autoscale: Autoscale | Literal["external"] | None = Field(
        default=None,
        description="{maxReplicas, catchUpWithin}: the operator scales the consumers with their lag; external: "
                    "something else (an HPA, KEDA) owns the Deployment's replicas and the operator leaves them.")

    @model_validator(mode="after")
    def _bounds(self) -> Consumer:
        if isinstance(self.autoscale, Autoscale) and self.autoscale.max_replicas < self.replicas:
            raise ValueError(f"autoscale.maxReplicas ({self.autoscale.max_replicas}) is below replicas "
                             f"({self.replicas}), the fewest replicas autoscaling keeps")
        return self


class GivenRecord(_Model):
    """A record fed to the pipeline in a test."""

    value: Any = Field(default=None, description="The record's value (any JSON); null is a tombstone.")
    key: str | None = Field(default=None, description="The record's key.")
    headers: dict[str, str] = Field(default_factory=dict, description="The record's headers.")
    partition: Annotated[int, Field(ge=0)] = Field(default=0, description="The record's partition.")
    offset: Annotated[int, Field(ge=0)] | None = Field(default=None, description="The record's offset.")
    timestamp: str | None = Field(default=None, description="The record's timestamp (RFC 3339).")


class ExpectedUpsert(_Model):
    """An expected upsert: the row's key parts and fields."""

    key: list[str | int] = Field(description="The key's parts.")
    fields: dict[str, Any] = Field(description="The row's fields.")


class ExpectedDelete(_Model):
    """An expected delete of the row with this key."""

    key: list[str | int] = Field(description="The key's parts.")


class ExpectedDeadLetter(_Model):
    """An expected dead letter, by the stage that refused the record."""

    stage: Literal["decode", "schema", "filter", "delete", "fields", "key", "order", "store"] = Field(
        description="The stage that refused the record.")


class ExpectedSkip(_Model):
    """An expected skip: the filter was false, or (reason stale) the op is older than its key's last one."""

    reason: Literal["filter", "stale"] | None = Field(
        default=None, description="Why: filter (the filter was false) or stale (an older order value); "
                                  "absent: either.")


class ExpectedOp(_Model):
    """One expected op: exactly one of upsert, delete, skip or deadLetter."""

    upsert: ExpectedUpsert | None = Field(default=None, description="An upsert of a row.")
    delete: ExpectedDelete | None = Field(default=None, description="A delete of a row.")
    skip: ExpectedSkip | None = Field(default=None, description="A skipped record.")
    dead_letter: ExpectedDeadLetter | None = Field(default=None, description="A dead letter.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ExpectedOp:
        if sum(op is not None for op in (self.upsert, self.delete, self.skip, self.dead_letter)) != 1:
            raise ValueError("an expected op is exactly one of upsert, delete, skip, deadLetter")
        return self


class SpecTest(_Model):
    """An offline test run by `provisioner test`: records in, ops out."""

    name: Annotated[str, Field(min_length=1, max_length=200, description="What the test checks.")]
    given: list[GivenRecord] = Field(description="The records, in order.")
    expect: list[ExpectedOp] = Field(description="The ops they produce, in order.")
    schema_file: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None, alias="schema",
        description="For source.format avro, protobuf or jsonschema: a schema file (.avsc, .proto or a JSON Schema; "
                    "relative to the spec's file) that encodes the given values as a producer would. Without it, "
                    "the given values are the decoded event.")


class DataProductSpec(_Model):
    """What the product reads, how it transforms records, and which stores it hydrates."""

    description: str | None = Field(default=None, description="What the product is for.")
    owner: Owner | None = Field(default=None, description="Who answers for the product.")
    source: Source = Field(description="The Kafka topic the product reads.")
    filter: Expression | None = Field(
        default=None, description="CEL expression -> bool: records for which it is false are skipped.")
    delete: Expression | None = Field(
        default=None, description="CEL expression -> bool: true deletes the row with the record's key.")
    order: Expression | None = Field(
        default=None,
        description="CEL expression -> int or timestamp: an upsert or delete applies only when its value is at "
                    "least the one last applied to its key; an older one is skipped (stale).")
    order_retention: PositiveDuration = Field(
        default="7d",
        description="How long a delete's order value is kept (after the delete record's timestamp), so a late "
                    "older upsert cannot bring the row back.")
    fields: Annotated[dict[str, Expression], Field(
        min_length=1, max_length=MAX_FIELDS,
        description="Output fields in order: field name -> CEL expression over event and record.")]
    key: str | Annotated[list[str], Field(min_length=1, max_length=16)] | None = Field(
        default=None,
        description="The field (a name) or fields (a list of names) identifying a row; default: the record's key.")
    stores: Annotated[list[StoreSpec], Field(
        min_length=1, max_length=MAX_STORES,
        description="The stores to hydrate, each with its own consumer; names unique within the product.")]
    errors: Errors = Field(default_factory=Errors, description="What to do with records that cannot be processed.")
    consumer: Consumer = Field(default_factory=Consumer, description="How each store's consumer runs.")
    freshness: PositiveDuration | None = Field(
        default=None, description="The freshness goal: status says Stale when a store lags more than this.")
    tests: Annotated[list[SpecTest], Field(max_length=MAX_TESTS)] = Field(
        default_factory=list, description="Offline tests run by `provisioner test`.")


class DataProduct(_Model):
    """A data product: a Kafka topic's records, filtered and reshaped, kept fresh in Redis and Postgres."""

    api_version: Literal["provisioner.dev/v1alpha1"]
    kind: Literal["DataProduct"]
    metadata: Metadata
    spec: DataProductSpec = Field(description="The data product's desired state.")

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
        return consumer_group_id(self.metadata.namespace, self.metadata.name, store.name)
