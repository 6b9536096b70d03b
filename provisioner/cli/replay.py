"""`provisioner replay NAME --store S [--from earliest|latest|TIMESTAMP]`: rebuild a store from the stream.

Holds the store's consumer (the `paused` marker stops a running `up` from restarting it), wipes the
store, writes the starting positions for --from into it, then lets the running `up` restart the
consumer; when no `up` runs, hydrates in the foreground until caught up.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from provisioner.cli.options import STATE_DIR_OPTION
from provisioner.cli.output import console, fail
from provisioner.local.session import LocalSession
from provisioner.spec.timestamps import parse_rfc3339


def _check_from(value: str) -> str:
    if value not in ("earliest", "latest"):
        try:
            parse_rfc3339(value)
        except ValueError:
            fail(f"--from {value!r} is not earliest, latest or an RFC 3339 timestamp with a time zone "
                 "(e.g. 2026-01-31T00:00:00Z)")
    return value


def _say(line: str) -> None:
    console.print(escape(line))


def replay(
    name: str = typer.Argument(..., help="The data product's name."),
    store: str = typer.Option(..., "--store", help="Which of its stores to rebuild."),
    start_from: str = typer.Option("earliest", "--from", help="earliest, latest or an RFC 3339 timestamp."),
    state_dir: Path = STATE_DIR_OPTION,
    timeout: float | None = typer.Option(None, "--timeout", help="Give up hydrating after N seconds."),
) -> None:
    """Rebuild one store from the source topic, from --from on."""
    start_from = _check_from(start_from)
    session = LocalSession.open(state_dir)
    target = session.target(name, store)
    supervised = session.supervisor_running
    session.hold([target], _say)
    try:
        positions = session.rebuild(target, start_from)
    finally:
        session.release(target)
    where = ", ".join(f"partition {p} at {o}" for p, o in sorted(positions.items())) or "no partitions"
    console.print(f"wiped {escape(name)}/{escape(store)} ({escape(target.entry.store_url or '')}); "
                  f"replaying from {escape(start_from)}: {where}")
    if supervised:
        console.print(f"the running `provisioner up` (pid {session.registry.supervisor_pid}) restarts its "
                      "consumer; follow it with `provisioner status`")
        return
    bars = Progress(TextColumn(f"{escape(name)}/{escape(store)}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("records"), TimeElapsedColumn(), console=console)
    with bars:
        task = bars.add_task("replay", total=None)
        session.hydrate(target, lambda done, total: bars.update(task, completed=done, total=total), timeout)
    console.print(f"[green]✓[/] {escape(name)}/{escape(store)} rebuilt and caught up")
