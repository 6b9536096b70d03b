"""The local session: what `provisioner up` started under a state directory, and every operation
the other local commands run on it (`status`, `inspect`, `replay`, `down`).

`up` records what it started in the state directory's registry; a `LocalSession` reads it back, so
the other commands work without the spec paths. No typer and no printing here: operations return
data or raise a `ProvisionerError` with a message for the user, and take a `say` callback for the
progress lines a person wants to see while they run. The CLI's modules are thin wrappers over these.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from provisioner.errors import ConfigurationError, ProvisionerError, UnavailableError
from provisioner.local import devbroker, devregistry, embedded
from provisioner.local.processes import pid_alive, terminate
from provisioner.local.statedir import Registry, StateDir, StoreEntry
from provisioner.local.supervisor import ConsumerProcess, LocalConsumer, Phase, Supervisor
from provisioner.plan import ConsumerPlan, Plan, plan
from provisioner.runtime.connection import StoreUrlError, mask_url, store_url
from provisioner.runtime.progress import StoreView, build_progress, group_holds_current, store_view
from provisioner.runtime.rebuild import decide_start
from provisioner.runtime.status import ConsumerStatus, merge_statuses, read_status
from provisioner.spec.durations import parse_duration
from provisioner.spec.findings import SpecError
from provisioner.spec.fingerprint import compare, fingerprint
from provisioner.spec.loader import LoadedSpec, load_products
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.base import Store
from provisioner.stores.registry import open_store
from provisioner.stores.versions import ReplayRequest, read_version, versions_of
from provisioner.stream import kafka as kafka_helpers
from provisioner.stream.settings import KafkaSettings, KafkaTarget, load_kafka_settings

__all__ = [
    "AlreadyRunningError",
    "ConsumerHaltedError",
    "LocalSession",
    "NotStartedError",
    "Target",
    "UnknownTargetError",
    "last_log_error",
    "local_credentials_note",
    "observed_group",
    "observed_phase",
    "place",
    "prepare_environment",
    "preview_stores",
]

Say = Callable[[str], None]
STORE_TIMEOUT = 3.0
SUPERVISOR_STOP_TIMEOUT = 60.0
HYDRATE_POLL_SECONDS = 0.3


class NotStartedError(ConfigurationError):
    """The state directory holds no registry: `up` never ran there."""


class UnknownTargetError(ConfigurationError):
    """The named product or store was not started by `up`."""


class AlreadyRunningError(ConfigurationError):
    """`up` already runs for this state directory."""


class ConsumerHaltedError(ProvisionerError):
    """A consumer run in the foreground halted or did not catch up in time; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A store `up` started, with its product re-read from the spec file (None if it is gone)."""

    entry: StoreEntry
    product: DataProduct | None

    @property
    def label(self) -> str:
        return f"{self.entry.product}/{self.entry.store}"

    def require_product(self) -> DataProduct:
        if self.product is None:
            raise ConfigurationError(f"{self.entry.spec_file} no longer defines {self.entry.product!r}")
        return self.product


# -- what consumers look like from outside ----------------------------------------------------


def local_credentials_note(product: DataProduct) -> str | None:
    """What happens here to the product's `source.credentials`: nothing. A Secret exists only in a
    cluster; locally every Kafka call uses the one connection of the command (--kafka-config)."""
    credentials = product.spec.source.credentials
    if credentials is None:
        return None
    return (f"{product.name}: source.credentials.secretRef (Secret {credentials.secret_ref.name}) applies in a "
            "cluster only; here it reads Kafka with --kafka-config/--bootstrap (PROVISIONER_KAFKA_CONFIG)")


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


def observed_phase(state: StateDir, entry: StoreEntry, replica: int = 0) -> tuple[Phase, ConsumerStatus | None]:
    """A store's phase as another process sees it: its status file and whether its pid lives."""
    status = read_status(state.status_file(entry, replica))
    alive = pid_alive(state.read_pid(entry, replica))
    if status is not None and status.state == "halted":
        return "halted", status
    if state.pause_marker(entry).exists() and not alive:
        return "paused", status
    if alive:
        reported = status.state if status is not None else None
        phase: Phase = "starting"
        if reported in ("running", "backoff", "frozen"):
            phase = reported
        return phase, status
    return "stopped", status


