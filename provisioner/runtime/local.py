"""The local runtime: one `provisioner consume` process per (product, store), supervised.

Called by `provisioner up` (start and supervise), `replay` (run one consumer in the foreground) and
`down` (stop what a registry names). Consumers run in their own session so Ctrl-C reaches only the
supervisor, which then stops them with SIGTERM and waits: each finishes its batch in hand.

Restart policy: a consumer that exits non-zero is restarted with capped exponential backoff, except
exit 2 (errors.mode stop) and 3 (incompatible schema), which are halts a restart cannot fix. A
consumer whose folder holds the `paused` marker (set by `replay`) is stopped and not restarted
until the marker goes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from provisioner.runtime import embedded
from provisioner.runtime.backoff import Backoff
from provisioner.runtime.connection import mask_url, store_url
from provisioner.runtime.consumer import EXIT_HALTED, EXIT_SCHEMA

# The consumer's own rule for where a new store starts reading, reused so replay matches it exactly.
from provisioner.runtime.consumer import _start_offsets as start_offsets
from provisioner.runtime.statedir import Registry, StateDir, StoreEntry, write_pid
from provisioner.runtime.status import read_status
from provisioner.spec.loader import LoadedSpec
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stream import devbroker
from provisioner.stream import kafka as kafka_helpers

# What setting up the local environment may raise: each carries a message meant for the user.
SETUP_ERRORS: tuple[type[Exception], ...] = (
    devbroker.DevBrokerError, kafka_helpers.KafkaHelperError, embedded.EmbeddedServerError, KafkaError,
)

HALT_CODES = frozenset({EXIT_HALTED, EXIT_SCHEMA})
STOP_TIMEOUT = 30.0
# A consumer that stayed up this long is healthy again: its next crash starts the backoff afresh.
HEALTHY_AFTER = 30.0

Phase = Literal["starting", "running", "backoff", "halted", "paused", "stopped"]


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id runs (a zombie does not count)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def terminate(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL; True if it stopped by itself."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return False


@dataclass(frozen=True, slots=True)
class ConsumerPlan:
    """What to run for one store: its spec, and the URL of its managed store (None: its connection)."""

    entry: StoreEntry
    product: DataProduct
    store_spec: StoreSpec
    managed_url: str | None


def consumer_command(plan: ConsumerPlan, state: StateDir) -> list[str]:
    """The consumer's command line: never a URL (a managed store's URL travels in the environment)."""
    return [
        sys.executable, "-m", "provisioner", "consume",
        "--spec", plan.entry.spec_file,
        "--product", plan.product.name,
        "--store", plan.store_spec.name,
        "--status-file", str(state.status_file(plan.entry)),
        "--state-dir", str(state.root),
    ]


def consumer_env(plan: ConsumerPlan, bootstrap: str, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["PROVISIONER_KAFKA_BOOTSTRAP"] = bootstrap
    # An inherited URL must not override a store's own connection.
    env.pop("PROVISIONER_STORE_URL", None)
    env.pop("PROVISIONER_METRICS_PORT", None)
    if plan.managed_url is not None:
        env["PROVISIONER_STORE_URL"] = plan.managed_url
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass(slots=True)
class ConsumerProcess:
    """One supervised consumer: its process, its exit, and when to start it again."""

    plan: ConsumerPlan
    state: StateDir
    bootstrap: str
    clock: Callable[[], float] = time.monotonic
    process: subprocess.Popen[bytes] | None = None
    phase: Phase = "stopped"
    exit_code: int | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=60.0))
    _log: IO[bytes] | None = None

    @property
    def entry(self) -> StoreEntry:
        return self.plan.entry

    @property
    def paused(self) -> bool:
        return self.state.pause_marker(self.entry).exists()

    def start(self) -> None:
        folder = self.state.prepare(self.entry)
        self._close_log()
        self._log = (folder / "consumer.log").open("ab")
        self.process = subprocess.Popen(
            consumer_command(self.plan, self.state),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=consumer_env(self.plan, self.bootstrap), start_new_session=True,
        )
        write_pid(self.state.pid_file(self.entry), self.process.pid)
        self.started_at = self.clock()
        self.phase = "starting"
        self.exit_code = None

    def tick(self) -> None:
        """Notice an exit and decide what follows; start again when the backoff allows."""
        now = self.clock()
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                if not self.paused:
                    self.phase = "running"
                elif self.phase != "paused":
                    self.stop(wait=False)
                    self.phase = "paused"
                return
            self._exited(code, now)
        if self.phase == "halted":
            return
        if self.paused:
            self.phase = "paused"
            self.next_start = now  # start at once when the marker goes
            return
        if now >= self.next_start:
            if self.exit_code is not None:
                self.restarts += 1
            self.start()
        else:
            self.phase = "backoff"

    def _exited(self, code: int, now: float) -> None:
        self.process = None
        self.exit_code = code
        self.state.pid_file(self.entry).unlink(missing_ok=True)
        self._close_log()
        if code in HALT_CODES:
            self.phase = "halted"
        elif self.phase != "paused":
            if now - self.started_at >= HEALTHY_AFTER:
                self.backoff.reset()
            self.next_start = now + self.backoff.next_delay()
            self.phase = "backoff"

    def stop(self, *, wait: bool = True, timeout: float = STOP_TIMEOUT) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            if wait:
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if process.poll() is not None:
            self.process = None
            self.state.pid_file(self.entry).unlink(missing_ok=True)
            self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class Supervisor:
    """Starts every planned consumer and keeps them running until asked to stop."""

    def __init__(self, plans: list[ConsumerPlan], state: StateDir, bootstrap: str) -> None:
        self.consumers = [ConsumerProcess(plan, state, bootstrap) for plan in plans]

    def start(self) -> None:
        for consumer in self.consumers:
            if not consumer.paused:
                consumer.start()
            else:
                consumer.phase = "paused"

    def tick(self) -> None:
        for consumer in self.consumers:
            consumer.tick()

    def halted(self) -> list[ConsumerProcess]:
        return [c for c in self.consumers if c.phase == "halted"]

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM every consumer first, then wait for each: they finish their batches in parallel."""
        for consumer in self.consumers:
            consumer.stop(wait=False)
        deadline = time.monotonic() + timeout
        for consumer in self.consumers:
            consumer.stop(wait=True, timeout=max(0.1, deadline - time.monotonic()))


