"""`provisioner deadletters PRODUCT-or-SPEC`: a product's dead letters, grouped or listed.

Reads the product's dead-letter topic (up to its end when the command started) with the consumers'
connection settings; every value, key and message is shown safely (`runtime.safe_text`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, fail, print_json
from provisioner.runtime.dead_letter_report import group_entries, latest, read_dead_letters

STAGES = ("decode", "schema", "filter", "delete", "fields", "key", "store")


def _source(source: dict[str, Any]) -> str:
    return escape(f"{source['topic']}[{source['partition']}]@{source['offset']}")


def deadletters(
    reference: str = typer.Argument(..., metavar="PRODUCT-or-SPEC",
                                    help="A spec file, or the name of a product `provisioner up` started."),
    store: str | None = typer.Option(None, "--store", help="Only this store's dead letters."),
    stage: str | None = typer.Option(None, "--stage", help=f"Only this stage's ({', '.join(STAGES)})."),
    since: str | None = SINCE_OPTION,
    limit: int = typer.Option(20, "--limit", min=1, max=100_000,
                              help="At most this many groups (the largest), or lines with --list (the latest)."),
    as_list: bool = typer.Option(False, "--list", help="One line per dead letter instead of groups."),
    state_dir: Path = STATE_DIR_OPTION,
    bootstrap: str | None = BOOTSTRAP_OPTION,
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Show a product's dead letters: grouped by store, stage and message, or listed."""
    if stage is not None and stage not in STAGES:
        fail(f"--stage {stage!r} is not a stage: one of {', '.join(STAGES)}")
    located = find(reference, state_dir, kafka_config, bootstrap)
    product = located.product
    if store is not None:
        try:
            product.store(store)
        except KeyError as error:
            fail(escape(str(error.args[0])))
    topic = product.dead_letter_topic
    with progress(f"reading {escape(topic)}") as on_progress:
        entries = read_dead_letters(located.kafka, product, stores=None if store is None else [store], stage=stage,
                                    since_ms=since_ms(since), on_progress=on_progress)
        if as_list:
            items = latest((entry.to_dict() for entry in entries), limit)
            groups = []
        else:
            groups = [group.to_dict() for group in group_entries(entries)]
    summary = {"product": product.name, "namespace": product.metadata.namespace, "topic": topic}
    if as_list:
        if output is OutputFormat.json:
            print_json({**summary, "deadLetters": items})
            return
        for item in items:
            console.print(f"{escape(item['seen'])} {escape(item['store'])} {escape(item['stage'])} "
                          f"{_source(item['source'])} key={escape(item['key'])}: {escape(item['message'])} "
                          f"value={escape(item['value'])}")
        console.print(f"{len(items)} dead letter(s) shown (the latest, --limit {limit})")
        return
    total = sum(group["count"] for group in groups)
    if output is OutputFormat.json:
        print_json({**summary, "total": total, "groups": groups[:limit]})
        return
    table = Table(title=f"{escape(product.name)}: dead letters in {escape(topic)}", title_justify="left")
    for column in ("store", "stage", "count", "first seen", "last seen", "message", "samples"):
        table.add_column(column, overflow="fold", justify="right" if column == "count" else "left")
    for group in groups[:limit]:
        samples = "\n".join(f"{_source(s['source'])} key={escape(s['key'])} value={escape(s['value'])}"
                            for s in group["samples"])
        table.add_row(escape(group["store"]), escape(group["stage"]), str(group["count"]), group["firstSeen"],
                      group["lastSeen"], escape(group["message"]), samples)
    console.print(table)
    shown = min(limit, len(groups))
    console.print(f"{total} dead letter(s) in {len(groups)} group(s)"
                  + (f", the largest {shown} shown (--limit)" if shown < len(groups) else ""))
