"""`provisioner test PATH...`: run each spec's `tests:` offline, or preview ops for sample events."""

from __future__ import annotations

import difflib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from provisioner.cli.options import BOOTSTRAP_OPTION, KAFKA_CONFIG_OPTION, STATE_DIR_OPTION
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, err_console, fail, json_text, print_json
from provisioner.formats import BINARY_FORMATS
from provisioner.formats.encode import EncodeError, test_encoder
from provisioner.pipeline.eventfile import EventLine, EventLineError, numbered_lines, parse_line
from provisioner.pipeline.process import Pipeline
from provisioner.pipeline.testing import (
    SpecTestOutcome,
    decoded_formats,
    line_record,
    op_to_dict,
    ordered_ops,
    run_tests,
)
from provisioner.spec.loader import LoadedSpec, load_products
from provisioner.stream.settings import load_kafka_settings

MAX_EVENTS_BYTES = 64 * 1024 * 1024


def _as_yaml(ops: list[dict[str, Any]]) -> list[str]:
    return yaml.safe_dump(ops, sort_keys=False, allow_unicode=True, default_flow_style=None).splitlines()


def _diff(outcome: SpecTestOutcome) -> str:
    lines = difflib.unified_diff(
        _as_yaml(outcome.expected), _as_yaml(outcome.actual), "expected", "actual", lineterm=""
    )
    return "\n".join(lines)


def _read_events(path: Path) -> tuple[list[EventLine], list[str]]:
    """Every line's record, and a `file:line: message` finding for each line that cannot be one."""
    try:
        if path.stat().st_size > MAX_EVENTS_BYTES:
            fail(f"{path}: larger than {MAX_EVENTS_BYTES // (1024 * 1024)} MiB")
        data = path.read_bytes()
    except OSError as error:
        fail(f"{path}: cannot read: {error.strerror}")
    lines: list[EventLine] = []
    findings: list[str] = []
    for number, raw in numbered_lines(data):
        try:
            line = parse_line(raw, number)
        except EventLineError as error:
            findings.append(f"{path}:{error.number}: {error.message}")
            continue
        if line is not None:
            lines.append(line)
    return lines, findings


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        fail(f"{path}: cannot read: {reason}")


def _schema_texts(spec: LoadedSpec) -> dict[str, str]:
    """The text of each schema file the spec's tests name (relative to the spec's file)."""
    texts: dict[str, str] = {}
    for test in spec.product.spec.tests:
        name = test.schema_file
        if name is None or name in texts:
            continue
        path = Path(spec.file).parent / name
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
            fail(f"{spec.file}: test {test.name!r}: schema {name}: cannot read {path}: {reason}")
    return texts


def _encoded(spec: LoadedSpec, events_file: Path, lines: list[EventLine], schema: tuple[Path, str],
             findings: list[str]) -> tuple[Pipeline, list[EventLine]]:
    """The pipeline of a spec of a schema-registry format reading `lines` encoded with the schema
    file (as `dev produce --format` writes them), and the lines that encode; a finding for each
    line that does not."""
    product, (path, text) = spec.product, schema
    fmt = product.spec.source.format
    try:
        schemas, encode = test_encoder(fmt, text)
    except ValueError as error:
        fail(f"{path}: not a {fmt} schema ({spec.file} reads {fmt}): {error}")
    encoded: list[EventLine] = []
    for line in lines:
        try:
            value = None if line.value is None else encode(json.loads(line.value))
        except EncodeError as error:
            findings.append(f"{events_file}:{line.number}: {product.name}: {error}")
            continue
        encoded.append(replace(line, value=value))
    return Pipeline(product, schemas, formats=(fmt, decoded_formats(product)[1])), encoded


