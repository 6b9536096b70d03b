"""`provisioner status [NAME]`: how each store started by `up` is doing, as a table or JSON.

The views come from the local session (`LocalSession.views`): each consumer's status file and pid,
the positions kept in the store itself (when it answers) and the topic's end offsets from Kafka now,
so lag is true even when no consumer runs. `up`'s dashboard renders its rows with `store_table`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from provisioner.cli.options import CONTEXT_OPTION, KUBECONFIG_OPTION, STATE_DIR_OPTION, TARGET_OPTION, Target, connect
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, fail, print_json
from provisioner.local.session import LocalSession
from provisioner.runtime.progress import StoreView

WIDE_TABLE = 120

_STATE_STYLE = {"running": "green", "starting": "cyan", "backoff": "yellow", "halted": "bold red",
                "paused": "magenta", "stopped": "dim", "frozen": "blue"}


def _freshness_text(view: StoreView) -> str:
    seconds = "?" if view.freshness_seconds is None else f"{view.freshness_seconds:g}s"
    if view.freshness is None:
        return seconds  # the spec sets no `freshness` SLA to judge it by
    style = {"Fresh": "green", "Stale": "red"}.get(view.freshness, "yellow")
    return f"[{style}]{view.freshness}[/] {seconds}"


def _rebuild_text(view: StoreView) -> str:
    """A note after the state when the store does not hold its spec's content yet."""
    if view.rebuild == "running":
        return " [yellow](rebuilding)[/]"
    if view.rebuild == "pending":
        return " [yellow](rebuild pending)[/]"
    return ""


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
            "State": f"[{_STATE_STYLE.get(view.state, 'white')}]{view.state}[/]" + _rebuild_text(view)
                     + (f" {view.consumers} consumers" if view.consumers else ""),
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
    target: Target = TARGET_OPTION,
    kubeconfig: Path | None = KUBECONFIG_OPTION,
    context: str | None = CONTEXT_OPTION,
    namespace: str | None = typer.Option(None, "--namespace", "-n",
                                         help="With --target k8s (default: the context's namespace)."),
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="With --target k8s."),
) -> None:
    """Show each store's state, position, lag, counts, freshness and last error."""
    if target is Target.k8s:
        status_k8s(name, kubeconfig, context, None if all_namespaces else namespace, all_namespaces, output)
        return
    session = LocalSession.open(state_dir)
    collected = session.views(session.targets(name))
    registry = session.registry
    supervisor = registry.supervisor_pid if session.supervisor_running else None
    if output is OutputFormat.json:
        stores: list[dict[str, Any]] = [{**view.to_dict(), "rows": rows} for view, rows in collected]
        print_json({"state_dir": str(session.state.root), "bootstrap": registry.bootstrap,
                    "supervisor_pid": supervisor, "stores": stores})
        return
    console.print(store_table([v for v, _ in collected], rows=[r for _, r in collected]))
    for url in sorted({v.store_url for v, _ in collected if v.store_url}):
        users = ", ".join(f"{v.product}/{v.store}" for v, _ in collected if v.store_url == url)
        console.print(f"  {escape(url)}: {escape(users)}")
    pending = [f"{v.product}/{v.store}" for v, _ in collected if v.rebuild == "pending"]
    if pending:
        console.print(f"rebuild pending: {escape(', '.join(pending))} hold an earlier spec's content; "
                      "`provisioner up` rebuilds them beside the live data and switches")
    running = f"`provisioner up` runs (pid {supervisor})" if supervisor else "no `provisioner up` runs"
    console.print(f"Kafka {escape(registry.bootstrap)}; {running}; state dir {escape(str(session.state.root))}")


def status_k8s(name: str | None, kubeconfig: Path | None, context: str | None, namespace: str | None,
               all_namespaces: bool, output: OutputFormat) -> None:
    """The DataProducts' status in a cluster: the operator's conditions and totals."""
    from provisioner.kube.products import summarize

    client, ns = connect(kubeconfig, context, namespace)
    try:
        where = None if all_namespaces else ns
        if name is not None:
            body = client.get("DataProduct", where or ns, name)
            if body is None:
                fail(f"dataproduct {where or ns}/{name} not found")
            bodies = [body]
        else:
            bodies = client.list("DataProduct", where)
    finally:
        client.close()
    summaries = [summarize(body) for body in bodies]
    if output is OutputFormat.json:
        print_json({"products": [s.to_dict() for s in summaries],
                    "status": {b["metadata"]["name"]: b.get("status") or {} for b in bodies}
                    if name is not None else None})
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for column in ("Product", "Ready", "Reason", "Stores", "Lag", "DLQ", "Message"):
        table.add_column(column, no_wrap=column != "Message", overflow="fold")
    style = {"True": "green", "False": "red"}
    for item in summaries:
        ready = item.ready if item.current else f"{item.ready} (older spec)"
        table.add_row(f"{escape(item.namespace)}/{escape(item.name)}", f"[{style.get(item.ready, 'yellow')}]{ready}[/]",
                      escape(item.reason), item.stores_ready, "?" if item.lag is None else str(item.lag),
                      "?" if item.dead_letters is None else str(item.dead_letters), escape(item.message))
    console.print(table)
    if not summaries:
        console.print("no data products" + ("" if all_namespaces else f" in namespace {escape(ns)}"))