def observed_group(state: StateDir, entry: StoreEntry) -> tuple[Phase, ConsumerStatus | None, str | None]:
    """The phase and status of a store's consumer processes together, and with several replicas
    how many of them run ("2/3")."""
    seen = [observed_phase(state, entry, replica) for replica in range(entry.replicas)]
    phases = [phase for phase, _ in seen]
    running = sum(phase in ("running", "frozen") for phase in phases)
    phase = "halted" if "halted" in phases else "running" if "running" in phases else phases[0]
    counted = f"{running}/{entry.replicas}" if entry.replicas > 1 else None
    return phase, merge_statuses([status for _, status in seen]), counted


def store_view_of(entry: StoreEntry, product: DataProduct | None, phase: Phase, status: ConsumerStatus | None, *,
                  positions: dict[int, int] | None = None, end_offsets: dict[int, int] | None = None,
                  last_error: str | None = None, rebuild_pending: bool = False,
                  consumers: str | None = None) -> StoreView:
    """One store's row for `status` and `up`'s dashboard."""
    freshness = product.spec.freshness if product is not None else None
    return store_view(
        namespace=entry.namespace, product=entry.product, store=entry.store, kind=entry.kind, state=phase,
        status=status, sla_seconds=parse_duration(freshness).total_seconds() if freshness else None,
        now=time.time(), positions=positions, end_offsets=end_offsets, store_url=entry.store_url,
        last_error=last_error, rebuild_pending=rebuild_pending, consumers=consumers,
    )


# -- placing a plan on this machine -----------------------------------------------------------


def prepare_environment(plan: Plan, state_root: Path, explicit_kafka: KafkaTarget | None,
                        say: Say) -> tuple[KafkaTarget, bool, dict[str, embedded.EmbeddedServer]]:
    """Kafka (settings given, else the dev broker started when none is configured), the plan's
    topics, and one embedded server per managed store kind: (Kafka, whether the dev broker was
    started, kind -> server)."""
    bootstrap: KafkaTarget
    if isinstance(explicit_kafka, KafkaSettings):
        bootstrap, started = explicit_kafka, False
    else:
        bootstrap, started = devbroker.resolve_or_start(explicit_kafka, state_root, say)
    formats: set[str] = {f for c in plan.consumers
                         for f in (c.product.spec.source.format, c.product.spec.source.key_format)}
    bootstrap = devregistry.with_registry(formats, bootstrap, state_root, say)
    for topic in plan.topics:
        kafka_helpers.ensure_topic(bootstrap, topic)
    servers = start_embedded(plan.managed_kinds, state_root, say)
    return bootstrap, started, servers


def start_embedded(kinds: frozenset[str] | set[str], state_root: Path,
                   say: Say) -> dict[str, embedded.EmbeddedServer]:
    """Start (or reuse) one embedded server per kind under the state directory; kind -> server."""
    starters = {"redis": embedded.start_redis, "postgres": embedded.start_postgres}
    servers: dict[str, embedded.EmbeddedServer] = {}
    for kind in sorted(kinds):
        servers[kind] = starters[kind](state_root)
        say(f"embedded {kind}: {servers[kind].masked_url}")
    return servers


def place(plan: Plan, specs: Sequence[LoadedSpec],
          servers: dict[str, embedded.EmbeddedServer]) -> list[LocalConsumer]:
    """The plan's consumers on this machine, a managed store in its product's own space of the
    embedded server. A store with its own connection is checked now (a missing `${ENV}` variable is
    one clear error here, not a consumer crashing in a loop)."""
    files = {id(loaded.product): str(Path(loaded.file).resolve()) for loaded in specs}
    placed: list[LocalConsumer] = []
    for consumer in plan.consumers:
        product = consumer.product
        url = embedded.space_url(servers[consumer.kind], consumer.namespace, product.name) \
            if consumer.managed else None
        shown = mask_url(url if url is not None else store_url(consumer.store))
        entry = StoreEntry(
            namespace=consumer.namespace, product=product.name, store=consumer.store.name, kind=consumer.kind,
            spec_file=files[id(product)], managed=consumer.managed, store_url=shown,
            replicas=max(1, product.spec.consumer.replicas),
        )
        placed.append(LocalConsumer(entry, consumer, url))
    return placed


# -- the session ------------------------------------------------------------------------------


