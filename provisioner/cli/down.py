"""`provisioner down [NAME] [--purge]`: stop what `provisioner up` started, and optionally its data.

Without NAME: stop `up` itself (it stops its consumers gracefully), any consumer left behind, the
embedded servers and the dev broker if `up` started it; `--purge` then removes the state directory.
With NAME: stop that product's consumers only (a running `up` holds them stopped); `--purge` then
wipes their stores (Store.reset), so the next `up` or `replay` rebuilds them from the stream.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.markup import escape

from provisioner.cli.output import console, fail
from provisioner.cli.status import STATE_DIR_OPTION, Target, open_registry, select, store_url_for
from provisioner.runtime import local
from provisioner.runtime.connection import StoreUrlError
from provisioner.runtime.statedir import Registry, StateDir
from provisioner.stores.base import StoreError
from provisioner.stores.registry import open_store


def _stop_consumers(state: StateDir, targets: list[Target], hold: bool) -> None:
    for target in targets:
        entry = target.entry
        if hold:
            state.prepare(entry)
            state.pause_marker(entry).touch()
        pid = state.read_pid(entry)
        if pid is not None and local.pid_alive(pid):
            graceful = local.terminate(pid)
            note = "" if graceful else " (killed: it did not stop in time)"
            console.print(f"stopped consumer {escape(entry.product)}/{escape(entry.store)}{note}")


def _reset_stores(registry: Registry, targets: list[Target]) -> None:
    for target in targets:
        entry = target.entry
        if target.product is None:
            fail(f"{entry.spec_file} no longer defines {entry.product!r}: cannot reset its stores")
        try:
            store = open_store(target.product, target.product.store(entry.store), store_url_for(registry, target))
        except StoreUrlError as error:
            fail(str(error))
        try:
            store.reset()
        except (StoreError, OSError) as error:
            fail(f"cannot reset {entry.product}/{entry.store} at {entry.store_url}: {error}")
        finally:
            store.close()
        console.print(f"wiped store {escape(entry.product)}/{escape(entry.store)} ({escape(entry.store_url or '')})")


def _down_everything(state: StateDir, registry: Registry, purge: bool) -> None:
    if local.pid_alive(registry.supervisor_pid) and registry.supervisor_pid is not None:
        local.terminate(registry.supervisor_pid, timeout=60.0)
        console.print(f"stopped `provisioner up` (pid {registry.supervisor_pid})")
    _stop_consumers(state, [Target(e, None) for e in registry.stores], hold=False)
    for kind in local.stop_embedded(state.root):
        console.print(f"stopped the embedded {kind}")
    # Purging deletes the broker's data too, so it must stop whoever started it.
    if (registry.started_broker or purge) and local.stop_dev_broker(state.root, purge=purge):
        console.print("stopped the dev Kafka broker")
    if purge:
        shutil.rmtree(state.root, ignore_errors=True)
        console.print(f"removed {escape(str(state.root))}")
    else:
        state.write_registry(registry.with_supervisor(None))


def down(
    name: str | None = typer.Argument(None, help="A data product's name (default: everything)."),
    purge: bool = typer.Option(False, "--purge", help="Also delete the data (NAME: reset its stores)."),
    state_dir: Path = STATE_DIR_OPTION,
) -> None:
    """Stop consumers (and, without NAME, the embedded stores); --purge also deletes the data."""
    state = StateDir(state_dir.resolve())
    if name is None and purge and state.root.exists() and not state.registry_file.exists():
        # Only a dev broker or servers may run here (e.g. after `dev kafka up`): stop, then remove.
        local.stop_embedded(state.root)
        local.stop_dev_broker(state.root, purge=True)
        shutil.rmtree(state.root, ignore_errors=True)
        console.print(f"removed {escape(str(state.root))}")
        return
    state, registry = open_registry(state_dir)
    if name is None:
        _down_everything(state, registry, purge)
        return
    targets = select(registry, name)
    _stop_consumers(state, targets, hold=local.pid_alive(registry.supervisor_pid))
    if purge:
        _reset_stores(registry, targets)
        for target in targets:
            state.status_file(target.entry).unlink(missing_ok=True)
