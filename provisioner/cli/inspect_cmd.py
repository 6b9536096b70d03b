"""`provisioner inspect NAME --store S`: look at the rows a store holds, as a table or JSON.

Reads the store through the local session (data only, never positions), found through the state
directory's registry, so it works after `up` without the spec paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from provisioner.cli.options import STATE_DIR_OPTION
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, print_json
from provisioner.local.session import LocalSession


def _cell(value: Any) -> str:
    return "" if value is None else escape(str(value))


def inspect(
    name: str = typer.Argument(..., help="The data product's name."),
    store: str = typer.Option(..., "--store", help="Which of its stores."),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000, help="At most this many rows."),
    state_dir: Path = STATE_DIR_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Show up to --limit rows of one store."""
    session = LocalSession.open(state_dir)
    target = session.target(name, store)
    rows = session.rows(target, limit)
    if output is OutputFormat.json:
        print_json({"product": target.entry.product, "store": store, "kind": target.entry.kind, "rows": rows})
        return
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    table = Table(title=f"{escape(name)}/{escape(store)} ({target.entry.kind}, {escape(target.entry.store_url or '')})")
    for column in columns:
        table.add_column(escape(column))
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)
    console.print(f"{len(rows)} row(s) shown (--limit {limit})")
