"""`provisioner dev registry up|down|status`: the dev schema registry (provisioner.local.devregistry),
for avro, protobuf and jsonschema records on a laptop. `up` prints its URL: put it in the Kafka
client properties as `schema.registry.url` (`provisioner up` does that itself when it starts it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from provisioner.cli.dev_service import DevService, spinner
from provisioner.cli.options import STATE_DIR_OPTION
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, report_errors

if TYPE_CHECKING:
    from provisioner.local.devregistry import RegistryStatus

registry_app = typer.Typer(help="The dev schema registry: Confluent-compatible, in memory, schemas kept across "
                                "restarts (franz-go's srfake, built from Go modules).", no_args_is_help=True)

REGISTRY: DevService[RegistryStatus] = DevService(
    "dev registry", "registry", "schemas", lambda found: f"running at [bold]{found.url}[/]")


@registry_app.command("up")
@report_errors
def registry_up(
    state_dir: Path = STATE_DIR_OPTION,
    port: int | None = typer.Option(None, "--port",
                                    help="port on 127.0.0.1 (default: the previous run's, else any free)"),
) -> None:
    """Start the dev schema registry (building it once) and print its URL."""
    from provisioner.local import devregistry

    with spinner("starting the schema registry (built from Go modules on first use)…"):
        url = devregistry.up(state_dir, port=port)
    REGISTRY.report_up(url, f"schema registry running at [bold]{url}[/]  (schema.registry.url={url} in the Kafka "
                            f"client properties)")


@registry_app.command("down")
@report_errors
def registry_down(
    state_dir: Path = STATE_DIR_OPTION,
    purge: bool = typer.Option(False, "--purge", help="also forget the registered schemas"),
) -> None:
    """Stop the dev schema registry; its schemas survive unless --purge."""
    from provisioner.local import devregistry

    stopped = devregistry.down(state_dir, purge=purge)
    REGISTRY.report_down(stopped, purge)


@registry_app.command("status")
@report_errors
def registry_status(state_dir: Path = STATE_DIR_OPTION, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Whether the dev schema registry runs, and where."""
    from provisioner.local import devregistry

    REGISTRY.report_status(devregistry.status(state_dir), output)
