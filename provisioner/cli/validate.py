"""`provisioner validate PATH...`: check specs offline and report every problem with its location."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape

from provisioner.cli.options import KAFKA_CONFIG_OPTION
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, fail, print_json
from provisioner.cli.render import refusal_finding
from provisioner.cli.schema_check import registry_findings
from provisioner.errors import ProvisionerError
from provisioner.kube.names import name_clashes, object_names
from provisioner.kube.render import RenderRefused
from provisioner.spec.findings import Finding
from provisioner.spec.loader import LoadedSpec, scan_paths


def _name_clashes(specs: list[LoadedSpec]) -> list[Finding]:
    """Products whose Kubernetes objects would share a name (see provisioner.kube.names)."""
    files = {id(spec.product): spec for spec in specs}
    findings = []
    renderable = []
    for spec in specs:
        try:
            object_names(spec.product)
            renderable.append(spec)
        except RenderRefused as refused:  # two of its own stores' objects would share a name
            findings.append(refusal_finding(spec, refused))
    for clash in name_clashes(spec.product for spec in renderable):
        spec = files[id(clash.product)]
        line, column = spec.document.locate(("metadata", "name"))
        findings.append(Finding(spec.file, line, column, "metadata.name",
                                f"{clash.message()} ({files[id(clash.other)].file})"))
    return findings


def _summary(spec: LoadedSpec) -> dict[str, object]:
    product = spec.product
    return {
        "file": spec.file,
        "name": product.name,
        "namespace": product.metadata.namespace,
        "topic": product.spec.source.topic,
        "stores": [{"name": s.name, "kind": s.kind} for s in product.spec.stores],
        "tests": len(product.spec.tests),
    }


def validate(
    paths: list[Path] = typer.Argument(..., help="Spec files or directories (searched for *.yaml, *.yml)."),
    output: OutputFormat = OUTPUT_OPTION,
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
) -> None:
    """Validate DataProduct specs: schema, names, keys, SQL identifiers and every CEL expression (and,
    with a schema registry in --kafka-config, the fields avro specs select against their schema)."""
    scan = scan_paths(paths)
    specs = scan.specs
    try:
        checked, registry_notes = registry_findings(specs, kafka_config, dict(os.environ))
    except ProvisionerError as error:
        fail(str(error))
    scan.notes.extend(registry_notes)
    findings = [*scan.findings, *_name_clashes(specs), *checked]
    if output is OutputFormat.json:
        print_json({
            "valid": not findings and bool(specs),
            "specs": [_summary(s) for s in specs],
            "findings": [f.to_dict() for f in findings],
            "notes": [f.to_dict() for f in scan.notes],
        })
    else:
        for finding in findings:
            where = f"{finding.file}:{finding.line}:{finding.column}"
            field = f" [bold]{escape(finding.path)}[/]:" if finding.path else ""
            console.print(f"[red]✗[/] {escape(where)}:{field} {escape(finding.message)}")
        for note in scan.notes:
            console.print(f"[dim]·[/] {escape(str(note))}")
        failed = {f.file for f in findings}
        for spec in specs:
            if spec.file in failed:
                continue
            stores = ", ".join(f"{s.name} ({s.kind})" for s in spec.product.spec.stores)
            console.print(f"[green]✓[/] {escape(spec.file)}: {escape(spec.product.name)} → {escape(stores)}")
        if findings:
            files = len({f.file for f in findings})
            plural = "s" if len(findings) != 1 else ""
            console.print(f"[bold red]{len(findings)} problem{plural}[/] in {files} file{'s' if files != 1 else ''}")
        elif not specs:
            console.print("[yellow]no specs found[/] (looked for *.yaml and *.yml)")
    if findings or not specs:
        raise typer.Exit(1)
