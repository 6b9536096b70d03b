"""`provisioner replay NAME --store S [--from earliest|latest|TIMESTAMP]`: rebuild a store from the stream.

Holds the store's consumer (the `paused` marker stops a running `up` from restarting it), wipes the
store (Store.reset), writes the starting positions for --from into it, then lets the running `up`
restart the consumer; when no `up` runs, hydrates in the foreground until caught up.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from provisioner.cli.output import console, fail
from provisioner.cli.status import STATE_DIR_OPTION, Target, open_registry, select, store_url_for
from provisioner.runtime import local
from provisioner.runtime.connection import StoreUrlError
from provisioner.runtime.progress import caught_up, parse_offsets, progress
from provisioner.runtime.statedir import Registry, StateDir
from provisioner.runtime.status import read_status
from provisioner.stores.base import StoreError
from provisioner.stores.registry import open_store

POLL_SECONDS = 0.3


def _check_from(value: str) -> str:
    if value in ("earliest", "latest"):
        return value
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        fail(f"--from {value!r} is not earliest, latest or an RFC 3339 timestamp (2026-01-31T00:00:00Z)")
    if stamp.tzinfo is None:
        fail(f"--from {value!r} needs a time zone (e.g. 2026-01-31T00:00:00Z)")
    return value


def _rebuild(registry: Registry, target: Target, start_from: str) -> dict[int, int]:
    """Wipe the store and store the positions it restarts from; returns them."""
    product = target.product
    assert product is not None
    try:
        store = open_store(product, product.store(target.entry.store), store_url_for(registry, target))
    except StoreUrlError as error:
        fail(str(error))
    try:
        positions = local.starting_positions(registry.bootstrap, product.spec.source.topic, start_from)
        store.reset()
        store.apply([], dict.fromkeys(positions), positions)
    except (StoreError, OSError) as error:
        fail(f"cannot rebuild {target.entry.product}/{target.entry.store}: {error}")
    except local.SETUP_ERRORS as error:
        fail(f"cannot rebuild {target.entry.product}/{target.entry.store}: {error}")
    finally:
        store.close()
    return positions


def _hydrate(state: StateDir, registry: Registry, target: Target, timeout: float | None) -> None:
    """Run the store's consumer here until it reaches the topic's end as of now, then stop it."""
    product = target.product
    assert product is not None
    entry = target.entry
    url = registry.embedded.get(entry.kind) if entry.managed else None
    plan = local.ConsumerPlan(entry, product, product.store(entry.store), url)
    try:
        targets = local.topic_end_offsets(registry.bootstrap, product.spec.source.topic)
    except local.SETUP_ERRORS as error:
        fail(str(error))
    consumer = local.ConsumerProcess(plan, state, registry.bootstrap)
    bars = Progress(TextColumn(f"{escape(entry.product)}/{escape(entry.store)}"), BarColumn(),
                    MofNCompleteColumn(), TextColumn("records"), TimeElapsedColumn(), console=console)
    deadline = None if timeout is None else time.monotonic() + timeout
    consumer.start()
    try:
        with bars:
            task = bars.add_task("replay", total=sum(targets.values()))
            while True:
                consumer.tick()
                status = read_status(state.status_file(entry)) or {}
                positions = parse_offsets(status.get("positions"))
                bars.update(task, completed=progress(positions, targets).completed)
                if consumer.phase == "halted":
                    fail(f"the consumer halted: {status.get('last_error') or 'see ' + str(state.log_file(entry))}")
                if status.get("state") == "running" and caught_up(positions, targets):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    fail(f"not caught up within {timeout:g}s; see {state.log_file(entry)}")
                time.sleep(POLL_SECONDS)
    finally:
        consumer.stop()


def replay(
    name: str = typer.Argument(..., help="The data product's name."),
    store: str = typer.Option(..., "--store", help="Which of its stores to rebuild."),
    start_from: str = typer.Option("earliest", "--from", help="earliest, latest or an RFC 3339 timestamp."),
    state_dir: Path = STATE_DIR_OPTION,
    timeout: float | None = typer.Option(None, "--timeout", help="Give up hydrating after N seconds."),
) -> None:
    """Rebuild one store from the source topic, from --from on."""
    start_from = _check_from(start_from)
    state, registry = open_registry(state_dir)
    target = select(registry, name, store)[0]
    if target.product is None:
        fail(f"{target.entry.spec_file} no longer defines {target.entry.product!r}")
    entry = target.entry
    supervised = local.pid_alive(registry.supervisor_pid)
    if entry.managed:
        try:
            registry = local.ensure_embedded_running(state, registry, entry.kind)
        except local.SETUP_ERRORS as error:
            fail(str(error))
    marker = state.pause_marker(entry)
    state.prepare(entry)
    marker.touch()
    try:
        pid = state.read_pid(entry)
        if pid is not None and local.pid_alive(pid):
            local.terminate(pid)
            console.print(f"stopped the consumer of {escape(name)}/{escape(store)}")
        positions = _rebuild(registry, target, start_from)
        # Its counters and positions described the old contents.
        state.status_file(entry).unlink(missing_ok=True)
    finally:
        marker.unlink(missing_ok=True)
    where = ", ".join(f"partition {p} at {o}" for p, o in sorted(positions.items())) or "no partitions"
    console.print(f"wiped {escape(name)}/{escape(store)} ({escape(entry.store_url or '')}); "
                  f"replaying from {escape(start_from)}: {where}")
    if supervised:
        console.print(f"the running `provisioner up` (pid {registry.supervisor_pid}) restarts its consumer; "
                      "follow it with `provisioner status`")
        return
    _hydrate(state, registry, target, timeout)
    console.print(f"[green]✓[/] {escape(name)}/{escape(store)} rebuilt and caught up")
