"""`provisioner apply PATH... [--wait]`: server-side apply DataProducts to a cluster (field manager
`provisioner`); with `--wait`, follow each product's conditions until it is Ready.

The work is in `provisioner.kube.products`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from provisioner.cli.options import CONTEXT_OPTION, KUBECONFIG_OPTION, NAMESPACE_OPTION, connect
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, fail, print_json
from provisioner.kube.products import ProductSummary, apply_resources, resource, wait_ready
from provisioner.spec.loader import load_products

_STYLE = {"True": "green", "False": "red"}


def progress_table(summaries: dict[tuple[str, str], ProductSummary | None]) -> Table:
    """One row per product: Ready, its reason, and every condition as it turns."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for column in ("Product", "Ready", "Reason", "Stores", "Conditions"):
        table.add_column(column, no_wrap=column != "Conditions")
    for (namespace, name), summary in summaries.items():
        if summary is None:
            table.add_row(f"{escape(namespace)}/{escape(name)}", "?", "not found", "", "")
            continue
        conditions = " ".join(f"[{_STYLE.get(status, 'yellow')}]{escape(kind)}[/]"
                              for kind, status, _ in summary.conditions if kind != "Ready")
        ready = summary.ready if summary.current else f"{summary.ready} (older spec)"
        table.add_row(f"{escape(namespace)}/{escape(name)}", f"[{_STYLE.get(summary.ready, 'yellow')}]{ready}[/]",
                      escape(summary.reason), summary.stores_ready, conditions or "[dim]waiting for the operator[/]")
    return table


def apply(
    paths: list[Path] = typer.Argument(..., help="Spec files or folders."),
    wait: bool = typer.Option(False, "--wait", help="Wait until every product is Ready."),
    timeout: float = typer.Option(300.0, "--timeout", min=1, help="Seconds --wait waits at most."),
    kubeconfig: Path | None = KUBECONFIG_OPTION,
    context: str | None = CONTEXT_OPTION,
    namespace: str | None = NAMESPACE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Apply DataProducts to a cluster (server-side); the operator builds their objects."""
    specs = load_products(paths)
    client, default_namespace = connect(kubeconfig, context, namespace)
    try:
        stored = apply_resources(client, [resource(spec, default_namespace) for spec in specs])
        keys = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in stored]
        if output is OutputFormat.text:
            for (ns, name), body in zip(keys, stored, strict=True):
                console.print(f"dataproduct {escape(ns)}/{escape(name)} applied "
                              f"(generation {body['metadata'].get('generation', '?')})")
        if not wait:
            if output is OutputFormat.json:
                print_json({"applied": [{"namespace": ns, "name": name} for ns, name in keys]})
            return
        summaries: dict[tuple[str, str], ProductSummary | None] = dict.fromkeys(keys)
        if output is OutputFormat.text:
            with Live(progress_table(summaries), console=console, refresh_per_second=4, transient=False) as live:
                def show(summary: ProductSummary | None, key: tuple[str, str]) -> None:
                    summaries[key] = summary
                    live.update(progress_table(summaries))

                final = wait_ready(client, keys, timeout, show)
        else:
            final = wait_ready(client, keys, timeout)
    finally:
        client.close()
    waiting = [f"{ns}/{name}" for (ns, name), s in final.items() if s is None or not s.current or s.ready != "True"]
    if output is OutputFormat.json:
        print_json({"applied": [s.to_dict() if s else {"namespace": k[0], "name": k[1]} for k, s in final.items()],
                    "ready": not waiting})
    if waiting:
        fail(f"not Ready after {timeout:g} s: {', '.join(waiting)}")
    if output is OutputFormat.text:
        console.print(f"[green]✓[/] {len(keys)} data product(s) Ready")
