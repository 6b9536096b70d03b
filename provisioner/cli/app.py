"""The `provisioner` command: one typer app, one module per command or command group.

Errors reach the user as one clear line: typer's pretty tracebacks are off, SpecError becomes its
findings, and any other exception is a one-line message (set PROVISIONER_DEBUG=1 for a traceback).
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from provisioner.cli.output import err_console
from provisioner.spec.findings import SpecError

app = typer.Typer(
    name="provisioner",
    help="Automated data provisioning: Kafka events into Redis and Postgres, declared in YAML.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from provisioner import __version__

        typer.echo(f"provisioner {__version__}")
        raise typer.Exit


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Automated data provisioning: Kafka events into Redis and Postgres, declared in YAML."""


def _register() -> None:
    """Import command modules and attach them (explicit, so imports have no side effects)."""
    from provisioner.cli import consume, dev, down, init, inspect_cmd, replay, schema, spectest, status, up, validate

    app.command("init")(init.init)
    app.command("validate")(validate.validate)
    app.command("test")(spectest.spec_test)
    app.command("schema")(schema.schema)
    app.command("up")(up.up)
    app.command("status")(status.status)
    app.command("inspect")(inspect_cmd.inspect)
    app.command("replay")(replay.replay)
    app.command("down")(down.down)
    app.command("consume")(consume.consume)
    app.add_typer(dev.dev_app, name="dev")


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SpecError as error:
        for finding in error.findings:
            err_console.print(f"[red]✗[/] {escape(str(finding))}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if os.environ.get("PROVISIONER_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {escape(type(error).__name__)}: {escape(str(error))}")
        sys.exit(1)
