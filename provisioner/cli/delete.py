"""`provisioner delete NAME [--wait]`: delete a DataProduct from a cluster; its objects go with it
(they are owned by it, so the garbage collector removes them)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from provisioner.cli.options import CONTEXT_OPTION, KUBECONFIG_OPTION, NAMESPACE_OPTION, connect
from provisioner.cli.output import console, fail
from provisioner.kube.products import wait_deleted


def delete(
    name: str = typer.Argument(..., help="The data product's name."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the product and its objects are gone."),
    timeout: float = typer.Option(120.0, "--timeout", min=1, help="Seconds --wait waits at most."),
    kubeconfig: Path | None = KUBECONFIG_OPTION,
    context: str | None = CONTEXT_OPTION,
    namespace: str | None = NAMESPACE_OPTION,
) -> None:
    """Delete a DataProduct from a cluster (its consumers, stores and Secrets go with it)."""
    client, ns = connect(kubeconfig, context, namespace)
    try:
        if not client.delete("DataProduct", ns, name):
            fail(f"dataproduct {ns}/{name} not found")
        console.print(f"dataproduct {escape(ns)}/{escape(name)} deleted")
        if wait:
            if not wait_deleted(client, ns, name, timeout):
                fail(f"dataproduct {ns}/{name} or some of its objects still exist after {timeout:g} s")
            console.print(f"[green]✓[/] {escape(ns)}/{escape(name)} and its objects are gone")
    finally:
        client.close()