def last_log_error(path: Path, max_bytes: int = 8192) -> str | None:
    """The last ERROR/error line of a consumer's log: why it failed before writing any status."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        if " ERROR " in line or line.startswith("error:"):
            return line.strip()
    return None


def observed_phase(state: StateDir, entry: StoreEntry) -> tuple[Phase, dict[str, Any] | None]:
    """A store's phase as another process sees it: its status file and whether its pid lives."""
    status = read_status(state.status_file(entry))
    pid = state.read_pid(entry)
    alive = pid_alive(pid)
    if status is not None and status.get("state") == "halted":
        return "halted", status
    if state.pause_marker(entry).exists() and not alive:
        return "paused", status
    if alive:
        reported = status.get("state") if status is not None else None
        phase: Phase = "starting"
        if reported in ("running", "backoff"):
            phase = "running" if reported == "running" else "backoff"
        return phase, status
    return "stopped", status


def pids_of(state: StateDir, entries: list[StoreEntry]) -> Iterator[tuple[StoreEntry, int]]:
    for entry in entries:
        pid = state.read_pid(entry)
        if pid is not None and pid_alive(pid):
            yield entry, pid


def plan_consumers(specs: list[LoadedSpec], embedded: dict[str, str]) -> list[ConsumerPlan]:
    """One plan per (product, store). A store with its own connection is checked now (a missing
    `${ENV}` variable is one clear error here, not a consumer crashing in a loop)."""
    plans: list[ConsumerPlan] = []
    for loaded in specs:
        product = loaded.product
        for store_spec in product.spec.stores:
            settings = store_spec.redis or store_spec.postgres
            managed = settings is None or settings.connection is None
            if managed:
                url: str | None = embedded[store_spec.kind]
                shown = url
            else:
                shown = mask_url(store_url(store_spec))
                url = None
            entry = StoreEntry(
                namespace=product.metadata.namespace, product=product.name, store=store_spec.name,
                kind=store_spec.kind, spec_file=str(Path(loaded.file).resolve()), managed=managed,
                store_url=shown,
            )
            plans.append(ConsumerPlan(entry, product, store_spec, url))
    return plans


