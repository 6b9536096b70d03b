"""The `provisioner` command: one typer app, one module per command or command group.

Errors reach the user through one handler: typer's pretty tracebacks are off, a SpecError becomes
its findings, any other ProvisionerError its one-line message and exit code, and anything else (a
bug) a one-line message too (set PROVISIONER_DEBUG=1 for a traceback).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import typer
from rich.markup import escape

from provisioner.cli.output import err_console, report_errors, use_worded_commands

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
    from provisioner.cli import apply as apply_command
    from provisioner.cli import consume, dev, down, init, inspect_cmd, replay, schema, spectest, status, up, validate
    from provisioner.cli import deadletters as deadletters_command
    from provisioner.cli import delete as delete_command
    from provisioner.cli import doctor as doctor_command
    from provisioner.cli import explain as explain_command
    from provisioner.cli import operator as operator_command
    from provisioner.cli import plan as plan_command
    from provisioner.cli import render as render_command

    commands: dict[str, Callable[..., None]] = {
        "init": init.init, "validate": validate.validate, "test": spectest.spec_test, "schema": schema.schema,
        "up": up.up, "status": status.status, "inspect": inspect_cmd.inspect, "replay": replay.replay,
        "down": down.down, "consume": consume.consume, "render": render_command.render, "crd": render_command.crd,
        "operator": operator_command.operator, "apply": apply_command.apply, "plan": plan_command.plan_command,
        "delete": delete_command.delete, "doctor": doctor_command.doctor,
        "deadletters": deadletters_command.deadletters, "explain": explain_command.explain,
    }
    for name, command in commands.items():
        app.command(name)(report_errors(command))
    app.add_typer(dev.dev_app, name="dev")
    use_worded_commands(app)


_register()


def main() -> None:
    """Console-script entry point: anything `report_errors` did not turn into a message is a bug,
    still shown as one line."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if os.environ.get("PROVISIONER_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {escape(type(error).__name__)}: {escape(str(error))}")
        sys.exit(1)
