"""`provisioner validate PATH...`: check specs offline and report every problem with its location."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, print_json
from provisioner.spec.loader import LoadedSpec, scan_paths


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
) -> None:
    """Validate DataProduct specs: schema, names, keys, SQL identifiers and every CEL expression."""
    scan = scan_paths(paths)
    specs, findings = scan.specs, scan.findings
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
