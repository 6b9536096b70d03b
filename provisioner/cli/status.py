"""`provisioner status [NAME]`: how each store started by `up` is doing, as a table or JSON.

Reads the state directory's registry (what `up` started), each consumer's status file and pid, the
positions kept in the store itself (when it answers) and the topic's end offsets from Kafka now, so
lag is true even when no consumer runs. `up`'s dashboard renders its rows with `store_table`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, fail, print_json
from provisioner.runtime import local
from provisioner.runtime.connection import StoreUrlError, store_url
from provisioner.runtime.progress import StoreView, store_view
from provisioner.runtime.statedir import Registry, StateDir, StateDirError, StoreEntry
from provisioner.spec.durations import parse_duration
from provisioner.spec.findings import SpecError
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct
from provisioner.stores.base import StoreError

STATE_DIR_OPTION = typer.Option(Path(".provisioner"), "--state-dir", envvar="PROVISIONER_STATE_DIR",
                                help="The state directory `provisioner up` used.")
STORE_TIMEOUT = 3.0
WIDE_TABLE = 120

_STATE_STYLE = {"running": "green", "starting": "cyan", "backoff": "yellow", "halted": "bold red",
                "paused": "magenta", "stopped": "dim"}


@dataclass(frozen=True, slots=True)
class Target:
    """A store `up` started, with its product re-read from the spec file (None if it is gone)."""

    entry: StoreEntry
    product: DataProduct | None


def open_registry(state_dir: Path) -> tuple[StateDir, Registry]:
    """The state directory and its registry, or one clear error when `up` never ran there."""
    state = StateDir(state_dir.resolve())
    try:
        registry = state.read_registry()
    except StateDirError as error:
        fail(str(error))
    if registry is None:
        fail(f"nothing was started with state dir {state.root}: run `provisioner up PATH...` first")
    return state, registry


def select(registry: Registry, name: str | None, store: str | None = None) -> list[Target]:
    """The registry's stores of product `name` (all when None), optionally only store `store`."""
    entries = [e for e in registry.stores if name is None or e.matches(name)]
    if name is not None and not entries:
        known = ", ".join(sorted({e.product for e in registry.stores})) or "none"
        fail(f"no data product {name!r} was started by `provisioner up` (started: {known})")
    if store is not None:
        entries = [e for e in entries if e.store == store]
        if not entries:
            fail(f"data product {name!r} has no store {store!r}")
    products: dict[str, list[DataProduct]] = {}
    targets: list[Target] = []
    for entry in entries:
        if entry.spec_file not in products:
            try:
                products[entry.spec_file] = [s.product for s in load_products([Path(entry.spec_file)])]
            except SpecError:
                products[entry.spec_file] = []
        found = next((p for p in products[entry.spec_file]
                      if p.name == entry.product and p.metadata.namespace == entry.namespace), None)
        targets.append(Target(entry, found))
    return targets


def store_url_for(registry: Registry, target: Target) -> str:
    """The real URL of a store: the embedded server's for a managed one, else the spec's connection."""
    if target.entry.managed:
        url = registry.embedded.get(target.entry.kind)
        if url is None:
            raise StoreUrlError(f"no embedded {target.entry.kind} is recorded: run `provisioner up` again")
        return url
    if target.product is None:
        raise StoreUrlError(f"{target.entry.spec_file} no longer defines {target.entry.product!r}")
    return store_url(target.product.store(target.entry.store))


def _live_store_facts(registry: Registry, target: Target) -> tuple[dict[int, int] | None, int | None, str | None]:
    """Positions and row count read from the store now, or the reason it did not answer."""
    if target.product is None:
        return None, None, f"{target.entry.spec_file} no longer defines this product"
    from provisioner.stores.registry import open_store

    try:
        url = store_url_for(registry, target)
        store = open_store(target.product, target.product.store(target.entry.store), url, timeout=STORE_TIMEOUT)
    except StoreUrlError as error:
        return None, None, str(error)
    try:
        return store.read_positions(), store.count(), None
    except (StoreError, OSError) as error:
        return None, None, f"store unreachable: {error}"
    finally:
        store.close()


def _end_offsets(bootstrap: str, topics: set[str]) -> dict[str, dict[int, int]]:
    """End offsets per topic now; a topic Kafka does not answer for is left out."""
    ends: dict[str, dict[int, int]] = {}
    for topic in sorted(topics):
        # Any Kafka failure only means lag comes from the consumers' last status instead.
        with contextlib.suppress(Exception):
            ends[topic] = local.topic_end_offsets(bootstrap, topic)
    return ends


