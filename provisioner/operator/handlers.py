"""The operator's event handlers and work queue: thin, they call `provisioner.kube.reconcile`.

`operator.watches` follows DataProducts and every kind of child but Secrets
(`reconcile.WATCHED_KINDS`, by the `managed-by: provisioner` label; Secrets are read by name, see
`provisioner.kube.reconcile`); their events only record the object in memory and queue its product:

- a product is queued when it appears, when its generation changes, and every `resync` seconds
  or every products/`resync_rate` seconds, whichever is longer (status refresh; a write happens
  only when the status changed), the children cache corrected
  from a listing of their names first, at the first resync and then every `relist` seconds at
  most (reads only);
- a child's event queues its owner (drift repair: an edited or deleted child is restored), without
  observing the stores again.

Two queues, two pools: applying children (`Reconciler.apply`: API calls only) and refreshing a
status (`Reconciler.observe`, then `write_status`: store and Kafka reads, bounded by their
timeouts). A product's status refresh follows each of its applies that was asked to observe, and
runs beside later applies of the same product, so a store or broker that does not answer delays
its status, never the repair of its objects or an edit. Status writes take a per-product lock and
are skipped when the spec changed while the stores were read (the next refresh writes instead).

Why a queue of our own rather than kopf's create/update handlers: those are edge-triggered and
keep their progress in annotations and status fields of the product (writes GitOps tools would
see); the queue is level-based, coalesces a burst of events into one reconcile, never runs two
reconciles of one product at once, and retries what `errors.is_retryable` calls retryable with
exponential backoff (kopf's TemporaryError semantics), while permanent errors end up in the
status by `Reconciler` (PermanentError semantics: reported, not retried in a loop).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import chain, islice
from typing import Any

from provisioner.errors import is_retryable
from provisioner.kube.client import PARTIAL_METADATA, KubeClient
from provisioner.kube.reconcile import WATCHED_KINDS, Reconciler
from provisioner.operator.cached_child import CachedChild, content_digest, freeze, ready_replicas
from provisioner.threads import DaemonExecutor

__all__ = ["CHILD_LABELS", "Controller"]

log = logging.getLogger("provisioner.operator")

Key = tuple[str, str]  # (namespace, product name)
CHILD_LABELS = {"app.kubernetes.io/managed-by": "provisioner"}  # every child the operator renders carries it
_STRIPPED = ("managedFields",)
_MAX_BACKOFF_S = 60.0
_EXPECTED = 50  # products whose status refresh is announced to the observer ahead, at most
_GROUP_SESSION_S = 50.0  # librdkafka's session.timeout.ms (45 s) and a margin: a crashed member is gone by then


def _without_bookkeeping(body: Mapping[str, Any]) -> dict[str, Any]:
    """A product as cached: its status kept (the next status is computed from it), its
    managedFields dropped (most of a cached body's size, and nothing reads them). A shallow copy:
    the nested values are the decoded event's own, which nothing else keeps or changes. Sharing
    strings between cached bodies (sys.intern over the whole tree) saved memory at a cost of 4% of
    the operator's CPU while it converges, one walk per event of each product."""
    obj = dict(body)
    metadata = body.get("metadata")
    if metadata is not None:
        obj["metadata"] = {k: v for k, v in metadata.items() if k not in _STRIPPED}
    return obj


@dataclass
class Controller:
    """In-memory view of products and their children, and the queue that reconciles them."""

    client: KubeClient
    reconciler: Reconciler
    workers: int = 8
    resync: float = 30.0
    relist: float = 300.0  # at most this often, the children are listed to correct the cache
    resync_rate: float = 7.0  # products queued per second by the resync, at most (see the README)
    status_workers: int = 4
    on_turn: Callable[[], None] | None = None  # called each time the work loop turns (liveness)
    products: dict[Key, dict[str, Any]] = field(default_factory=dict)
    children: dict[Key, dict[tuple[str, str], CachedChild]] = field(default_factory=dict)
    _pending: dict[Key, bool] = field(default_factory=dict)  # key -> observe stores too
    _running: set[Key] = field(default_factory=set)
    _attempts: dict[Key, int] = field(default_factory=dict)
    _status_pending: dict[Key, None] = field(default_factory=dict)  # in the order queued
    _observing: set[Key] = field(default_factory=set)
    _status_attempts: dict[Key, int] = field(default_factory=dict)
    _applied: dict[Key, tuple[str, int]] = field(default_factory=dict)  # (uid, generation) applied without problem
    _write_locks: dict[Key, threading.Lock] = field(default_factory=dict)
    _closed: threading.Event = field(default_factory=threading.Event)
    _reconciled_generation: dict[Key, int] = field(default_factory=dict)
    namespaces: list[str] | None = None  # watched namespaces; None: every namespace
    _recorded: dict[tuple[Key, tuple[str, str]], float] = field(default_factory=dict)  # when a child was cached
    _wakeup: asyncio.Event | None = None
    _pool: DaemonExecutor | None = None
    _status_pool: DaemonExecutor | None = None
    # the resourceVersion of the last listing of each (kind, namespace): where the watches start
    listed_versions: dict[tuple[str, str | None], str] = field(default_factory=dict)

    # -- the caches -----------------------------------------------------------------------------------

    def prime(self, namespaces: list[str] | None) -> None:
        """Read every product and child once before watching, so the first reconciles compare
        against what exists instead of re-applying it."""
        self.namespaces = namespaces
        for namespace in namespaces or [None]:  # type: ignore[list-item]
            listing, version = self.client.list_versioned("DataProduct", namespace)
            self.listed_versions[("DataProduct", namespace)] = version
            for body in listing:
                self.products[_key(body)] = _without_bookkeeping(body)
        self.refresh_children()

    def refresh_children(self) -> None:
        """List every child and correct the cache from it (before the event loop runs)."""
        self.correct_children(*self.list_children())

    def list_children(self, *, metadata_only: bool = False) -> tuple[list[Mapping[str, Any]], float]:
        """Every child, and when the listing began (I/O only: runs on a worker thread). With
        `metadata_only`, only names and labels are listed, and the few children missing from
        the cache are then read in full by name: at ten thousand products a full listing is
        hundreds of megabytes of JSON to parse, most of it already cached."""
        started = time.monotonic()
        bodies: list[Mapping[str, Any]] = []
        for namespace in self.namespaces or [None]:  # type: ignore[list-item]
            for kind in WATCHED_KINDS:
                # stripped kind by kind: only one kind's full bodies are in memory at once
                listing, version = self.client.list_versioned(kind, namespace, CHILD_LABELS,
                                                              metadata_only=metadata_only)
                self.listed_versions[(kind, namespace)] = version
                for listed in listing:
                    if not metadata_only:
                        bodies.append(listed)
                    elif self._cached(listed):  # its name and labels are all `correct_children` reads
                        metadata = listed["metadata"]
                        bodies.append({"apiVersion": PARTIAL_METADATA, "kind": kind, "metadata": {
                            "name": metadata["name"], "namespace": metadata["namespace"],
                            "labels": metadata.get("labels") or {}}})
                    else:
                        metadata = listed["metadata"]
                        body = self.client.get(kind, metadata["namespace"], metadata["name"]) or listed
                        body.setdefault("kind", kind)
                        bodies.append(body)
        return bodies, started

    def _cached(self, body: Mapping[str, Any]) -> bool:
        metadata = body["metadata"]
        product = (metadata.get("labels") or {}).get("app.kubernetes.io/part-of")
        return (body["kind"], metadata["name"]) in self.children.get((metadata["namespace"], product or ""), {})

    def correct_children(self, bodies: list[Mapping[str, Any]], started: float) -> None:
        """Correct the children cache from a listing: the level-based safety net under the watches.
        A child deleted between a listing and the start of a watch (a new leader's start, a watch
        that reconnects) produces no event; without this it would stay cached and never be
        restored. Only entries cached before the listing began may be dropped, so an event that
        arrived meanwhile is not undone. Runs where the event handlers run (one thread touches
        the caches), and reads only: an idle operator still writes nothing."""
        listed: set[tuple[Key, tuple[str, str]]] = set()
        for body in bodies:
            metadata = body["metadata"]
            product = (metadata.get("labels") or {}).get("app.kubernetes.io/part-of")
            if not product:
                continue
            key, entry = (metadata["namespace"], product), (body["kind"], metadata["name"])
            listed.add((key, entry))
            # A metadata-only body is never cached (it would look like drift): one missing from
            # the cache was read in full when listed, and one gone since was deleted meanwhile.
            if entry not in self.children.get(key, {}) and body.get("apiVersion") != PARTIAL_METADATA:
                self.record_child(body, deleted=False)
        for key, entries in self.children.items():
            for entry in [e for e in entries if (key, e) not in listed and self._recorded.get((key, e), 0) < started]:
                entries.pop(entry, None)
                self._recorded.pop((key, entry), None)

    def record_child(self, body: Mapping[str, Any], *, deleted: bool) -> Key | None:
        metadata = body.get("metadata", {})
        product = (metadata.get("labels") or {}).get("app.kubernetes.io/part-of")
        if not product:
            return None
        key = (metadata["namespace"], product)
        entry = (body["kind"], metadata["name"])
        if deleted:
            self.children.get(key, {}).pop(entry, None)
            self._recorded.pop((key, entry), None)
        else:
            self.children.setdefault(key, {})[entry] = freeze(body)
            self._recorded[(key, entry)] = time.monotonic()
        return key

    # -- the queue ------------------------------------------------------------------------------------

    def enqueue(self, key: Key, *, observe: bool = True, delay: float = 0.0) -> None:
        """Queue an apply of the product's children; with `observe`, a status refresh after it."""
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self.enqueue, key)
            return
        self._pending[key] = self._pending.get(key, False) or observe
        if self._wakeup is not None:
            self._wakeup.set()

    def _enqueue_status(self, key: Key) -> None:
        self._status_pending[key] = None
        if self._wakeup is not None:
            self._wakeup.set()

    async def run(self) -> None:
        """Apply queued products with `workers` threads and refresh statuses with
        `status_workers`, and queue every product each `resync`; until cancelled."""
        self._wakeup = asyncio.Event()
        self._pool = DaemonExecutor(self.workers, "reconcile")
        self._status_pool = DaemonExecutor(self.status_workers, "status")
        for key in self.products:
            self.enqueue(key)
        tasks = {asyncio.create_task(self._resync_forever())}
        try:
            while True:
                if self.on_turn is not None:
                    self.on_turn()
                try:  # wakes at least every second, so a turning loop proves itself alive
                    await asyncio.wait_for(self._wakeup.wait(), 1.0)
                except TimeoutError:
                    continue
                self._wakeup.clear()
                self._dispatch(tasks)
        finally:
            self.close()
            for task in tasks:
                task.cancel()

    def _dispatch(self, tasks: set[asyncio.Task[None]]) -> None:
        for key in _startable(self._pending, self._running, self.workers):
            observe = self._pending.pop(key)
            self._running.add(key)
            self._start(tasks, self._reconcile(key, observe))
        refreshing = _startable(self._status_pending, self._observing, self.status_workers)
        for key in refreshing:
            self._status_pending.pop(key)
            self._observing.add(key)
            self._start(tasks, self._refresh(key))
        if refreshing and self.reconciler.observer is not None:
            self._expect_refreshes(refreshing)
        # A set or dict keeps the table it grew to: once ten thousand products were queued (at
        # start), walking even an empty queue scanned that table at every wake-up, most of an
        # idle operator's CPU. Emptied, each starts afresh.
        if not self._pending:
            self._pending = {}
        if not self._status_pending:
            self._status_pending = {}

    def _expect_refreshes(self, started: list[Key]) -> None:
        """Tell the reconciler whose statuses are refreshed next, in order: those just started,
        those queued, then those whose apply runs or is queued with a refresh after it (at the
        first round, most refreshes follow an apply closely). Their consumer groups are then
        described together (see `Reconciler.expect_observations`)."""
        upcoming = chain(started, self._status_pending, self._running,
                         (key for key, observe in self._pending.items() if observe))
        self.reconciler.expect_observations(
            body for key in islice(upcoming, _EXPECTED) if (body := self.products.get(key)) is not None)

    @staticmethod
    def _start(tasks: set[asyncio.Task[None]], work: Any) -> None:
        task = asyncio.create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def close(self) -> None:
        """Take no more work: queued calls are dropped, running ones write nothing more once
        they notice (see `drain`)."""
        self._closed.set()
        for pool in (self._pool, self._status_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def drain(self, timeout: float, *, statuses: bool = False) -> bool:
        """After `close`: wait up to `timeout` seconds for running applies (and, with `statuses`,
        status refreshes); whether they all ended. The stop path waits for applies only: a
        refresh still reading a store or Kafka writes nothing once it notices the close."""
        deadline = time.monotonic() + timeout
        done = True
        for pool in (self._pool, self._status_pool if statuses else None):
            if pool is not None:
                done = pool.join(max(0.0, deadline - time.monotonic())) and done
        return done

    async def _resync_forever(self) -> None:
        """Queue every product once per round: a round lasts `resync` seconds, or as long as
        queueing `resync_rate` products a second takes (with ten thousand products, queueing all
        at once every `resync` would read every store and Kafka group continuously), the products
        spread evenly over it. Each round begins by correcting the children cache from a listing
        of names: at the first round, which closes the gap between the priming listing and the
        watches' start, and then every `relist` seconds at most, for what a reconnecting watch
        may have missed."""
        loop = asyncio.get_running_loop()
        listed: float | None = None
        await asyncio.sleep(self.resync)
        while True:
            began = time.monotonic()
            if listed is None or began - listed >= self.relist:
                try:
                    bodies, started = await loop.run_in_executor(
                        self._pool, lambda: self.list_children(metadata_only=True))
                    self.correct_children(bodies, started)
                    listed = started
                except Exception as error:  # the watches keep the cache; the next round lists again
                    log.warning("listing children failed: %s", error)
            # In name order: the products of a namespace one after the other, so they share what
            # the observer reads for a short while (a topic's end offsets, a store's Secret).
            keys = sorted(self.products)
            length = max(self.resync, len(keys) / self.resync_rate)
            for index, key in enumerate(keys):
                if key in self.products:
                    self.enqueue(key)
                pause = began + length * (index + 1) / len(keys) - time.monotonic()
                if pause >= 0.05 or index == len(keys) - 1:  # a wake-up per product would cost more
                    await asyncio.sleep(max(0.0, pause))
            if not keys:
                await asyncio.sleep(self.resync)

    async def _reconcile(self, key: Key, observe: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            for body in await loop.run_in_executor(self._pool, self._reconcile_now, key, observe):
                self.record_created(body)
            self._attempts.pop(key, None)
            if observe:
                self._enqueue_status(key)
        except Exception as error:
            if self._closed.is_set():
                return
            attempts = self._attempts[key] = self._attempts.get(key, 0) + 1
            if is_retryable(error):
                delay = min(_MAX_BACKOFF_S, 0.5 * 2 ** (attempts - 1))
                log.warning("%s/%s: %s (retrying in %.1f s)", *key, error, delay)
            else:
                delay = _MAX_BACKOFF_S
                log.exception("%s/%s: reconcile failed unexpectedly (retrying in %.0f s)", *key, delay)
            loop.call_later(delay, self.enqueue, key)
        finally:
            self._running.discard(key)
            if self._wakeup is not None:
                self._wakeup.set()

    async def _refresh(self, key: Key) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._status_pool, self._refresh_now, key)
            self._status_attempts.pop(key, None)
        except Exception as error:
            if self._closed.is_set():
                return
            attempts = self._status_attempts[key] = self._status_attempts.get(key, 0) + 1
            delay = min(self.resync, _MAX_BACKOFF_S, 0.5 * 2 ** (attempts - 1))
            if is_retryable(error):
                log.warning("%s/%s: status refresh: %s (retrying in %.1f s)", *key, error, delay)
            else:
                log.exception("%s/%s: status refresh failed unexpectedly (retrying in %.1f s)", *key, delay)
            loop.call_later(delay, self._enqueue_status, key)
        finally:
            self._observing.discard(key)
            if self._wakeup is not None:
                self._wakeup.set()

    def _lock(self, key: Key) -> threading.Lock:
        return self._write_locks.setdefault(key, threading.Lock())

    @staticmethod
    def _version(body: Mapping[str, Any]) -> tuple[str, int]:
        return str(body["metadata"].get("uid")), int(body["metadata"].get("generation", 1))

    def _reconcile_now(self, key: Key, secrets: bool = True) -> list[dict[str, Any]]:
        """Apply the product's children (`secrets`: read its Secrets by name and repair them too,
        on a product event or a resync; a child's event leaves them alone: they are not watched);
        the children it created, as the server answered."""
        body = self.products.get(key)
        if body is None or body["metadata"].get("deletionTimestamp") or self._closed.is_set():
            return []
        started = time.monotonic()
        live = [child.body() for child in self.children.get(key, {}).values()]
        with self._lock(key):
            result = self.reconciler.apply(body, live, secrets=secrets)
            if result.problem is None:
                self._applied[key] = self._version(body)
            else:
                self._applied.pop(key, None)
        self._reconciled_generation[key] = int(body["metadata"].get("generation", 1))
        if result.applied or result.deleted or (result.problem and result.status_written):
            log.info("%s/%s: applied %s, deleted %s%s (%.0f ms)", *key, ", ".join(result.applied) or "nothing",
                     ", ".join(result.deleted) or "nothing", f"; problem: {result.problem}" if result.problem else "",
                     (time.monotonic() - started) * 1000)
        self._log_transitions(key, result.transitions)
        return result.created

    def _refresh_now(self, key: Key) -> None:
        """Observe, then write the status unless the spec changed meanwhile or its last apply
        reported a problem (that status is the apply's to write)."""
        body = self.products.get(key)
        if body is None or body["metadata"].get("deletionTimestamp") or self._closed.is_set():
            return
        version = self._version(body)
        if self._applied.get(key) != version:
            return
        observation = self.reconciler.observe(body)
        if observation is None:
            return
        with self._lock(key):
            current = self.products.get(key)
            if current is None or self._version(current) != version or self._applied.get(key) != version \
                    or self._closed.is_set():
                return
            result = self.reconciler.write_status(current, observation)
        self._log_transitions(key, result.transitions)

    @staticmethod
    def _log_transitions(key: Key, changes: Any) -> None:
        for change in changes:
            log.info("%s/%s: %s=%s (%s)", *key, change.type, change.status, change.reason)

    # -- what the handlers call ---------------------------------------------------------------------

    def product_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = _key(body)
        if event_type == "DELETED":
            self.products.pop(key, None)
            self._reconciled_generation.pop(key, None)
            self._applied.pop(key, None)
            self._write_locks.pop(key, None)
            self.reconciler.forget(*key)
            if self.reconciler.observer is not None:
                self.reconciler.observer.forget(*key)
            return
        stored = _without_bookkeeping(body)
        old = self.products.get(key)
        self.products[key] = stored
        changed = old is None or old["metadata"].get("uid") != stored["metadata"].get("uid") or \
            self._reconciled_generation.get(key) != stored["metadata"].get("generation")
        if changed:
            self.enqueue(key)

    def product_events(self, events: Iterable[tuple[str | None, Mapping[str, Any]]]) -> None:
        """What a product watch read in one go (`operator.watches`), in order."""
        for event_type, body in events:
            self.product_event(event_type, body)

    def child_events(self, events: Iterable[tuple[str | None, Mapping[str, Any]]]) -> None:
        """What a child watch read in one go (`operator.watches`), in order."""
        for event_type, body in events:
            self.child_event(event_type, body)

    def child_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Cache the child and queue its product, unless only its status or version moved (the
        controllers' status updates, the echo of our own create): nothing to repair then."""
        deleted = event_type == "DELETED"
        cached = None if deleted else self._cached_child(body)
        if cached is not None and cached.digest == content_digest(body):
            # The cached copy stays, older resourceVersion and all: it is what the drift check
            # remembers having matched, and making a new one costs more than the comparison. A
            # consumer Deployment whose ready replicas moved (a pod died or came up) refreshes its
            # product's status now and after a consumer's group session timeout, rather than at
            # the next resync.
            ready = ready_replicas(body)
            if ready != cached.ready:
                owner = self._child_key(body)
                self.children[owner][(body["kind"], body["metadata"]["name"])] = replace(cached, ready=ready)
                if owner in self.products:
                    self._enqueue_status(owner)
                    # and again once Kafka has dropped a crashed consumer from its group
                    asyncio.get_running_loop().call_later(_GROUP_SESSION_S, self._enqueue_status, owner)
            return
        key = self.record_child(body, deleted=deleted)
        if key is not None and key in self.products:
            self.enqueue(key, observe=False)

    def record_created(self, body: Mapping[str, Any]) -> None:
        """Cache a child the reconciler just created, unless its event came first (that one is
        as new or newer), so the event of the creation finds it cached and queues nothing. Only
        the watched kinds: a Secret is read by name each time (it has no events to keep it current)."""
        if body.get("kind") in WATCHED_KINDS and self._cached_child(body) is None:
            self.record_child(body, deleted=False)

    def _cached_child(self, body: Mapping[str, Any]) -> CachedChild | None:
        metadata = body.get("metadata", {})
        return self.children.get(self._child_key(body), {}).get((body.get("kind", ""), metadata.get("name", "")))

    @staticmethod
    def _child_key(body: Mapping[str, Any]) -> Key:
        metadata = body.get("metadata", {})
        return metadata.get("namespace", ""), (metadata.get("labels") or {}).get("app.kubernetes.io/part-of") or ""


def _startable(pending: Iterable[Key], running: set[Key], limit: int) -> list[Key]:
    """The first queued keys not running, as many as free workers: the queue is walked only that
    far (this runs at every wake-up, and ten thousand products may be queued)."""
    chosen: list[Key] = []
    for key in pending:
        if len(running) + len(chosen) >= limit:
            break
        if key not in running:
            chosen.append(key)
    return chosen


def _key(body: Mapping[str, Any]) -> Key:
    metadata = body["metadata"]
    return metadata["namespace"], metadata["name"]