def _preview(specs: list[LoadedSpec], events_file: Path, output: OutputFormat,
             schema: tuple[Path, str] | None = None) -> None:
    """Each line's op, judged by the consumer's own pipeline: a value it cannot decode is a
    dead letter here too; a line that cannot be a record at all is a finding, and the rest run.
    With `schema`, the lines of a spec of a schema-registry format are encoded with it first."""
    all_lines, findings = _read_events(events_file)
    results: list[dict[str, Any]] = []
    for spec in specs:
        lines = all_lines
        if schema is not None and spec.product.spec.source.format in BINARY_FORMATS:
            pipeline, lines = _encoded(spec, events_file, all_lines, schema, findings)
        else:  # Event lines are JSON: for a schema-registry format they are the decoded events.
            pipeline = Pipeline(spec.product, formats=decoded_formats(spec.product))
        records = [line_record(spec.product, line, index) for index, line in enumerate(lines)]
        ops = [{"line": line.number, **op_to_dict(op)}
               for line, op in zip(lines, ordered_ops(pipeline, records), strict=True)]
        results.append({"name": spec.product.name, "ops": ops})
    if output is OutputFormat.json:
        print_json(results)
    else:
        for result in results:
            table = Table(title=f"{result['name']}: ops for {events_file}", title_justify="left")
            table.add_column("line", justify="right")
            table.add_column("op")
            table.add_column("detail", overflow="fold")
            for op in result["ops"]:
                kind, detail = next((k, v) for k, v in op.items() if k != "line")
                colour = {"upsert": "green", "delete": "yellow", "skip": "dim", "deadLetter": "red"}[kind]
                table.add_row(str(op["line"]), f"[{colour}]{kind}[/]", escape(json_text(detail)))
            console.print(table)
    for finding in findings:
        err_console.print(escape(finding))
    if findings:
        raise typer.Exit(1)


def spec_test(
    paths: list[Path] = typer.Argument(..., help="Spec files or directories."),
    events: Path | None = typer.Option(
        None, "--events", help="JSONL file of events (or envelopes with value/key/headers): show the ops they produce."
    ),
    schema: Path | None = typer.Option(
        None, "--schema", help="With --events, for a spec of source.format avro, protobuf or jsonschema: the "
                               "schema file the events are encoded with first (else they are the decoded events)."),
    dead_letters: bool = typer.Option(
        False, "--dead-letters", help="Run the spec over its product's dead letters now: which would pass, which "
                                      "still fail (reads the dead-letter topic)."),
    store: str | None = typer.Option(None, "--store", help="With --dead-letters: only this store's."),
    state_dir: Path = STATE_DIR_OPTION,
    bootstrap: str | None = BOOTSTRAP_OPTION,
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Run the `tests:` of each spec through the pipeline (offline), or preview ops for --events or
    for the product's --dead-letters."""
    specs = load_products(paths)
    if dead_letters:
        from provisioner.cli.spectest_deadletters import preview_dead_letters

        preview_dead_letters(specs, store, state_dir, load_kafka_settings(kafka_config, bootstrap), output)
        return
    if events is not None:
        _preview(specs, events, output, None if schema is None else (schema, _read_text(schema)))
        return
    outcomes = [(spec, outcome) for spec in specs for outcome in run_tests(spec.product, _schema_texts(spec))]
    failed = [(spec, o) for spec, o in outcomes if not o.passed]
    if output is OutputFormat.json:
        print_json({
            "passed": sum(o.passed for _, o in outcomes),
            "failed": len(failed),
            "tests": [
                {"file": s.file, "product": s.product.name, "test": o.name, "passed": o.passed,
                 **({} if o.passed else {"expected": o.expected, "actual": o.actual})}
                for s, o in outcomes
            ],
        })
    else:
        table = Table(title_justify="left")
        table.add_column("product")
        table.add_column("test")
        table.add_column("result")
        for spec, outcome in outcomes:
            result = "[green]pass[/]" if outcome.passed else "[bold red]FAIL[/]"
            table.add_row(escape(spec.product.name), escape(outcome.name), result)
        if outcomes:
            console.print(table)
        for spec, outcome in failed:
            title = f"{spec.file}: {spec.product.name} / {outcome.name}"
            console.print(f"\n[bold red]FAIL[/] {escape(title)}")
            if outcome.error:
                console.print(escape(outcome.error))
            for line in _diff(outcome).splitlines():
                style = "red" if line.startswith("-") else "green" if line.startswith("+") else ""
                console.print(f"[{style}]{escape(line)}[/]" if style else escape(line))
        untested = [s.product.name for s in specs if not s.product.spec.tests]
        if untested:
            console.print(f"[yellow]no tests:[/] {escape(', '.join(untested))}")
        console.print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)
