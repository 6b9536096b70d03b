"""`validate` against the schema registry: with a registry in the Kafka client properties
(`--kafka-config`), each `avro` spec's expressions are checked against the latest schema of its
topic's value subject (`<topic>-value`), so `event.amout` where the schema has `amount` is a
finding at its file:line:column (provisioner.formats.fields). Without a registry nothing is asked;
a registry that cannot be asked, or a subject not registered yet, is a note, not a failure:
validate stays usable offline."""

from __future__ import annotations

from pathlib import Path

from provisioner.errors import UnavailableError
from provisioner.formats.avro import parse_avro
from provisioner.formats.fields import avro_shape, schema_problems
from provisioner.formats.schemas import DecodeError, resolve_references
from provisioner.spec.findings import Finding
from provisioner.spec.loader import LoadedSpec, problem_finding
from provisioner.stream.registry import RegistryClient
from provisioner.stream.settings import KafkaConfigError, kafka_settings_from, parse_kafka_properties


def _note(spec: LoadedSpec, message: str) -> Finding:
    line, column = spec.document.locate(("spec", "source", "topic"))
    return Finding(spec.file, line, column, "spec.source", message)


def registry_findings(specs: list[LoadedSpec], kafka_config: Path | None,
                      environ: dict[str, str]) -> tuple[list[Finding], list[Finding]]:
    """(findings, notes) of checking the specs' expressions against their registered schemas."""
    avro = [spec for spec in specs if spec.product.spec.source.format == "avro"]
    if kafka_config is None or not avro:
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
    for spec in avro:
        subject = f"{spec.product.spec.source.topic}-value"
        try:
            version, registered = client.latest(subject)
            if registered.schema_type != "AVRO":
                raise DecodeError(f"its latest schema is {registered.schema_type}, not AVRO")
            parsed = parse_avro(registered, resolve_references(client, registered))
        except UnavailableError as error:
            notes.append(_note(spec, f"expressions not checked against the schema registry: {error}"))
            continue
        except DecodeError as error:  # UnknownSchema too: nothing registered under the subject yet
            notes.append(_note(spec, f"expressions not checked against subject {subject}: {error}"))
            continue
        name = f"subject {subject} version {version}"
        findings += [problem_finding(spec.file, spec.document, problem)
                     for problem in schema_problems(spec.product, avro_shape(parsed), name)]
    return findings, notes
