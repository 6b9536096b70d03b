"""`validate` against the schema registry: with a registry in the Kafka client properties
(`--kafka-config`), each schema'd spec's (avro, protobuf, jsonschema) expressions are checked
against the latest schema of its topic's value subject (`<topic>-value`), so `event.amout` where
the schema has `amount` is a finding at its file:line:column (`spec.shape_check`). Without a
registry nothing is asked;
a registry that cannot be asked, or a subject not registered yet, is a note, not a failure:
validate stays usable offline."""

from __future__ import annotations

from pathlib import Path

from provisioner.errors import UnavailableError
from provisioner.formats import BINARY_FORMATS
from provisioner.formats.schemas import DecodeError, resolve_references
from provisioner.formats.shapes import shape_of_schema
from provisioner.spec.findings import Finding
from provisioner.spec.loader import LoadedSpec, problem_finding
from provisioner.spec.semantics import shape_problems
from provisioner.stream.registry import RegistryClient
from provisioner.stream.settings import KafkaConfigError, kafka_settings_from, parse_kafka_properties

_REGISTRY_TYPES = {"avro": "AVRO", "protobuf": "PROTOBUF", "jsonschema": "JSON"}


def _note(spec: LoadedSpec, message: str) -> Finding:
    line, column = spec.document.locate(("spec", "source", "topic"))
    return Finding(spec.file, line, column, "spec.source", message)


def registry_findings(specs: list[LoadedSpec], kafka_config: Path | None,
                      environ: dict[str, str]) -> tuple[list[Finding], list[Finding]]:
    """(findings, notes) of checking the specs' expressions against their registered schemas."""
    schemad = [spec for spec in specs if spec.product.spec.source.format in BINARY_FORMATS]
    if kafka_config is None or not schemad:
        return [], []
    try:
        text = kafka_config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KafkaConfigError(f"{kafka_config}: cannot read the Kafka client properties: {error}") from None
    settings = kafka_settings_from(parse_kafka_properties(text, str(kafka_config), environ), str(kafka_config),
                                   kafka_config.resolve().parent)
    if settings.schema_registry is None:
        return [], []
    client = RegistryClient(settings.schema_registry)
    findings: list[Finding] = []
    notes: list[Finding] = []
    for spec in schemad:
        source = spec.product.spec.source
        subject = f"{source.topic}-value"
        try:
            version, registered = client.latest(subject)
            if registered.schema_type != _REGISTRY_TYPES[source.format]:
                raise DecodeError(f"its latest schema is {registered.schema_type}, but source.format is "
                                  f"{source.format}")
            shape = shape_of_schema(registered, resolve_references(client, registered),
                                    f"subject {subject} version {version}")
        except UnavailableError as error:
            notes.append(_note(spec, f"expressions not checked against the schema registry: {error}"))
            continue
        except ValueError as error:  # DecodeError, UnknownSchema (nothing registered yet), a .proto that fails
            notes.append(_note(spec, f"expressions not checked against subject {subject}: {error}"))
            continue
        findings += [problem_finding(spec.file, spec.document, problem)
                     for problem in shape_problems(spec.product, shape)]
    return findings, notes
