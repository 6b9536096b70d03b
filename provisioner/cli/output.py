"""Console output shared by every command: rich text for people, `--output json` for scripts, and
the one handler that turns errors into a message and an exit code."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Any, NoReturn, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

from provisioner.errors import ProvisionerError
from provisioner.spec.findings import SpecError
from provisioner.spec.wording import option_message

P = ParamSpec("P")

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


OUTPUT_OPTION = typer.Option(OutputFormat.text, "--output", "-o", help="text for people, json for scripts")


def json_text(data: Any, indent: int | None = None) -> str:
    """JSON text that can always be written as UTF-8: characters as they are, unless a string holds
    a lone surrogate (JSON's `\\ud800` escapes make them), which only an escape can show."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=str)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(data, indent=indent, ensure_ascii=True, default=str)
    return text


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping) so it pipes into jq."""
    sys.stdout.write(json_text(data, indent=2) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear error line on stderr and a non-zero exit: never a traceback."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def report_errors(command: Callable[P, None]) -> Callable[P, None]:
    """The one error handler: a SpecError becomes its findings, any other ProvisionerError its
    one-line message, both with the error's exit code (PROVISIONER_DEBUG=1 re-raises instead)."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except ProvisionerError as error:
            if os.environ.get("PROVISIONER_DEBUG"):
                raise
            if isinstance(error, SpecError):
                for finding in error.findings:
                    err_console.print(f"[red]✗[/] {escape(str(finding))}")
            else:
                err_console.print(f"[bold red]error:[/] {escape(str(error))}")
            raise typer.Exit(error.exit_code) from None

    return run


class WordedCommand(TyperCommand):
    """A command whose option errors are in the user's words: typer parses values with pydantic,
    whose phrasing ("Input should be a valid integer", "Value error, ...") is replaced here."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except typer.BadParameter as error:
            worded = option_message(error.__cause__)
            if worded is not None:
                error.message = worded
            raise


def use_worded_commands(app: typer.Typer) -> None:
    """Make every command of `app` and of its sub-apps a `WordedCommand`."""
    for info in app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:
            info.cls = WordedCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_worded_commands(group.typer_instance)
