"""`provisioner down [NAME] [--purge]`: stop what `provisioner up` started, and optionally its data.

Without NAME: stop `up` itself (it stops its consumers gracefully), any consumer left behind, the
embedded servers and the dev broker if `up` started it; `--purge` then removes the state directory.
With NAME: stop that product's consumers only (a running `up` holds them stopped); `--purge` then
wipes their stores, so the next `up` or `replay` rebuilds them from the stream.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from provisioner.cli.options import STATE_DIR_OPTION
from provisioner.cli.output import console
from provisioner.local.session import LocalSession, stop_local_servers
from provisioner.local.statedir import StateDir


def _say(line: str) -> None:
    console.print(escape(line))


def down(
    name: str | None = typer.Argument(None, help="A data product's name (default: everything)."),
    purge: bool = typer.Option(False, "--purge", help="Also delete the data (NAME: reset its stores)."),
    state_dir: Path = STATE_DIR_OPTION,
) -> None:
    """Stop consumers (and, without NAME, the embedded stores); --purge also deletes the data."""
    state = StateDir(state_dir.resolve())
    if name is None and purge and state.root.exists() and not state.registry_file.exists():
        # Only a dev broker or servers may run here (e.g. after `dev kafka up`): stop, then remove.
        stop_local_servers(state.root, purge=True, stop_broker=True, say=_say)
        return
    session = LocalSession.open(state_dir)
    if name is None:
        session.stop_everything(purge=purge, say=_say)
    else:
        session.stop_product(session.targets(name), purge=purge, say=_say)
