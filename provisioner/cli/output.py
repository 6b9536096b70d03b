"""Console output shared by every command: rich text for people, `--output json` for scripts."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


OUTPUT_OPTION = typer.Option(OutputFormat.text, "--output", "-o", help="text for people, json for scripts")


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping) so it pipes into jq."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear error line on stderr and a non-zero exit: never a traceback."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)