class LocalSession:
    """A state directory `up` ran in, and its registry."""

    def __init__(self, state: StateDir, registry: Registry) -> None:
        self.state = state
        self.registry = registry
        self._space_urls: dict[tuple[str, str, str], str] = {}  # (kind, namespace, product) -> URL

    @property
    def kafka(self) -> KafkaTarget:
        """The Kafka connection `up` was started with: its properties file (read again, so a
        rotated password is picked up) at the recorded address, or the plain address."""
        config = self.registry.kafka_config
        if config is None:
            return self.registry.bootstrap
        settings = load_kafka_settings(Path(config), self.registry.bootstrap)
        return settings if settings is not None else self.registry.bootstrap

    @classmethod
    def open(cls, state_dir: Path) -> LocalSession:
        """The session of `state_dir`, or NotStartedError when `up` never ran there."""
        state = StateDir(state_dir.resolve())
        registry = state.read_registry()
        if registry is None:
            raise NotStartedError(
                f"nothing was started with state dir {state.root}: run `provisioner up PATH...` first")
        return cls(state, registry)

    @classmethod
    def start(cls, paths: Sequence[Path], state_dir: Path, explicit_kafka: KafkaTarget | None,
              say: Say, until: str | None = None) -> tuple[LocalSession, Supervisor]:
        """What `up` does before it supervises: specs loaded, Kafka, topics and embedded stores
        ready, consumers placed and recorded in the registry; the returned supervisor has not
        started them yet. The caller runs it and calls `finish` when done."""
        specs = load_products(list(paths))
        for note in filter(None, (local_credentials_note(loaded.product) for loaded in specs)):
            say(f"note: {note}")
        state = StateDir(state_dir.resolve())
        state.root.mkdir(parents=True, exist_ok=True)
        previous = state.read_registry()
        if previous is not None and pid_alive(previous.supervisor_pid):
            raise AlreadyRunningError(
                f"`provisioner up` already runs for {state.root} (pid {previous.supervisor_pid}); "
                "stop it with `provisioner down` or use another --state-dir")
        if previous is not None:
            # Consumers left behind by an `up` that was killed would compete with the new ones.
            for entry in previous.stores:
                for replica in range(entry.replicas):
                    pid = state.read_pid(entry, replica)
                    if pid is not None and pid_alive(pid):
                        say(f"stopping a leftover consumer of {entry.product}/{entry.store} (pid {pid})")
                        terminate(pid)
        the_plan = plan([loaded.product for loaded in specs])
        bootstrap, started_broker, servers = prepare_environment(the_plan, state.root, explicit_kafka, say)
        consumers = place(the_plan, specs, servers)
        registry = Registry(
            bootstrap=str(bootstrap), kafka_config=getattr(bootstrap, "config_file", None),
            spec_paths=[str(p.resolve()) for p in paths],
            stores=[c.entry for c in consumers],
            started_broker=started_broker or bool(previous and previous.started_broker),
            embedded={kind: server.masked_url for kind, server in servers.items()}, supervisor_pid=os.getpid(),
        )
        state.write_registry(registry)
        for consumer in consumers:
            # `down NAME` holds a product's consumers while an `up` runs; a new `up` runs everything again.
            state.pause_marker(consumer.entry).unlink(missing_ok=True)
        return cls(state, registry), Supervisor(consumers, state, bootstrap, until=until)

    def finish(self) -> None:
        """`up` has stopped supervising."""
        self.registry = self.registry.with_supervisor(None)
        self.state.write_registry(self.registry)

    @property
    def supervisor_running(self) -> bool:
        return pid_alive(self.registry.supervisor_pid)

    def targets(self, name: str | None = None, store: str | None = None) -> list[Target]:
        """The stores of product `name` (all when None), optionally only store `store`."""
        entries = [e for e in self.registry.stores if name is None or e.matches(name)]
        if name is not None and not entries:
            known = ", ".join(sorted({e.product for e in self.registry.stores})) or "none"
            raise UnknownTargetError(f"no data product {name!r} was started by `provisioner up` (started: {known})")
        if store is not None:
            entries = [e for e in entries if e.store == store]
            if not entries:
                raise UnknownTargetError(f"data product {name!r} has no store {store!r}")
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

    def target(self, name: str, store: str) -> Target:
        """One store whose product the spec file still defines."""
        target = self.targets(name, store)[0]
        target.require_product()
        return target

    def store_url(self, target: Target) -> str:
        """The real URL of a store (with its password: never show it): its product's space on the
        embedded server for a managed one, else the spec's connection."""
        entry = target.entry
        if entry.managed:
            key = (entry.kind, entry.namespace, entry.product)
            server = embedded.find(entry.kind, self.state.root)
            if server is None:
                raise StoreUrlError(f"the embedded {entry.kind} does not run: start it with `provisioner up`")
            if key not in self._space_urls:
                try:
                    self._space_urls[key] = embedded.space_url(server, entry.namespace, entry.product)
                except embedded.EmbeddedSpaceError as error:
                    raise UnavailableError(f"{target.label}: {error}") from None
            return self._space_urls[key]
        return store_url(target.require_product().store(entry.store))

    @contextlib.contextmanager
    def open_store(self, target: Target, timeout: float | None = None) -> Iterator[Store]:
        """The target's store, closed afterwards; a failure while using it is an UnavailableError
        naming the store (the URL masked)."""
        product = target.require_product()
        handle = open_store(product, product.store(target.entry.store), self.store_url(target),
                            timeout=10.0 if timeout is None else timeout)
        try:
            yield handle
        except (UnavailableError, OSError) as error:
            raise UnavailableError(f"{target.label} at {target.entry.store_url}: {error}") from error
        finally:
            handle.close()

    # -- status -------------------------------------------------------------------------------

    def views(self, targets: list[Target]) -> list[tuple[StoreView, int | None]]:
        """Each target's view, with positions and row count from the store and end offsets from
        Kafka when they answer (lag is then true even when no consumer runs)."""
        ends = self._end_offsets({t.product.spec.source.topic for t in targets if t.product is not None})
        views: list[tuple[StoreView, int | None]] = []
        for target in targets:
            entry = target.entry
            phase, status, consumers = observed_group(self.state, entry)
            positions, rows, problem, pending = self._live_store_facts(target)
            last_error = status.last_error if status is not None else None
            if not last_error and phase in ("stopped", "halted") and status is None:
                last_error = last_log_error(self.state.log_file(entry))
            product = target.product
            view = store_view_of(entry, product, phase, status, positions=positions,
                                 end_offsets=ends.get(product.spec.source.topic) if product is not None else None,
                                 last_error=last_error or problem, rebuild_pending=pending, consumers=consumers)
            views.append((view, rows))
        return views

    def _live_store_facts(self, target: Target) -> tuple[dict[int, int] | None, int | None, str | None, bool]:
        """Positions, row count and whether a rebuild is pending, read from the store now, or the
        reason it did not answer."""
        try:
            with self.open_store(target, timeout=STORE_TIMEOUT) as store:
                positions, rows = store.read_positions(), store.count()
            return positions, rows, None, self._rebuild_pending(target)
        except UnavailableError as error:
            return None, None, f"store unreachable: {error.__cause__ or error}", False
        except ConfigurationError as error:
            return None, None, str(error), False

    def _rebuild_pending(self, target: Target) -> bool:
        """Whether the store holds another spec's content than its spec file's now (a consumer
        started with it rebuilds first), or a requested replay has not switched yet."""
        product = target.require_product()
        store_spec = product.store(target.entry.store)
        record = read_version(product, store_spec, self.store_url(target), timeout=STORE_TIMEOUT)
        return record is not None and (record.shadow is not None or decide_start(product, store_spec, record).shadow
                                       is not None)

    def _end_offsets(self, topics: set[str]) -> dict[str, dict[int, int]]:
        """End offsets per topic now; a topic Kafka does not answer for is left out."""
        ends: dict[str, dict[int, int]] = {}
        for topic in sorted(topics):
            # Any Kafka failure only means lag comes from the consumers' last status instead.
            with contextlib.suppress(Exception):
                ends[topic] = kafka_helpers.end_offsets(self.kafka, topic)
        return ends

    # -- inspect, replay, down ----------------------------------------------------------------

    def rows(self, target: Target, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` rows of the store (data only, never positions)."""
        with self.open_store(target, timeout=5.0) as store:
            return store.inspect(limit)

    def hold(self, targets: list[Target], say: Say) -> None:
        """Stop the targets' consumers and keep a running `up` from restarting them."""
        self._stop_consumers(targets, say, hold=True)

    def release(self, target: Target) -> None:
        self.state.pause_marker(target.entry).unlink(missing_ok=True)

    def rebuild(self, target: Target, start_from: str, until: str | None = None) -> dict[int, int] | None:
        """Ask the store's consumer to rebuild it beside itself from `start_from` (up to `until`): the
        live version keeps serving until the new one caught up and replaced it in one step. Returns
        None then; a store that never recorded a version (never consumed) is wiped instead, and the
        positions `start_from` resolves to are returned."""
        product = target.require_product()
        if target.entry.managed:
            self._ensure_embedded_running(target.entry.kind)
        store_spec = product.store(target.entry.store)
        with versions_of(product, store_spec, self.store_url(target), timeout=STORE_TIMEOUT) as versions:
            if versions.read() is not None:
                versions.request_replay(ReplayRequest(start_from=start_from, until=until))
                return None
        positions = kafka_helpers.topic_start_offsets(self.kafka, product.spec.source.topic, start_from)
        with self.open_store(target) as store:
            store.reset()
            store.apply([], dict.fromkeys(positions), positions)
        # Its counters and positions described the old contents.
        for path in self.state.status_files(target.entry):
            path.unlink(missing_ok=True)
        return positions

    def end_offsets_now(self, topics: Iterable[str]) -> dict[str, dict[int, int]]:
        """The end offsets of `topics` now: what a store must reach to hold the current content."""
        return {topic: kafka_helpers.end_offsets(self.kafka, topic) for topic in dict.fromkeys(topics)}

    def holds_current(self, target: Target, statuses: Sequence[ConsumerStatus | None], pids: Sequence[int | None],
                      ends: Mapping[int, int]) -> bool:
        """The one rule of "caught up", for `replay`, `up --until-caught-up` and the hydration of a
        rebuild: the store's consumer processes (`pids`, each with its status) are current, rebuild
        nothing, together reached `ends` (or froze at `until`), and no replay waits to switch."""
        return group_holds_current(statuses, pids, ends) and not self.replay_pending(target)

    def replay_pending(self, target: Target) -> bool:
        """Whether a requested replay has not switched yet (the rebuild runs or has to start)."""
        product = target.require_product()
        record = read_version(product, product.store(target.entry.store), self.store_url(target),
                              timeout=STORE_TIMEOUT)
        return record is not None and (record.replay is not None or record.shadow is not None)

    def local_consumer(self, target: Target) -> LocalConsumer:
        """The target's consumer as `up` placed it, to run it in the foreground."""
        product = target.require_product()
        entry = target.entry
        url = self.store_url(target) if entry.managed else None
        return LocalConsumer(entry, ConsumerPlan(product, product.store(entry.store)), url)

    def hydrate(self, target: Target, on_progress: Callable[[int, int], None], timeout: float | None = None) -> None:
        """Run the target's consumer here until it reaches the topic's end as of now, then stop it.
        `on_progress(completed, total)` is called as it goes."""
        consumer = ConsumerProcess(self.local_consumer(target), self.state, self.kafka)
        topic = target.require_product().spec.source.topic
        targets = self.end_offsets_now([topic])[topic]
        deadline = None if timeout is None else time.monotonic() + timeout
        log = self.state.log_file(target.entry)
        consumer.start()
        try:
            while True:
                consumer.tick()
                status = read_status(self.state.status_file(target.entry))
                on_progress(build_progress(status, targets).completed, sum(targets.values()))
                if consumer.phase == "halted":
                    raise ConsumerHaltedError(f"the consumer halted: {(status and status.last_error) or f'see {log}'}")
                pid = consumer.process.pid if consumer.process is not None else None
                if self.holds_current(target, [status], [pid], targets):
                    return
                if deadline is not None and time.monotonic() > deadline:
                    raise ConsumerHaltedError(f"not caught up within {timeout:g}s; see {log}")
                time.sleep(HYDRATE_POLL_SECONDS)
        finally:
            consumer.stop()

    def stop_product(self, targets: list[Target], *, purge: bool, say: Say) -> None:
        """Stop one product's consumers (held stopped while `up` runs); `purge` wipes their stores."""
        self._stop_consumers(targets, say, hold=self.supervisor_running)
        if not purge:
            return
        for target in targets:
            with self.open_store(target) as store:
                store.reset()
            for path in self.state.status_files(target.entry):
                path.unlink(missing_ok=True)
            say(f"wiped store {target.label} ({target.entry.store_url or ''})")

    def stop_everything(self, *, purge: bool, say: Say) -> None:
        """Stop `up`, every consumer, the embedded servers and the dev broker if `up` started it;
        `purge` removes the state directory (and so always stops the broker whose data it holds)."""
        pid = self.registry.supervisor_pid
        if pid is not None and pid_alive(pid):
            terminate(pid, timeout=SUPERVISOR_STOP_TIMEOUT)
            say(f"stopped `provisioner up` (pid {pid})")
        self._stop_consumers([Target(e, None) for e in self.registry.stores], say, hold=False)
        stop_local_servers(self.state.root, purge=purge, stop_broker=self.registry.started_broker or purge, say=say)
        if not purge:
            self.state.write_registry(self.registry.with_supervisor(None))

    def _stop_consumers(self, targets: list[Target], say: Say, *, hold: bool) -> None:
        for target in targets:
            entry = target.entry
            if hold:
                self.state.prepare(entry)
                self.state.pause_marker(entry).touch()
            for replica in range(entry.replicas):
                pid = self.state.read_pid(entry, replica)
                if pid is not None and pid_alive(pid):
                    graceful = terminate(pid)
                    say(f"stopped consumer {target.label}{'' if graceful else ' (killed: it did not stop in time)'}")

    def _ensure_embedded_running(self, kind: str) -> None:
        """The embedded server of `kind` running (restarted if `down` stopped it), recorded."""
        shown = start_embedded({kind}, self.state.root, lambda _: None)[kind].masked_url
        if self.registry.embedded.get(kind) != shown:
            self.registry = replace(self.registry, embedded={**self.registry.embedded, kind: shown})
            self.state.write_registry(self.registry)


@dataclass(frozen=True, slots=True)
class StorePreview:
    """What applying a spec would do to one store: `compare`'s verdict against the version the store
    recorded, and how many records a rebuild would read (None when unknown or not rebuilding)."""

    product: str
    store: str
    kind: str
    settings: tuple[str, ...]
    records: int | None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"product": self.product, "store": self.store, "kind": self.kind, "settings": list(self.settings),
                "records": self.records, "problem": self.problem}


def preview_stores(paths: Sequence[Path], state_dir: Path, bootstrap: KafkaTarget | None) -> list[StorePreview]:
    """Per store of the specs at `paths`: new, unchanged, in place or rebuild, against the version
    recorded in the store (found through `up`'s registry, else the spec's connection URL)."""
    session: LocalSession | None
    try:
        session = LocalSession.open(state_dir)
    except NotStartedError:
        session = None
    kafka = bootstrap or (session.kafka if session is not None else None)
    previews: list[StorePreview] = []
    for loaded in load_products(paths):
        product = loaded.product
        for store_spec in product.spec.stores:
            previews.append(_preview_store(product, store_spec, session, kafka))
    return previews


def _preview_store(product: DataProduct, store_spec: StoreSpec, session: LocalSession | None,
                kafka: KafkaTarget | None) -> StorePreview:
    def verdict(kind: str, settings: tuple[str, ...] = (), records: int | None = None,
                problem: str | None = None) -> StorePreview:
        return StorePreview(product.name, store_spec.name, kind, settings, records, problem)

    try:
        url: str | None = None
        if session is not None:
            known = session.targets(product.name, store_spec.name)
            url = session.store_url(known[0]) if known else None
        if url is None:
            url = store_url(store_spec)
        record = read_version(product, store_spec, url, timeout=STORE_TIMEOUT)
    except (ProvisionerError, ValueError) as error:
        return verdict("new", problem=f"store not reachable: {error}")
    old = record.product() if record is not None else None
    if record is None:
        return verdict("new")
    if old is None:
        return verdict("rebuild" if record.fingerprint != fingerprint(product, store_spec) else "unchanged")
    change = next(c for c in compare(old[0], product) if c.store == store_spec.name)
    records = None
    if change.kind == "rebuild" and kafka is not None:
        topic, start = product.spec.source.topic, product.spec.source.start_from
        try:
            ends = kafka_helpers.end_offsets(kafka, topic)
            starts = kafka_helpers.topic_start_offsets(kafka, topic, start)
            records = sum(max(0, end - starts.get(p, 0)) for p, end in ends.items())
        except ProvisionerError:
            records = None
    return verdict(change.kind, change.settings, records)


def stop_local_servers(state_root: Path, *, purge: bool, stop_broker: bool, say: Say) -> None:
    """Stop the embedded servers and (if `stop_broker`) the dev broker of a state directory;
    `purge` then removes the directory."""
    for kind in embedded.stop_all(state_root):
        say(f"stopped the embedded {kind}")
    if stop_broker and devbroker.down(state_root, purge=purge):
        say("stopped the dev Kafka broker")
    if stop_broker and devregistry.down(state_root, purge=purge):
        say("stopped the dev schema registry")
    if purge:
        shutil.rmtree(state_root, ignore_errors=True)
        say(f"removed {state_root}")
