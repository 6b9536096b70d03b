"""What the commands that read a topic back share: `--since`, where the product is, and a progress
bar on stderr (`deadletters`, `explain`, `test --dead-letters`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from provisioner.cli.options import BOOTSTRAP_OPTION, KAFKA_CONFIG_OPTION, STATE_DIR_OPTION
from provisioner.cli.output import err_console, fail
from provisioner.local.lookup import Located, locate
from provisioner.spec.durations import parse_duration
from provisioner.spec.timestamps import to_epoch_ms
from provisioner.stream.scan import Progress as OnProgress
from provisioner.stream.settings import load_kafka_settings

__all__ = ["BOOTSTRAP_OPTION", "KAFKA_CONFIG_OPTION", "SINCE_OPTION", "STATE_DIR_OPTION", "find", "progress",
           "since_ms"]

SINCE_OPTION = typer.Option(None, "--since", help="Only from this RFC 3339 instant on, or this long ago (24h, 30m).")


def since_ms(text: str | None) -> int | None:
    """`--since` as epoch milliseconds: an RFC 3339 instant, or a duration meaning that long ago."""
    if text is None:
        return None
    try:
        return round((time.time() - parse_duration(text).total_seconds()) * 1000)
    except ValueError:
        pass
    try:
        return to_epoch_ms(text)
    except ValueError:
        fail(f"--since {text!r} is neither an RFC 3339 instant with a time zone (2026-01-31T00:00:00Z) "
             "nor a duration (24h, 30m)")


def find(reference: str, state_dir: Path, kafka_config: Path | None, bootstrap: str | None) -> Located:
    """The product a spec file or a started product's name designates, with its Kafka."""
    return locate(reference, state_dir, load_kafka_settings(kafka_config, bootstrap))


@contextmanager
def progress(label: str) -> Iterator[OnProgress | None]:
    """A progress bar on stderr while a topic is read (only on a terminal: stdout stays clean for
    pipes, and logs get no bar)."""
    if not err_console.is_terminal:
        yield None
        return
    bars = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
                    TimeRemainingColumn(), console=err_console, transient=True)
    with bars:
        task = bars.add_task(label, total=None)
        yield lambda done, total: bars.update(task, completed=done, total=total)
