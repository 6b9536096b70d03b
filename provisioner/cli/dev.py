"""`provisioner dev`: a real local Kafka broker, and events to feed it.

Registered by `provisioner.cli.app` as the `dev` command group:
    dev kafka up|down|status      the dev broker (provisioner.local.devbroker)
    dev registry up|down|status   the dev schema registry (provisioner.local.devregistry)
    dev produce TOPIC FILE.jsonl  JSON Lines into a topic (see provisioner.stream.kafka), in JSON or,
                                  with --format and --schema, a registry format (cli.produce_formats)
    dev generate KIND --count N   seeded orders / customers / readings (provisioner.stream.generate)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from provisioner.cli.dev_registry import registry_app
from provisioner.cli.dev_service import DevService, spinner
from provisioner.cli.options import BOOTSTRAP_OPTION, KAFKA_CONFIG_OPTION, STATE_DIR_OPTION, kafka_connection
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, err_console, fail, report_errors
from provisioner.cli.produce_formats import KeyFormat, SchemaFormat
from provisioner.pipeline.eventfile import EventLineError, numbered_lines, parse_line

if TYPE_CHECKING:
    from provisioner.local.devbroker import BrokerStatus

dev_app = typer.Typer(
    help="Local development helpers: a real Kafka broker, producing and generating events.",
    no_args_is_help=True,
)
kafka_app = typer.Typer(help="The dev Kafka broker: one real KRaft node, from Maven Central jars.",
                        no_args_is_help=True)
dev_app.add_typer(kafka_app, name="kafka")
dev_app.add_typer(registry_app, name="registry")

class Kind(StrEnum):
    orders = "orders"
    customers = "customers"
    readings = "readings"


def _broker_line(found: BrokerStatus) -> str:
    health = "[green]ready[/]" if found.running else "[yellow]starting (not answering yet)[/]"
    return f"{health} at [bold]{found.bootstrap}[/]"


BROKER: DevService[BrokerStatus] = DevService("dev broker", "kafka", "data", _broker_line)


# -- dev kafka --------------------------------------------------------------------------------


@kafka_app.command("up")
@report_errors
def kafka_up(
    state_dir: Path = STATE_DIR_OPTION,
    port: int | None = typer.Option(None, "--port", help="client port (default 9092 if free, else any free port)"),
    secure: bool = typer.Option(False, "--secure", help="the secured broker instead: SASL_SSL (SCRAM-SHA-512), "
                                "mutual TLS, ACLs; prints the admin's client properties file"),
) -> None:
    """Start the dev broker (downloading its jars once) and print its bootstrap address."""
    from provisioner.local import devbroker

    if secure:
        _secure_up(state_dir)
        return
    running = devbroker.status(state_dir)
    if running is None:
        with spinner("fetching the Kafka jars (first run only)…"):
            devbroker.ensure_libs()
        with spinner("starting the Kafka broker…"):
            bootstrap = devbroker.up(state_dir, port=port)
    else:
        bootstrap = devbroker.up(state_dir, port=port)
    BROKER.report_up(bootstrap, f"Kafka {devbroker.KAFKA_VERSION} running at [bold]{bootstrap}[/]  "
                                f"(export PROVISIONER_KAFKA_BOOTSTRAP={bootstrap} for other shells)")


def _secure_up(state_dir: Path) -> None:
    from provisioner.local import devbroker, securebroker

    if securebroker.status(state_dir) is None:
        with spinner("fetching the Kafka jars (first run only)…"):
            devbroker.ensure_libs()
    with spinner("starting the secured Kafka broker…"):
        broker = securebroker.up(state_dir)
    BROKER.report_up(str(broker.admin_properties), (
        f"secured Kafka {devbroker.KAFKA_VERSION}: SASL_SSL (SCRAM-SHA-512) at [bold]{broker.scram_bootstrap}[/], "
        f"mutual TLS at [bold]{broker.mtls_bootstrap}[/], ACLs enforced, CA {broker.ca}\n"
        f"admin (super user): --kafka-config {broker.admin_properties}; client certificate: "
        f"--kafka-config {broker.mtls_properties}"))


@kafka_app.command("down")
@report_errors
def kafka_down(
    state_dir: Path = STATE_DIR_OPTION,
    purge: bool = typer.Option(False, "--purge", help="also delete the broker's data (all topics)"),
    secure: bool = typer.Option(False, "--secure", help="the secured broker (--purge also deletes its "
                                "certificates and passwords)"),
) -> None:
    """Stop the dev broker; its topics survive unless --purge."""
    from provisioner.local import devbroker, securebroker

    with spinner("stopping the Kafka broker…"):
        stopped = (securebroker.down if secure else devbroker.down)(state_dir, purge=purge)
    BROKER.report_down(stopped, purge)


@kafka_app.command("status")
@report_errors
def kafka_status(state_dir: Path = STATE_DIR_OPTION, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Whether the dev broker runs, and where."""
    from provisioner.local import devbroker

    BROKER.report_status(devbroker.status(state_dir), output,
                         {"running": False, "state_dir": str(devbroker.broker_dir(state_dir))})


# -- dev produce / generate -------------------------------------------------------------------


def _progress(total: int | None) -> Progress:
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    else:
        columns += [TextColumn("{task.completed} records")]
    return Progress(*columns, TimeElapsedColumn(), console=err_console, transient=True)


