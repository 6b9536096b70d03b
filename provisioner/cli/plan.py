"""`provisioner plan PATH... [--target k8s]`: what applying the specs would change, as a preview.

Per product: each object the operator would build, created, changed (a unified diff of the fields
provisioner sets, from a server-side dry run) or left alone, objects it would prune, and per store
whether the spec change applies in place or rebuilds the store. Nothing is written. The k8s part is
`preview_k8s`; a local target has its own function.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from provisioner.cli.options import (
    CONTEXT_OPTION,
    KAFKA_CONFIG_OPTION,
    KUBECONFIG_OPTION,
    NAMESPACE_OPTION,
    STATE_DIR_OPTION,
    TARGET_OPTION,
    Target,
    connect,
    environment_key,
    platform_bootstrap_option,
)
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, print_json
from provisioner.cli.schema_check import registry_findings
from provisioner.kube.products import ProductPreview, operator_settings, preview, resource
from provisioner.spec.loader import load_products

_ACTION_STYLE = {"create": "green", "change": "yellow", "delete": "red", "unchanged": "dim", "derived": "dim"}
_STORE_STYLE = {"new": "green", "rebuild": "bold red", "in place": "yellow", "removed": "red", "unchanged": "dim"}


def preview_local(paths: list[Path], state_dir: Path, kafka_bootstrap: str | None, output: OutputFormat,
                  extra: dict[str, Any] | None = None) -> None:
    from provisioner.local.session import preview_stores

    plans = preview_stores(paths, state_dir, kafka_bootstrap)
    if output is OutputFormat.json:
        print_json({"stores": [p.to_dict() for p in plans], **(extra or {})})
        return
    for item in plans:
        settings = f" ({', '.join(item.settings)})" if item.settings else ""
        reads = f", reads {item.records:,} records" if item.records is not None else ""
        problem = f" [yellow]{escape(item.problem)}[/]" if item.problem else ""
        console.print(f"{escape(item.product)}/{escape(item.store)}: "
                      f"[{_STORE_STYLE.get(item.kind, 'white')}]{item.kind}[/]{escape(settings + reads)}{problem}")


def _print(plans: list[ProductPreview]) -> None:
    for item in plans:
        style = _ACTION_STYLE.get(item.action, "white")
        console.print(f"[bold]dataproduct {escape(item.namespace)}/{escape(item.name)}[/]: [{style}]{item.action}[/]")
        if item.problem:
            console.print(f"  [yellow]the live spec is invalid[/]: {escape(item.problem)}")
        console.print(f"  consumer replicas per store: {escape(item.replicas)}")
        for store in item.stores:
            settings = f" ({', '.join(store.settings)})" if store.settings else ""
            console.print(f"  store {escape(store.store)}: [{_STORE_STYLE.get(store.kind, 'white')}]{store.kind}[/]"
                          f"{escape(settings)}")
        for obj in item.objects:
            console.print(f"  [{_ACTION_STYLE.get(obj.action, 'white')}]{obj.action:>9}[/] "
                          f"{escape(obj.kind)}/{escape(obj.name)}")
            for line in obj.diff.splitlines():
                colour = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                console.print(f"            [{colour}]{escape(line)}[/]")


def preview_k8s(paths: list[Path], kubeconfig: Path | None, context: str | None, namespace: str | None,
                operator_namespace: str, kafka_bootstrap: str | None, output: OutputFormat,
                extra: dict[str, Any] | None = None) -> None:
    specs = load_products(paths)
    client, default_namespace = connect(kubeconfig, context, namespace)
    try:
        settings = operator_settings(client, operator_namespace, kafka_bootstrap=kafka_bootstrap,
                                     credentials_key=environment_key())
        plans = preview(client, [resource(s, default_namespace) for s in specs], settings)
    finally:
        client.close()
    if output is OutputFormat.json:
        print_json({"products": [p.to_dict() for p in plans], **(extra or {})})
    else:
        _print(plans)


def plan_command(
    paths: list[Path] = typer.Argument(..., help="Spec files or folders."),
    target: Target = TARGET_OPTION,
    kubeconfig: Path | None = KUBECONFIG_OPTION,
    context: str | None = CONTEXT_OPTION,
    namespace: str | None = NAMESPACE_OPTION,
    operator_namespace: str = typer.Option("provisioner-system", "--operator-namespace",
                                           help="Where the operator's settings (its ConfigMap) are."),
    kafka_bootstrap: str | None = platform_bootstrap_option(
        None, "Kafka bootstrap servers (default: the operator's ConfigMap with --target k8s, else the dev broker)."),
    output: OutputFormat = OUTPUT_OPTION,
    state_dir: Path = STATE_DIR_OPTION,
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
) -> None:
    """Show what applying the specs would change, without changing anything (and, with a schema
    registry in --kafka-config, the fields avro specs use that the latest schemas do not have)."""
    # What the latest registered schemas say of the expressions (a producer's change that dropped or
    # retyped a field an expression uses): a warning beside the plan, not a refusal.
    findings, notes = ([], []) if kafka_config is None else registry_findings(
        load_products(paths), kafka_config, dict(os.environ))
    extra = {"schema": {"findings": [f.to_dict() for f in findings], "notes": [n.to_dict() for n in notes]}} \
        if findings or notes else None
    if target is Target.k8s:
        preview_k8s(paths, kubeconfig, context, namespace, operator_namespace, kafka_bootstrap, output, extra)
    else:
        preview_local(paths, state_dir, kafka_bootstrap, output, extra)
    if output is OutputFormat.json:
        return
    for finding in findings:
        console.print(f"[yellow]schema[/] {escape(str(finding))}")
    for note in notes:
        console.print(f"[dim]schema · {escape(str(note))}[/]")
