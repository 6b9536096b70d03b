"""`provisioner dev produce --format avro|protobuf|jsonschema --schema FILE`: JSON Lines written in
the schema registry's wire format, as a producer's Confluent serializer writes them.

The schema file is registered under `<topic>-value` (`--key-schema` under `<topic>-key`) in the
registry of the Kafka client properties (`schema.registry.url`), or else in the dev registry of the
state directory, started if need be as `provisioner up` does. Each line's value (and, with
`--key-format`, its key: the envelope's `key` or the `--key-field` value) is read as JSON, with the
text forms `provisioner test` reads (RFC 3339 timestamps, base64 bytes, the proto3 JSON mapping),
encoded, and checked by the consumer's own decoder; a line that does not fit is a finding.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from provisioner.cli.output import err_console, fail
from provisioner.errors import ConfigurationError
from provisioner.pipeline.eventfile import ENVELOPE_KEYS, EventLine
from provisioner.stream.settings import KafkaSettings

if TYPE_CHECKING:  # the encoders and the Kafka client load when a command produces, not when the CLI starts
    from provisioner.stream.kafka import OutgoingRecord
    from provisioner.stream.registry import RegistryClient

__all__ = ["KeyFormat", "SchemaFormat", "SchemaProducer", "schema_producer"]

Encode = Callable[[Any], bytes]


class SchemaFormat(StrEnum):
    json = "json"
    avro = "avro"
    protobuf = "protobuf"
    jsonschema = "jsonschema"


class KeyFormat(StrEnum):
    string = "string"
    avro = "avro"
    protobuf = "protobuf"
    jsonschema = "jsonschema"


def _read_schema(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        fail(f"cannot read {path}: {reason}")


@dataclass(frozen=True, slots=True)
class SchemaProducer:
    """Turns a line of an event file into the record to produce; EncodeError says why it cannot."""

    value: Encode | None
    key: Encode | None
    key_field: str | None

    def record(self, line: EventLine, raw: bytes) -> OutgoingRecord:
        from provisioner.stream.kafka import outgoing_record

        record = outgoing_record(line)
        value, key = record.value, record.key
        if self.value is not None and line.value is not None:
            value = self.value(json.loads(line.value))
        if self.key is not None:
            written = _raw_key(raw, self.key_field)
            key = None if written is None else self.key(written)
        return replace(record, value=value, key=key)


def _raw_key(raw: bytes, key_field: str | None) -> Any:
    """The key as the line writes it (an int stays an int): the envelope's `key`, or else the
    `key_field` of the value. The line is known to parse."""
    data = json.loads(raw)
    if isinstance(data, dict) and "value" in data and set(data) <= ENVELOPE_KEYS:
        if "key" in data:
            return data["key"]
        data = data["value"]
    return data.get(key_field) if key_field is not None and isinstance(data, dict) else None


def _register(client: RegistryClient, subject: str, fmt: str, path: Path) -> Encode:
    from provisioner.pipeline.schema_events import checked_encoder

    text = _read_schema(path)
    try:
        registered, _ = checked_encoder(fmt, text, 0)  # it compiles before anything is registered
    except ValueError as error:
        fail(f"{path}: not a {fmt} schema: {error}")
    schema_id = client.register(subject, registered)
    err_console.print(f"registered {path} as {subject} (schema id {schema_id})")
    return checked_encoder(fmt, text, schema_id)[1]


def schema_producer(address: KafkaSettings, state_dir: Path, topic: str, value: tuple[SchemaFormat, Path | None],
                    key: tuple[KeyFormat, Path | None], key_field: str | None) -> tuple[KafkaSettings, SchemaProducer]:
    """The Kafka settings to produce with (naming the registry) and the encoders of the value and key
    formats; ConfigurationError for a schema format without its schema file, or a schema file
    without a schema format."""
    from provisioner.local.devregistry import with_registry
    from provisioner.stream.registry import RegistryClient

    plain = (SchemaFormat.json.value, KeyFormat.string.value)
    for option, (fmt, path) in (("--schema", value), ("--key-schema", key)):
        if fmt.value in plain and path is not None:
            raise ConfigurationError(f"{option} {path}: give the format it is a schema of (--format/--key-format "
                                     f"avro, protobuf or jsonschema)")
        if fmt.value not in plain and path is None:
            raise ConfigurationError(f"format {fmt.value} needs its schema file ({option} FILE)")
    formats = {fmt.value for fmt, path in (value, key) if path is not None}
    if not formats:
        return address, SchemaProducer(None, None, key_field)
    kafka = with_registry(formats, address, state_dir, lambda line: err_console.print(escape(line)))
    assert isinstance(kafka, KafkaSettings) and kafka.schema_registry is not None
    client = RegistryClient(kafka.schema_registry)
    value_encode = None if value[1] is None else _register(client, f"{topic}-value", value[0].value, value[1])
    key_encode = None if key[1] is None else _register(client, f"{topic}-key", key[0].value, key[1])
    return kafka, SchemaProducer(value_encode, key_encode, key_field)
