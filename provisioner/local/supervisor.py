"""Supervised consumer processes: `consumer.replicas` `provisioner consume` processes per (product,
store), in the store's one consumer group (at least one: `replicas: 0` holds a consumer in a cluster,
locally the store still gets its consumer, as `up` always ran one).

Used by the local session (`provisioner up` starts and supervises them; `replay` runs one in the
foreground). Consumers run in their own session so Ctrl-C reaches only the supervisor, which then
stops them with SIGTERM and waits: each finishes its batch in hand.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Literal

from provisioner.local.statedir import StateDir, StoreEntry, write_pid
from provisioner.plan import ConsumerPlan
from provisioner.runtime.backoff import Backoff
from provisioner.runtime.consumer import EXIT_HALTED, EXIT_SCHEMA
from provisioner.stream.settings import KAFKA_CONFIG_ENV, KafkaTarget, settings_of

HALT_CODES = frozenset({EXIT_HALTED, EXIT_SCHEMA})
STOP_TIMEOUT = 30.0
# A consumer that stayed up this long is healthy again: its next crash starts the backoff afresh.
HEALTHY_AFTER = 30.0

Phase = Literal["starting", "running", "backoff", "halted", "paused", "stopped", "frozen"]


@dataclass(frozen=True, slots=True)
class LocalConsumer:
    """A planned consumer placed on this machine: its registry entry, and the URL of its embedded
    store when managed (None: the consumer reads the spec's own `connection`)."""

    entry: StoreEntry
    plan: ConsumerPlan
    managed_url: str | None


def consumer_command(consumer: LocalConsumer, state: StateDir, replica: int = 0) -> list[str]:
    """The consumer's command line: never a URL (a managed store's URL travels in the environment)."""
    return [
        sys.executable, "-m", "provisioner", "consume",
        "--spec", consumer.entry.spec_file,
        "--product", consumer.plan.product.name,
        "--store", consumer.plan.store.name,
        "--status-file", str(state.status_file(consumer.entry, replica)),
        "--state-dir", str(state.root),
    ]


def consumer_env(consumer: LocalConsumer, bootstrap: KafkaTarget, base: dict[str, str] | None = None,
                 until: str | None = None) -> dict[str, str]:
    """The consumer's environment: Kafka (its address and properties file, never the file's
    content), its managed store's URL and `up --until`, never inherited values of those that would
    point it elsewhere."""
    env = dict(os.environ if base is None else base)
    kafka = settings_of(bootstrap)
    env["PROVISIONER_KAFKA_BOOTSTRAP"] = kafka.bootstrap
    # An inherited URL must not override a store's own connection.
    for variable in ("PROVISIONER_STORE_URL", "PROVISIONER_METRICS_PORT", "PROVISIONER_UNTIL", KAFKA_CONFIG_ENV):
        env.pop(variable, None)
    if consumer.managed_url is not None:
        env["PROVISIONER_STORE_URL"] = consumer.managed_url
    if until is not None:
        env["PROVISIONER_UNTIL"] = until
    if kafka.config_file is not None:
        env[KAFKA_CONFIG_ENV] = kafka.config_file
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass(slots=True)
class ConsumerProcess:
    """One supervised consumer: its process, its exit, and when to start it again."""

    placed: LocalConsumer
    state: StateDir
    bootstrap: KafkaTarget
    until: str | None = None  # `up --until`: the instant the stores are built as of
    replica: int = 0  # which of the store's `consumer.replicas` processes
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
        return self.placed.entry

    @property
    def plan(self) -> ConsumerPlan:
        return self.placed.plan

    @property
    def paused(self) -> bool:
        return self.state.pause_marker(self.entry).exists()

    def start(self) -> None:
        self.state.prepare(self.entry)
        self._close_log()
        self._log = self.state.log_file(self.entry, self.replica).open("ab")
        self.process = subprocess.Popen(
            consumer_command(self.placed, self.state, self.replica),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=consumer_env(self.placed, self.bootstrap, until=self.until), start_new_session=True,
        )
        write_pid(self.state.pid_file(self.entry, self.replica), self.process.pid)
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
        self.state.pid_file(self.entry, self.replica).unlink(missing_ok=True)
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
            self.state.pid_file(self.entry, self.replica).unlink(missing_ok=True)
            self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class Supervisor:
    """Starts every planned consumer and keeps them running until asked to stop."""

    def __init__(self, consumers: list[LocalConsumer], state: StateDir, bootstrap: KafkaTarget,
                 until: str | None = None) -> None:
        self.consumers = [ConsumerProcess(consumer, state, bootstrap, until=until, replica=replica)
                          for consumer in consumers for replica in range(consumer.entry.replicas)]

    def groups(self) -> list[list[ConsumerProcess]]:
        """The processes of each store, in the order placed."""
        by_store: dict[StoreEntry, list[ConsumerProcess]] = {}
        for consumer in self.consumers:
            by_store.setdefault(consumer.entry, []).append(consumer)
        return list(by_store.values())

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


