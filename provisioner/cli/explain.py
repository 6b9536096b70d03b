"""`provisioner explain PRODUCT --store S --key K`: the history of one key and the verdict on its row.

The logic is `runtime.history`; this module finds the product, its Kafka and the store, and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import typer
from rich.markup import escape
from rich.table import Table

from provisioner.cli.inquiry import (
    BOOTSTRAP_OPTION,
    KAFKA_CONFIG_OPTION,
    SINCE_OPTION,
    STATE_DIR_OPTION,
    find,
    progress,
    since_ms,
)
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, fail, json_text, print_json
from provisioner.runtime.history import Explanation, KeyedStore, explain_key, parse_key
from provisioner.runtime.safe_text import safe_text
from provisioner.stores.registry import open_store

_COLOURS = {"upsert": "green", "delete": "yellow", "skip": "dim", "deadLetter": "red"}
_VERDICTS = {
    "match": "[green]the row is what these records give[/]",
    "mismatch": "[bold red]MISMATCH: the row is not what these records give[/]",
    "unseen": "this key was never seen in the records read, and the store holds no row for it",
    "unknown": "[yellow]the records read do not decide the row[/]",
    "not-applicable": "append mode: no single row to compare",
}


def _shown(value: Any) -> str:
    return escape(safe_text(json_text(value), 400))


def _print(found: Explanation) -> None:
    console.print(f"[bold]{escape(found.product)}/{escape(found.store)}[/] key {escape(safe_text(found.key))}")
    console.print(f"row: {_shown(found.row) if found.row is not None else '[dim]none[/]'}")
    read = ", ".join(map(str, found.partitions_read))
    how = " (the key's partition under Kafka's default partitioner)" if found.shortcut else ""
    table = Table(title=f"{len(found.steps)} record(s) with this key, partition(s) {read} read{how}",
                  title_justify="left")
    for column in ("partition", "offset", "timestamp", "op", "detail", "applied"):
        table.add_column(column, overflow="fold", justify="right" if column in ("partition", "offset") else "left")
    for step in found.steps:
        data = step.to_dict()
        kind = next(k for k in ("upsert", "delete", "skip", "deadLetter") if k in data)
        detail = {"skip": "filtered"}.get(kind) or _shown(data[kind])
        mark = "[bold]← row[/]" if step is found.produced_by else ""
        table.add_row(str(step.partition), str(step.offset), data["timestamp"],
                      f"[{_COLOURS[kind]}]{kind}[/] {mark}", detail, "yes" if step.applied else "[yellow]not yet[/]")
    if found.steps:
        console.print(table)
    console.print(_VERDICTS[found.verdict])
    for note in found.notes:
        console.print(f"[dim]note:[/] {escape(note)}")


def explain(
    reference: str = typer.Argument(..., metavar="PRODUCT-or-SPEC",
                                    help="A spec file, or the name of a product `provisioner up` started."),
    store: str = typer.Option(..., "--store", help="Which of its stores."),
    key: list[str] = typer.Option(..., "--key", help="The key; one --key per part of a multi-part key "
                                                     "(or one, parts joined by ':')."),
    since: str | None = SINCE_OPTION,
    all_partitions: bool = typer.Option(False, "--all-partitions",
                                        help="Read every partition, even for a record-key key (a producer that "
                                             "does not use Kafka's default partitioner)."),
    store_url: str | None = typer.Option(None, "--store-url", envvar="PROVISIONER_STORE_URL",
                                         help="The store's URL, when the spec's connection does not give it "
                                              "(a Secret in the cluster). Never shown."),
    state_dir: Path = STATE_DIR_OPTION,
    bootstrap: str | None = BOOTSTRAP_OPTION,
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Every record of one key, what the spec did with each, and whether the store's row matches."""
    located = find(reference, state_dir, kafka_config, bootstrap)
    product = located.product
    try:
        store_spec = product.store(store)
        parts = parse_key(product, key)
    except (KeyError, ValueError) as error:
        fail(escape(str(error.args[0])))
    handle = open_store(product, store_spec, store_url or located.store_url(store))
    try:
        with progress(f"reading {escape(product.spec.source.topic)}") as on_progress:
            found = explain_key(product, store_spec, cast("KeyedStore", handle), located.kafka, parts,
                                since_ms=since_ms(since), all_partitions=all_partitions, on_progress=on_progress)
    finally:
        handle.close()
    if output is OutputFormat.json:
        print_json(found.to_dict())
    else:
        _print(found)
    if found.verdict == "mismatch":
        raise typer.Exit(1)