def _read_bytes(file: Path) -> bytes:
    if str(file) == "-":
        return sys.stdin.buffer.read()
    try:
        return file.read_bytes()
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror}")


@dev_app.command("produce")
@report_errors
def produce(
    topic: str = typer.Argument(..., help="topic to produce to (created if missing)"),
    file: Path = typer.Argument(..., help="JSON Lines file ('-' for stdin): one value, or envelope, per line"),
    bootstrap: str | None = BOOTSTRAP_OPTION,
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
    partitions: int = typer.Option(3, "--partitions", min=1, help="partitions when the topic is created"),
    key_field: str | None = typer.Option(None, "--key-field", help="value field used as the key when a line has none"),
    value_format: SchemaFormat = typer.Option(SchemaFormat.json, "--format", help="how values are written: json "
                                              "(the line's text) or, with --schema, avro, protobuf or jsonschema"),
    schema: Path | None = typer.Option(None, "--schema", help="the values' schema file (.avsc, .proto, JSON "
                                       "Schema), registered as <topic>-value"),
    key_format: KeyFormat = typer.Option(KeyFormat.string, "--key-format", help="how keys are written: string "
                                         "or, with --key-schema, avro, protobuf or jsonschema"),
    key_schema: Path | None = typer.Option(None, "--key-schema", help="the keys' schema file, registered as "
                                           "<topic>-key"),
    state_dir: Path = STATE_DIR_OPTION,
) -> None:
    """Produce a JSON Lines file. A line that is an object with a "value" key and only keys among
    key/value/headers/partition/offset/timestamp is an envelope; any other line is the value itself.
    With --format avro|protobuf|jsonschema each value is written in the schema registry's wire
    format with --schema, registered first (in schema.registry.url of --kafka-config, else the dev
    registry, started if need be). A line that cannot be a record (a value the consumer could not
    decode, one the schema does not fit, a bad envelope field) is reported as FILE:LINE and not
    sent; the other lines are, and the exit code is then 1."""
    from provisioner.cli.produce_formats import schema_producer
    from provisioner.pipeline.schema_events import EncodeError
    from provisioner.stream.kafka import OutgoingRecord, ensure_topic, produce_records

    address, producer = schema_producer(kafka_connection(kafka_config, bootstrap, state_dir), state_dir, topic,
                                        (value_format, schema), (key_format, key_schema), key_field)
    records: list[OutgoingRecord] = []
    problems: list[str] = []
    for number, raw in numbered_lines(_read_bytes(file)):
        try:
            line = parse_line(raw, number, key_field)
        except EventLineError as error:
            problems.append(f"{file}:{number}: {error.message}")
            continue
        if line is None:
            continue
        if line.refusal is not None:
            problems.append(f"{file}:{number}: {line.refusal}")
            continue
        try:
            records.append(producer.record(line, raw))
        except EncodeError as error:
            problems.append(f"{file}:{number}: {error}")
    for problem in problems:
        err_console.print(escape(problem))
    ensure_topic(address, topic, partitions)
    with _progress(len(records)) as progress:
        task = progress.add_task(f"producing to {topic}", total=len(records))
        count = produce_records(address, topic, records, on_sent=lambda n: progress.update(task, completed=n))
    console.print(f"produced {count} records to {topic}")
    if problems:
        raise typer.Exit(1)


@dev_app.command("generate")
@report_errors
def generate(
    kind: Kind = typer.Argument(..., help="which events: orders, customers or readings"),
    count: int = typer.Option(1000, "--count", "-n", min=0, help="how many events"),
    topic: str | None = typer.Option(None, "--topic", help="default: orders.v1, customers.v1 or readings.v1"),
    seed: int = typer.Option(0, "--seed", help="same seed, same events"),
    output_file: Path | None = typer.Option(None, "--output", help="write JSON Lines envelopes here instead of Kafka"),
    bootstrap: str | None = BOOTSTRAP_OPTION,
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
    partitions: int = typer.Option(3, "--partitions", min=1, help="partitions when the topic is created"),
    state_dir: Path = STATE_DIR_OPTION,
) -> None:
    """Generate seeded, realistic events and produce them (or write them with --output)."""
    from provisioner.stream.generate import DEFAULT_TOPICS, GENERATORS
    from provisioner.stream.kafka import OutgoingRecord, ensure_topic, produce_records

    events = GENERATORS[kind.value](count, seed=seed)
    if output_file is not None:
        _write_envelopes(output_file, events)
        console.print(f"wrote {count} {kind.value} events to {output_file}")
        return
    target = topic or DEFAULT_TOPICS[kind.value]
    address = kafka_connection(kafka_config, bootstrap, state_dir)

    def records() -> Iterator[OutgoingRecord]:
        for key, value in events:
            encoded = None if value is None else json.dumps(value, separators=(",", ":")).encode()
            yield OutgoingRecord(value=encoded, key=key)

    ensure_topic(address, target, partitions)
    with _progress(count) as progress:
        task = progress.add_task(f"producing {kind.value} to {target}", total=count)
        sent = produce_records(address, target, records(), on_sent=lambda n: progress.update(task, completed=n))
    console.print(f"produced {sent} {kind.value} events to {target}")


def _write_envelopes(path: Path, events: Iterator[tuple[str, object]]) -> None:
    try:
        with path.open("w", encoding="utf-8") as out:
            for key, value in events:
                out.write(json.dumps({"key": key, "value": value}, separators=(",", ":")) + "\n")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror}")
