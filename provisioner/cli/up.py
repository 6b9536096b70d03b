"""`provisioner up PATH...`: run data products locally, with managed stores and a live dashboard.

Kafka is --kafka-config (PROVISIONER_KAFKA_CONFIG: a client properties file, with TLS and SASL;
--bootstrap overrides its address), else --bootstrap, PROVISIONER_KAFKA_BOOTSTRAP, or the dev
broker (started if none runs). The consumers, `status` and `replay` use the same connection.
Stores without a `connection` share one embedded Redis and/or one embedded Postgres under the state
directory, each data product in a space of its own. Each (product, store) gets `consumer.replicas`
supervised `provisioner consume` processes in one consumer group (at least one). With
--until-caught-up, `up` exits once every store holds the current spec's content up to the topic
ends noted at its start (a store whose content rules changed is rebuilt and switched first); the
embedded servers and the dev broker keep running, so `status` and `inspect` work afterwards.
"""

from __future__ import annotations

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

from provisioner.cli.options import BOOTSTRAP_OPTION, KAFKA_CONFIG_OPTION, STATE_DIR_OPTION, until_option
from provisioner.cli.output import console
from provisioner.cli.status import store_table
from provisioner.local.session import LocalSession, Target, last_log_error, store_view_of
from provisioner.local.supervisor import ConsumerProcess, Supervisor
from provisioner.runtime.progress import StoreView, build_progress
from provisioner.runtime.status import ConsumerStatus, merge_statuses, read_status
from provisioner.stream.settings import load_kafka_settings

REFRESH_SECONDS = 0.5

@dataclass(slots=True)
class _StopRequest:
    requested: bool = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _statuses(group: list[ConsumerProcess]) -> list[ConsumerStatus | None]:
    return [read_status(c.state.status_file(c.entry, c.replica)) for c in group]


def _view(group: list[ConsumerProcess]) -> StoreView:
    """One store's row from its consumer processes (`consumer.replicas` of them, one group)."""
    first = group[0]
    status = merge_statuses(_statuses(group))
    phases = [c.phase for c in group]
    # A halted process halts the store's row; else one running makes it run.
    worst = next((c for c in group if c.phase == "halted"), None) or next(
        (c for c in group if c.phase == "running"), None) or next((c for c in group if c.phase == "backoff"), first)
    last_error = None
    if worst.phase in ("backoff", "halted") and (status is None or not status.last_error):
        last_error = last_log_error(worst.state.log_file(worst.entry, worst.replica))
    # A live consumer that built its store as of `--until` and stopped following reports `frozen`.
    frozen = worst.phase == "running" and status is not None and status.state == "frozen"
    phase = "frozen" if frozen else worst.phase
    running = f"{phases.count('running')}/{len(group)}" if len(group) > 1 else None
    return store_view_of(first.entry, first.plan.product, phase, status, last_error=last_error, consumers=running)


def _halt_message(consumer: ConsumerProcess) -> str:
    view = _view([consumer])
    reason = view.last_error or f"exit code {consumer.exit_code}"
    return f"{view.product}/{view.store} halted: {reason}"


def _run_until_caught_up(session: LocalSession, supervisor: Supervisor, stop: _StopRequest,
                         timeout: float | None) -> int:
    # The topics' ends as of now are what `--until-caught-up` waits for.
    by_topic = session.end_offsets_now(c.plan.topic for c in supervisor.consumers)
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
        TimeElapsedColumn(), console=console, auto_refresh=False,
    )
    tasks: dict[int, TaskID] = {}
    groups = supervisor.groups()
    for index, group in enumerate(groups):
        entry, targets = group[0].entry, by_topic[group[0].plan.topic]
        tasks[index] = bars.add_task(f"{entry.product}/{entry.store}", total=sum(targets.values()))
    deadline = None if timeout is None else time.monotonic() + timeout
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            supervisor.tick()
            views = [_view(group) for group in groups]
            done = True
            for index, group in enumerate(groups):
                targets = by_topic[group[0].plan.topic]
                statuses = _statuses(group)
                pids = [c.process.pid if c.process is not None else None for c in group]
                label = f"{group[0].entry.product}/{group[0].entry.store}"
                rebuilding = views[index].rebuild is not None
                bars.update(tasks[index], completed=build_progress(merge_statuses(statuses), targets).completed,
                            description=f"{label} (rebuilding)" if rebuilding else label)
                done = done and session.holds_current(Target(group[0].entry, group[0].plan.product), statuses,
                                                      pids, targets)
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
            live.update(store_table([_view(group) for group in supervisor.groups()]))
            time.sleep(REFRESH_SECONDS)
    return 0


def up(
    paths: list[Path] = typer.Argument(..., help="Spec files or directories."),
    state_dir: Path = STATE_DIR_OPTION,
    bootstrap: str | None = BOOTSTRAP_OPTION,
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
    until_caught_up: bool = typer.Option(False, "--until-caught-up",
                                         help="Exit once every store has read the topics up to their current end."),
    timeout: float | None = typer.Option(None, "--timeout", help="With --until-caught-up: give up after N seconds."),
    until: str | None = until_option("Build every store as of this RFC 3339 instant, then stop following "
                                     "(sets source.until for this run; a change rebuilds)."),
) -> None:
    """Run data products locally: embedded stores, consumer.replicas supervised consumers per store, a dashboard."""
    # A properties file is the whole connection; without one, --bootstrap or the dev broker.
    explicit = load_kafka_settings(kafka_config, bootstrap) if kafka_config is not None else bootstrap
    session, supervisor = LocalSession.start(paths, state_dir, explicit, lambda line: console.print(escape(line)),
                                             until=until)
    stop = _StopRequest()
    signal.signal(signal.SIGTERM, stop.handler)
    signal.signal(signal.SIGINT, stop.handler)
    code = 0
    try:
        supervisor.start()
        code = _run_until_caught_up(session, supervisor, stop, timeout) if until_caught_up \
            else _run_dashboard(supervisor, stop)
    finally:
        console.print("\nstopping consumers…")
        supervisor.stop()
        session.finish()
    if code == 0 and until_caught_up:
        console.print(f"[green]✓[/] {len(supervisor.groups())} store(s) caught up. Inspect them with "
                      "`provisioner status` and `provisioner inspect NAME --store S`; stop everything with "
                      "`provisioner down`.")
    if code:
        raise typer.Exit(code)
