"""`provisioner test SPEC --dead-letters [--store S]`: the spec as it is now, over the records that
are dead letters now: which would pass, which still fail and why, and the ops they would give.

Exit code 1 while any still fails, so a fix can be checked in a script before it is shipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from provisioner.cli.inquiry import progress
from provisioner.cli.output import OutputFormat, console, fail, json_text, print_json
from provisioner.local.lookup import locate_spec
from provisioner.runtime.dead_letter_report import read_dead_letters
from provisioner.runtime.dead_letter_retry import retry_dead_letters
from provisioner.runtime.safe_text import safe_text
from provisioner.spec.loader import LoadedSpec
from provisioner.stream.settings import KafkaSettings


def _now(op: dict[str, Any]) -> str:
    kind, detail = next(iter(op.items()))
    if kind == "skip":
        return "[dim]skip (filtered)[/]"
    colour = {"upsert": "green", "delete": "yellow", "deadLetter": "red"}[kind]
    return f"[{colour}]{kind}[/] {escape(safe_text(json_text(detail), 300))}"


def preview_dead_letters(specs: list[LoadedSpec], store: str | None, state_dir: Path,
                         explicit: KafkaSettings | None, output: OutputFormat) -> None:
    """Each spec over its product's dead letters (only `store`'s when given)."""
    results: list[dict[str, Any]] = []
    for spec in specs:
        product = spec.product
        if store is not None and store not in {s.name for s in product.spec.stores}:
            fail(f"{escape(spec.file)}: data product {escape(product.name)!r} has no store {escape(store)!r}")
        located = locate_spec(product, state_dir, explicit)
        with progress(f"reading {escape(product.dead_letter_topic)}") as on_progress:
            entries = read_dead_letters(located.kafka, product, stores=None if store is None else [store],
                                        on_progress=on_progress)
            outcomes = retry_dead_letters(product, entries)
        results.append({"file": spec.file, "product": product.name, "topic": product.dead_letter_topic,
                        "passing": sum(o.passes for o in outcomes),
                        "failing": sum(not o.passes for o in outcomes),
                        "deadLetters": [o.to_dict() for o in outcomes]})
    if output is OutputFormat.json:
        print_json(results)
    else:
        for result in results:
            table = Table(title=f"{escape(result['product'])}: its dead letters in {escape(result['topic'])}, "
                                "run through this spec", title_justify="left")
            for column in ("store", "source", "key", "was", "now"):
                table.add_column(column, overflow="fold")
            for item in result["deadLetters"]:
                source = item["source"]
                verdict = "[green]passes[/]" if item["passes"] else "[red]still fails[/]"
                table.add_row(escape(item["store"]),
                              escape(f"{source['topic']}[{source['partition']}]@{source['offset']}"),
                              escape(item["key"]),
                              f"{escape(item['was']['stage'])}: {escape(item['was']['message'])}",
                              f"{verdict}: {_now(item['now'])}")
            if result["deadLetters"]:
                console.print(table)
            console.print(f"{result['product']}: {result['passing']} would now pass, "
                          f"{result['failing']} still fail")
    if any(result["failing"] for result in results):
        raise typer.Exit(1)
