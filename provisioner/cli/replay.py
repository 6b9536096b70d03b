"""`provisioner replay NAME --store S [--from ...] [--until T]`: rebuild a store from the stream.

A replay is a forced rebuild of the same kind as a spec change: the store's consumer is restarted
with a replay request recorded in the store, builds a new version beside the live one (from --from,
up to --until), and switches to it in one atomic step once it caught up. The live store keeps
serving meanwhile: no downtime. With `up` running, its supervisor restarts the consumer; without
it, the consumer runs in the foreground until the new version is live and caught up. A store that
never recorded a version (its consumer never ran) is wiped and hydrated instead.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from provisioner.cli.options import START_FROM_OPTION, STATE_DIR_OPTION, until_option
from provisioner.cli.output import console
from provisioner.local.session import LocalSession


def _say(line: str) -> None:
    console.print(escape(line))


def replay(
    name: str = typer.Argument(..., help="The data product's name."),
    store: str = typer.Option(..., "--store", help="Which of its stores to rebuild."),
    start_from: str = START_FROM_OPTION,
    state_dir: Path = STATE_DIR_OPTION,
    until: str | None = until_option("Build the state as of this RFC 3339 instant (held while the consumer runs)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Give up hydrating after N seconds."),
) -> None:
    """Rebuild one store from the source topic, from --from on, beside the live one."""
    session = LocalSession.open(state_dir)
    target = session.target(name, store)
    supervised = session.supervisor_running
    session.hold([target], _say)
    try:
        positions = session.rebuild(target, start_from, until)
    finally:
        session.release(target)
    if positions is None:
        console.print(f"rebuilding {escape(name)}/{escape(store)} beside the live store from {escape(start_from)}"
                      + (f" up to {escape(until)}" if until else "") + "; it keeps serving until the switch")
    else:
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