def managed_kinds(specs: list[LoadedSpec]) -> set[str]:
    """Which embedded servers the specs need: one Redis and/or one Postgres, shared by all products."""
    kinds: set[str] = set()
    for loaded in specs:
        for store_spec in loaded.product.spec.stores:
            settings = store_spec.redis or store_spec.postgres
            if settings is not None and settings.connection is None:
                kinds.add(store_spec.kind)
    return kinds


# -- the environment consumers need: Kafka and the embedded servers ---------------------------


def kafka_bootstrap(explicit: str | None, state_root: Path, say: Callable[[str], None]) -> tuple[str, bool]:
    """Kafka's bootstrap servers, and whether the dev broker had to be started for them."""
    configured = explicit or os.environ.get("PROVISIONER_KAFKA_BOOTSTRAP")
    if configured:
        return configured, False
    running = devbroker.status(state_root)
    if running is not None:
        return running.bootstrap, False
    say("No Kafka configured (--bootstrap, PROVISIONER_KAFKA_BOOTSTRAP) and no dev broker runs: "
        "starting the dev broker…")
    bootstrap = devbroker.up(state_root)
    say(f"dev broker up at {bootstrap}")
    return bootstrap, True


def topics_needed(specs: list[LoadedSpec]) -> list[str]:
    """Source topics, and the dead-letter topics of products that send dead letters: created up front
    because a broker may not create topics on first use."""
    topics: set[str] = set()
    for loaded in specs:
        product = loaded.product
        topics.add(product.spec.source.topic)
        if product.spec.errors.mode == "deadLetter":
            topics.add(product.dead_letter_topic)
    return sorted(topics)


def ensure_topic(bootstrap: str, topic: str) -> None:
    kafka_helpers.ensure_topic(bootstrap, topic)


def topic_end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    return kafka_helpers.end_offsets(bootstrap, topic)


def start_embedded(kinds: set[str], state_root: Path, say: Callable[[str], None]) -> dict[str, str]:
    """Start (or reuse) one embedded server per kind under the state directory; kind -> URL."""
    starters = {"redis": embedded.start_redis, "postgres": embedded.start_postgres}
    urls: dict[str, str] = {}
    for kind in sorted(kinds):
        server = starters[kind](state_root)
        urls[kind] = server.url
        say(f"embedded {kind}: {mask_url(server.url)}")
    return urls


def ensure_embedded_running(state: StateDir, registry: Registry, kind: str) -> Registry:
    """The registry, with the embedded server of `kind` running (restarted if `down` stopped it)."""
    urls = start_embedded({kind}, state.root, lambda _: None)
    if registry.embedded.get(kind) == urls[kind]:
        return registry
    updated = replace(registry, embedded={**registry.embedded, **urls})
    state.write_registry(updated)
    return updated


def stop_embedded(state_root: Path) -> list[str]:
    """Stop the embedded servers running for the state directory; the kinds stopped."""
    return embedded.stop_all(state_root)


def stop_dev_broker(state_root: Path, *, purge: bool) -> bool:
    """Stop the dev broker of the state directory if it runs; whether it did."""
    return devbroker.down(state_root, purge=purge)


def starting_positions(bootstrap: str, topic: str, start_from: str) -> dict[int, int]:
    """The offset of every partition of `topic` where reading `start_from` (earliest, latest or a
    timestamp) begins: what `replay` stores into a wiped store."""
    client = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=15000)
    try:
        partitions = client.partitions_for_topic(topic) or set()
        return start_offsets(client, [TopicPartition(topic, p) for p in sorted(partitions)], start_from)
    finally:
        client.close()