def collect(state: StateDir, registry: Registry, targets: list[Target]) -> list[tuple[StoreView, int | None]]:
    """Each target's view, with positions from the store and end offsets from Kafka when reachable."""
    topics = {t.product.spec.source.topic for t in targets if t.product is not None}
    ends = _end_offsets(registry.bootstrap, topics)
    views: list[tuple[StoreView, int | None]] = []
    for target in targets:
        entry = target.entry
        phase, status = local.observed_phase(state, entry)
        positions, rows, problem = _live_store_facts(registry, target)
        product = target.product
        freshness = product.spec.freshness if product is not None else None
        last_error = (status or {}).get("last_error")
        if not last_error and phase in ("stopped", "halted"):
            last_error = local.last_log_error(state.log_file(entry)) if status is None else None
        if problem and not last_error:
            last_error = problem
        view = store_view(
            namespace=entry.namespace, product=entry.product, store=entry.store, kind=entry.kind, state=phase,
            status=status, sla_seconds=parse_duration(freshness).total_seconds() if freshness else None,
            now=time.time(), positions=positions,
            end_offsets=ends.get(product.spec.source.topic) if product is not None else None,
            store_url=entry.store_url, last_error=last_error,
        )
        views.append((view, rows))
    return views


def _freshness_text(view: StoreView) -> str:
    seconds = "?" if view.freshness_seconds is None else f"{view.freshness_seconds:g}s"
    if view.freshness is None:
        return seconds  # the spec sets no `freshness` SLA to judge it by
    style = {"Fresh": "green", "Stale": "red"}.get(view.freshness, "yellow")
    return f"[{style}]{view.freshness}[/] {seconds}"


def store_table(views: list[StoreView], *, rows: list[int | None] | None = None) -> Table:
    """One row per store: the same columns in `up`'s dashboard and in `status`. Below 120 columns the
    kind, rate and row count are left out so the rest stays readable at 80."""
    wide = console.width >= WIDE_TABLE
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    columns = ["Store", *(["Kind"] if wide else []), "State", "Pos/End", "Lag", *(["Rec/s"] if wide else []),
               "Up/Del/Skip", "DLQ", *(["Rows"] if wide and rows is not None else []), "Freshness"]
    for column in columns:
        table.add_column(column, no_wrap=True, justify="left" if column in ("Store", "Kind", "State",
                                                                               "Freshness") else "right")
    errors = any(view.last_error for view in views)
    if errors:
        table.add_column("Last error", overflow="fold")
    for index, view in enumerate(views):
        end = str(sum(view.end_offsets.values())) if view.end_offsets else "?"
        ops = view.ops
        cells = {
            "Store": f"{escape(view.product)}/{escape(view.store)}",
            "Kind": view.kind,
            "State": f"[{_STATE_STYLE.get(view.state, 'white')}]{view.state}[/]",
            "Pos/End": f"{sum(view.positions.values())}/{end}",
            "Lag": "?" if view.lag is None else str(view.lag),
            "Rec/s": f"{view.records_per_second:g}",
            "Up/Del/Skip": f"{ops.get('upsert', 0)}/{ops.get('delete', 0)}/{ops.get('skip', 0)}",
            "DLQ": str(view.dead_letters),
            "Rows": "?" if rows is None or rows[index] is None else str(rows[index]),
            "Freshness": _freshness_text(view),
        }
        error = [f"[red]{escape(view.last_error)}[/]" if view.last_error else ""] if errors else []
        table.add_row(*(cells[c] for c in columns), *error)
    return table


def status(
    name: str | None = typer.Argument(None, help="A data product's name (default: every one `up` started)."),
    state_dir: Path = STATE_DIR_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Show each store's state, position, lag, counts, freshness and last error."""
    state, registry = open_registry(state_dir)
    targets = select(registry, name)
    collected = collect(state, registry, targets)
    supervisor = registry.supervisor_pid if local.pid_alive(registry.supervisor_pid) else None
    if output is OutputFormat.json:
        stores: list[dict[str, Any]] = []
        for view, rows in collected:
            stores.append({**view.to_dict(), "rows": rows})
        print_json({"state_dir": str(state.root), "bootstrap": registry.bootstrap,
                    "supervisor_pid": supervisor, "stores": stores})
        return
    console.print(store_table([v for v, _ in collected], rows=[r for _, r in collected]))
    for url in sorted({v.store_url for v, _ in collected if v.store_url}):
        users = ", ".join(f"{v.product}/{v.store}" for v, _ in collected if v.store_url == url)
        console.print(f"  {escape(url)}: {escape(users)}")
    running = f"`provisioner up` runs (pid {supervisor})" if supervisor else "no `provisioner up` runs"
    console.print(f"Kafka {escape(registry.bootstrap)}; {running}; state dir {escape(str(state.root))}")
