"""`provisioner up PATH...`: run data products locally, with managed stores and a live dashboard.

Kafka is --bootstrap, PROVISIONER_KAFKA_BOOTSTRAP, or the dev broker (started if none runs).
Stores without a `connection` share one embedded Redis and/or one embedded Postgres under the state
directory. Each (product, store) gets a supervised `provisioner consume` process. With
--until-caught-up, `up` exits once every store has read up to the topic ends noted at its start;
the embedded servers and the dev broker keep running, so `status` and `inspect` work afterwards.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from provisioner.cli.output import console, fail
from provisioner.cli.status import store_table
from provisioner.runtime import local
from provisioner.runtime.connection import StoreUrlError
from provisioner.runtime.local import ConsumerProcess, Supervisor
from provisioner.runtime.progress import StoreView, caught_up, progress, store_view
from provisioner.runtime.statedir import Registry, StateDir
from provisioner.runtime.status import read_status
from provisioner.spec.durations import parse_duration
from provisioner.spec.loader import load_products

REFRESH_SECONDS = 0.5
STATE_DIR_OPTION = typer.Option(Path(".provisioner"), "--state-dir", envvar="PROVISIONER_STATE_DIR",
                                help="Where local state lives (consumers, embedded stores, dev broker).")


@dataclass(slots=True)
class _StopRequest:
    requested: bool = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _view(consumer: ConsumerProcess) -> StoreView:
    entry = consumer.entry
    status = read_status(consumer.state.status_file(entry))
    freshness = consumer.plan.product.spec.freshness
    last_error = None
    if consumer.phase in ("backoff", "halted") and (status is None or not status.get("last_error")):
        last_error = local.last_log_error(consumer.state.log_file(entry))
    return store_view(
        namespace=entry.namespace, product=entry.product, store=entry.store, kind=entry.kind,
        state=consumer.phase, status=status,
        sla_seconds=parse_duration(freshness).total_seconds() if freshness else None,
        now=time.time(), store_url=entry.store_url, last_error=last_error,
    )


def _targets(supervisor: Supervisor, bootstrap: str) -> dict[str, dict[int, int]]:
    """The end offsets of every source topic now: what `--until-caught-up` waits for."""
    by_topic: dict[str, dict[int, int]] = {}
    for consumer in supervisor.consumers:
        topic = consumer.plan.product.spec.source.topic
        if topic not in by_topic:
            by_topic[topic] = local.topic_end_offsets(bootstrap, topic)
    return by_topic


def _halt_message(consumer: ConsumerProcess) -> str:
    view = _view(consumer)
    reason = view.last_error or f"exit code {consumer.exit_code}"
    return f"{view.product}/{view.store} halted: {reason}"


def _run_until_caught_up(supervisor: Supervisor, bootstrap: str, stop: _StopRequest, timeout: float | None) -> int:
    try:
        by_topic = _targets(supervisor, bootstrap)
    except local.SETUP_ERRORS as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        return 1
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
        TimeElapsedColumn(), console=console, auto_refresh=False,
    )
    tasks: dict[int, TaskID] = {}
    for index, consumer in enumerate(supervisor.consumers):
        targets = by_topic[consumer.plan.product.spec.source.topic]
        tasks[index] = bars.add_task(f"{consumer.entry.product}/{consumer.entry.store}", total=sum(targets.values()))
    deadline = None if timeout is None else time.monotonic() + timeout
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            supervisor.tick()
            views = [_view(c) for c in supervisor.consumers]
            done = True
            for index, consumer in enumerate(supervisor.consumers):
                targets = by_topic[consumer.plan.product.spec.source.topic]
                positions = views[index].positions
                bars.update(tasks[index], completed=progress(positions, targets).completed)
                done = done and caught_up(positions, targets)
            live.update(Group(bars, store_table(views)))
            halted = supervisor.halted()
            if halted:
                live.stop()
                for consumer in halted:
                    console.print(f"[bold red]error:[/] {escape(_halt_message(consumer))}")
                return 1
            if done:
                return 0
            if stop.requested:
                console.print("stopped before the stores caught up")
                return 130
            if deadline is not None and time.monotonic() > deadline:
                live.stop()
                console.print(f"[bold red]error:[/] the stores did not catch up within {timeout:g}s")
                return 1
            time.sleep(REFRESH_SECONDS)


def _run_dashboard(supervisor: Supervisor, stop: _StopRequest) -> int:
    console.print("Consumers running. Ctrl-C stops them (the stores and Kafka keep running).")
    with Live(console=console, refresh_per_second=2) as live:
        while not stop.requested:
            supervisor.tick()
            live.update(store_table([_view(c) for c in supervisor.consumers]))
            time.sleep(REFRESH_SECONDS)
    return 0


def up(
    paths: list[Path] = typer.Argument(..., help="Spec files or directories."),
    state_dir: Path = STATE_DIR_OPTION,
    bootstrap: str | None = typer.Option(None, "--bootstrap", envvar="PROVISIONER_KAFKA_BOOTSTRAP",
                                         help="Kafka bootstrap servers (default: the dev broker, started if needed)."),
    until_caught_up: bool = typer.Option(False, "--until-caught-up",
                                         help="Exit once every store has read the topics up to their current end."),
    timeout: float | None = typer.Option(None, "--timeout", help="With --until-caught-up: give up after N seconds."),
) -> None:
    """Run data products locally: embedded stores, one supervised consumer per store, a live dashboard."""
    specs = load_products(paths)
    state = StateDir(state_dir.resolve())
    state.root.mkdir(parents=True, exist_ok=True)
    previous = state.read_registry()
    if previous is not None and local.pid_alive(previous.supervisor_pid):
        fail(f"`provisioner up` already runs for {state.root} (pid {previous.supervisor_pid}); "
             "stop it with `provisioner down` or use another --state-dir")
    if previous is not None:
        # Consumers left behind by an `up` that was killed would compete with the new ones.
        for entry, pid in local.pids_of(state, previous.stores):
            console.print(f"stopping a leftover consumer of {escape(entry.product)}/{escape(entry.store)} (pid {pid})")
            local.terminate(pid)
    try:
        kafka, started_broker = local.kafka_bootstrap(bootstrap, state.root, console.print)
        for topic in local.topics_needed(specs):
            local.ensure_topic(kafka, topic)
        embedded = local.start_embedded(local.managed_kinds(specs), state.root, console.print)
        plans = local.plan_consumers(specs, embedded)
    except StoreUrlError as error:
        fail(str(error))
    except local.SETUP_ERRORS as error:
        fail(str(error))
    registry = Registry(
        bootstrap=kafka, spec_paths=[str(p.resolve()) for p in paths], stores=[p.entry for p in plans],
        started_broker=started_broker or bool(previous and previous.started_broker),
        embedded=embedded, supervisor_pid=os.getpid(),
    )
    state.write_registry(registry)
    for plan in plans:
        # `down NAME` holds a product's consumers while an `up` runs; a new `up` runs everything again.
        state.pause_marker(plan.entry).unlink(missing_ok=True)
    supervisor = Supervisor(plans, state, kafka)
    stop = _StopRequest()
    signal.signal(signal.SIGTERM, stop.handler)
    signal.signal(signal.SIGINT, stop.handler)
    code = 0
    try:
        supervisor.start()
        code = _run_until_caught_up(supervisor, kafka, stop, timeout) if until_caught_up \
            else _run_dashboard(supervisor, stop)
    finally:
        console.print("\nstopping consumers…")
        supervisor.stop()
        state.write_registry(registry.with_supervisor(None))
    if code == 0 and until_caught_up:
        console.print(f"[green]✓[/] {len(plans)} store(s) caught up. Inspect them with `provisioner status` "
                      "and `provisioner inspect NAME --store S`; stop everything with `provisioner down`.")
    if code:
        raise typer.Exit(code)
