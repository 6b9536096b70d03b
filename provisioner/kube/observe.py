"""Observe a product where the truth is: positions in each store, end offsets, consumer-group
members and dead letters in Kafka.

The store's URL comes from where its consumer reads it: the Secret a `connection.secretRef` names,
or the Secret the operator renders (a managed store's credentials, a `connection.url`). Positions
are read with the store classes the consumers write them with (`provisioner.stores`), so lag is
`end offsets - positions` as spec.md defines it, not Kafka's committed offsets.

Freshness needs memory: when each store was last seen caught up with a consumer running, and since
when it has been watched (its positions and the end offsets read). The observer keeps both per
process: a store never seen caught up has no known freshness (Fresh=Unknown) until it has been
watched for longer than its goal without catching up (then Stale), so neither a restart nor an
outage present an unobserved store as fresh. A store
being rebuilt (its version record names a new version) is observed too: the new version's own
positions, and its pace between two observations, give the rebuild's progress and time left.

A store URL that names certificate files names keys of its own Secret (`provisioner.stores.url_files`):
a file that is not one is the store's error (reason StoreCredentialsMissing), and otherwise the files
are written to a private temporary folder for the one observation, as the consumers find them in
their mount. A store's refusal keeps its class as the reason: StoreAuthentication,
StoreAuthorization or StoreTLS.

Errors never carry a secret: store errors are scrubbed of the URL's password, Kafka errors name the
exception type only. Called by `provisioner.kube.reconcile`.
"""

from __future__ import annotations

import base64
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from provisioner.errors import AccessError, ProvisionerError
from provisioner.kube.client import KubeClient
from provisioner.kube.kafka_secret import credentials_problem, kafka_secret_of
from provisioner.kube.render import STORE_FILES_DIR, object_name
from provisioner.kube.status import RebuildObservation, StoreObservation
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores import redis_connect
from provisioner.stores.base import scrub_secrets
from provisioner.stores.registry import open_store
from provisioner.stores.url_files import files_named, resolve, secret_key
from provisioner.stores.url_files import problem as files_problem
from provisioner.stores.versions import read_version, shadow_for
from provisioner.stream.observe import KafkaObserver

__all__ = ["Observer", "store_secret"]

_CLIENTS_MAX = 256  # Redis clients the observer keeps open at most (one per server URL)


def store_secret(product: DataProduct, store: StoreSpec) -> tuple[str, str]:
    """(Secret name, key) holding the store's URL, as render names it."""
    connection = store.connection
    if connection is not None and connection.secret_ref is not None:
        return connection.secret_ref.name, connection.secret_ref.key
    suffix = "store-url" if connection is not None else "credentials"
    return object_name(product.name, store.name, suffix), "url"


STORE_SECRET_TTL_S = 300.0  # a store's URL Secret that works is read again after this long


class Observer:
    """Observes stores and Kafka for many products; one per operator."""

    def __init__(self, client: KubeClient, kafka: KafkaObserver | None, *, store_timeout: float = 3.0,
                 clock: Callable[[], float] = time.monotonic, secret_ttl: float = 10.0,
                 store_secret_ttl: float = STORE_SECRET_TTL_S, ends_ttl: float = 1.0) -> None:
        self._client = client
        self._kafka = kafka
        self._store_timeout = store_timeout
        self._clock = clock
        self._fresh_at: dict[tuple[str, str, str], float] = {}  # last seen caught up with a consumer
        self._watched_at: dict[tuple[str, str, str], float] = {}  # first read of positions and end offsets
        # Secrets read by name, each kept until an expiry (when, Secret): many products share one
        # (a namespace's store URL), and every refresh would read it again. A Kafka client Secret
        # is kept `secret_ttl` seconds (its rotation rolls the consumers); a store's URL Secret
        # `store_secret_ttl` seconds while the store answers, and `secret_ttl` once it is missing,
        # lacks its key or the store's read failed with it: a URL that stopped working (a rotated
        # password) is read again at once, one that works is not read again for minutes.
        self._secret_ttl = secret_ttl
        self._store_secret_ttl = store_secret_ttl
        self._secrets: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        self._secrets_lock = threading.Lock()
        self._reading: dict[tuple[str, str], threading.Lock] = {}
        self._clients: dict[str, Any] = {}  # Redis server URL -> its client (see `_redis`)
        # Each topic's end offsets as last read, reused for `ends_ttl` seconds (when, offsets).
        self._ends_ttl = ends_ttl
        self._ends: dict[str, tuple[float, dict[int, int]]] = {}
        # The last check of each Kafka client Secret: (namespace, name, a product's own) -> (version, problem).
        self._kafka_checks: dict[tuple[str, str, bool], tuple[str | None, str | None]] = {}
        # (version, when, records replayed) at the previous observation of each store's rebuild.
        self._rebuild_marks: dict[tuple[str, str, str], tuple[str, float, int]] = {}
        # (when, records read) at the previous observation of each store: its consumers' pace.
        self._read_marks: dict[tuple[str, str, str], tuple[float, int]] = {}

    def forget(self, namespace: str, name: str) -> None:
        for marks in (self._fresh_at, self._watched_at, self._rebuild_marks, self._read_marks):
            for key in [k for k in marks if k[:2] == (namespace, name)]:
                marks.pop(key, None)

    def expect_groups(self, groups: Iterable[str]) -> None:
        """The consumer groups the next observations ask for, in order (see `KafkaObserver.expect_groups`)."""
        if self._kafka is not None:
            self._kafka.expect_groups(groups)

    def observe(self, product: DataProduct, namespace: str,
                desired: Sequence[dict[str, Any]]) -> tuple[StoreObservation, ...]:
        secrets = {o["metadata"]["name"]: o for o in desired if o.get("kind") == "Secret"}
        topic = product.spec.source.topic
        end_offsets, kafka_error, refused = self._end_offsets(topic)
        dead = None
        if product.spec.errors.mode == "deadLetter":
            dead, _, _ = self._kafka_call(lambda k: k.dead_letters(product.dead_letter_topic))
        now = self._clock()
        out = []
        for store in product.spec.stores:
            positions, store_error, rebuild, store_refused = self._positions(product, namespace, store, secrets)
            group = product.consumer_group(store)
            members, group_error, group_refused = self._kafka_call(lambda k: k.group_members(group))  # noqa: B023
            key = (namespace, product.name, store.name)
            fresh_now = (end_offsets is not None and positions is not None and members
                         and all(positions.get(p, 0) >= end for p, end in end_offsets.items()))
            if fresh_now:
                self._fresh_at[key] = now
            if end_offsets is not None and positions is not None:
                self._watched_at.setdefault(key, now)
            fresh_at, watched_at = self._fresh_at.get(key), self._watched_at.get(key)
            out.append(StoreObservation(
                name=store.name, kind=store.kind, managed=store.managed,
                consumer=object_name(product.name, store.name, "consumer"),
                positions=positions, end_offsets=(end_offsets or {}) if kafka_error is None else None,
                consumers=members, dead_letters=None if dead is None else dead.get((f"{namespace}/{product.name}",
                                                                                    store.name), 0),
                error=store_error or kafka_error or group_error,
                stale_for=None if fresh_at is None else now - fresh_at,
                watched_for=None if watched_at is None else now - watched_at,
                rebuild=self._paced(key, rebuild, now),
                read_rate=self._read_rate(key, positions, now),
                kafka_refused=refused or group_refused,
                store_refused=store_refused,
            ))
        return tuple(out)

    def kafka_credentials(self, product: DataProduct, namespace: str, platform: str | None) -> str | None:
        """Why the product's consumers cannot use their Kafka client Secret (missing, a key
        missing, a file they would refuse, not readable by the operator), or None: it is usable,
        or none is configured. Read by name like a store's Secret, so it recovers by itself."""
        try:
            _, problem = self.kafka_secret_state(product, namespace, platform)
        except ProvisionerError as error:  # e.g. 403: the message names the request, never the Secret's data
            return f"cannot read Secret {namespace}/{kafka_secret_of(product, platform)}: {error}"
        return None if problem is None else f"{problem} (its consumers stay at 0 replicas until then)"

    def kafka_secret_state(self, product: DataProduct, namespace: str,
                           platform: str | None) -> tuple[str | None, str | None]:
        """The resourceVersion of the product's Kafka client Secret (None: it does not exist, or
        none is configured) and why it is not usable (None: it is). From the short-lived Secret
        cache; the check runs once per version. ProvisionerError when it cannot be read."""
        name = kafka_secret_of(product, platform)
        if name is None:
            return None, None
        secret = self._secret(namespace, name)
        version = None if secret is None else str(secret.get("metadata", {}).get("resourceVersion") or "") or None
        key = (namespace, name, product.spec.source.credentials is not None)
        with self._secrets_lock:
            checked = self._kafka_checks.get(key)
        if checked is not None and checked[0] == version and version is not None:
            return version, checked[1]
        problem = credentials_problem(product, namespace, name, secret)
        with self._secrets_lock:
            self._kafka_checks[key] = (version, problem)
        return version, problem

    def _secret(self, namespace: str, name: str, ttl: float | None = None) -> dict[str, Any] | None:
        """The Secret, read at most once per `ttl` (default `secret_ttl`) seconds; one that does
        not exist is asked for again after `secret_ttl`."""
        with self._secrets_lock:
            reading = self._reading.setdefault((namespace, name), threading.Lock())
        with reading:  # one read at a time per Secret: the refreshes of its namespace wait for it
            now = self._clock()
            with self._secrets_lock:
                cached = self._secrets.get((namespace, name))
            if cached is not None and now < cached[0]:
                return cached[1]
            secret = self._client.get("Secret", namespace, name)
            kept = self._secret_ttl if ttl is None or secret is None else ttl
            with self._secrets_lock:
                self._secrets[(namespace, name)] = (now + kept, secret)
            return secret

    def _suspect(self, namespace: str, name: str) -> None:
        """Read the Secret again within `secret_ttl`: what it held did not work."""
        expires = self._clock() + self._secret_ttl
        with self._secrets_lock:
            cached = self._secrets.get((namespace, name))
            if cached is not None and cached[0] > expires:
                self._secrets[(namespace, name)] = (expires, cached[1])

    def _end_offsets(self, topic: str) -> tuple[Any, str | None, tuple[str, str] | None]:
        """`_kafka_call` of the topic's end offsets, an answer reused for `ends_ttl` seconds: many
        products read one topic, and a resync observes them one after the other."""
        now = self._clock()
        with self._secrets_lock:
            cached = self._ends.get(topic)
        if cached is not None and now - cached[0] < self._ends_ttl:
            return dict(cached[1]), None, None
        answer = self._kafka_call(lambda k: k.end_offsets(topic))
        if answer[1] is None and answer[0] is not None:
            with self._secrets_lock:
                self._ends[topic] = (now, dict(answer[0]))
        return answer

    def _kafka_call(self, call: Callable[[KafkaObserver], Any],
                    ) -> tuple[Any, str | None, tuple[str, str] | None]:
        """The call's result, or why it failed and, when Kafka refused the operator's own
        credentials, certificate or ACLs, that refusal's class (KafkaAuthentication, ...)."""
        if self._kafka is None:
            return None, "no Kafka bootstrap configured", None
        try:
            return call(self._kafka), None, None
        except AccessError as error:
            return None, str(error), (type(error).__name__, str(error))
        except ProvisionerError as error:
            return None, str(error), None

    def _positions(self, product: DataProduct, namespace: str, store: StoreSpec, rendered: dict[str, dict[str, Any]],
                   ) -> tuple[dict[int, int] | None, str | None, tuple[str, dict[int, int]] | None, str | None]:
        """The store's positions, or why they could not be read and, when that is a reason of its
        own (a file missing from the Secret, a refusal), the reason; and, when a new version is
        being built beside it, that version and its own positions."""
        name, key = store_secret(product, store)
        if name in rendered:
            return self._positions_with(product, store, name, key, rendered[name])
        answer = self._positions_with(product, store, name, key, self._secret(namespace, name, self._store_secret_ttl))
        if answer[1] is not None:
            self._suspect(namespace, name)
        return answer

    def _positions_with(self, product: DataProduct, store: StoreSpec, name: str, key: str,
                        secret: dict[str, Any] | None,
                        ) -> tuple[dict[int, int] | None, str | None, tuple[str, dict[int, int]] | None, str | None]:
        missing_reason = None if store.managed else "StoreCredentialsMissing"  # a managed one's is rendered
        if secret is None:
            return None, f"Secret {name} does not exist", None, missing_reason
        data = secret.get("data") or {}
        raw = data.get(key)
        if raw is None:
            return None, f"Secret {name} has no key {key!r}", None, missing_reason
        url = base64.b64decode(raw).decode("utf-8", "replace").strip()
        missing = None if store.managed else files_problem(store.kind, url, set(data), f"Secret {name} key {key!r}")
        if missing is not None:
            return None, missing, None, "StoreCredentialsMissing"
        try:
            with _store_files(store.kind, url, data, f"{STORE_FILES_DIR}/{name}") as (resolved, as_mounted):
                try:
                    shared = self._redis(store, url, resolved)
                    positions = self._read_positions(product, store, resolved, shared)
                    return positions, None, self._rebuild(product, store, resolved, shared), None
                except ProvisionerError as error:
                    cause = error.__cause__
                    text = as_mounted(f"{error}: {cause}" if cause is not None else str(error))
                    refused = type(error).__name__ if isinstance(error, AccessError) else None
                    return None, scrub_secrets(text, url), None, refused
        except ValueError as error:
            return None, scrub_secrets(f"unusable URL in Secret {name}: {error}", url), None, None

    def _redis(self, store: StoreSpec, url: str, resolved: str) -> Any:
        """One Redis client per server URL, kept: opening a connection was most of a status
        refresh's CPU (redis-py's connection set-up and handshake), and many products share a
        server. None (open one per read) for Postgres, and for a URL naming certificate files,
        which differs at each observation (a fresh folder)."""
        if store.redis is None or resolved != url:
            return None
        with self._secrets_lock:
            shared = self._clients.get(url)
            if shared is None:
                if len(self._clients) >= _CLIENTS_MAX:  # URLs of deleted products or rotated passwords
                    self._clients.pop(next(iter(self._clients))).close()
                shared = self._clients[url] = redis_connect.client(url, timeout=self._store_timeout)
            return shared

    def _read_positions(self, product: DataProduct, store: StoreSpec, url: str, shared: Any = None) -> dict[int, int]:
        handle = open_store(product, store, url, timeout=self._store_timeout, shared=shared)
        try:
            return handle.read_positions()
        finally:
            handle.close()

    def _rebuild(self, product: DataProduct, store: StoreSpec, url: str,
                 shared: Any = None) -> tuple[str, dict[int, int]] | None:
        """The version being built beside the live store (its record says so) and its positions."""
        record = read_version(product, store, url, timeout=self._store_timeout, shared=shared)
        if record is None or record.shadow is None:
            return None
        shadow_spec, _ = shadow_for(product, store, record.shadow.version)
        return record.shadow.version, self._read_positions(product, shadow_spec, url, shared)

    def _read_rate(self, key: tuple[str, str, str], positions: dict[int, int] | None, now: float) -> float | None:
        """Records per second the store's consumers read since the previous observation (None on the first)."""
        if positions is None:
            return None
        read = sum(positions.values())
        mark = self._read_marks.get(key)
        self._read_marks[key] = (now, read)
        if mark is None or now <= mark[0]:
            return None
        return max(0.0, (read - mark[1]) / (now - mark[0]))

    def _paced(self, key: tuple[str, str, str], rebuild: tuple[str, dict[int, int]] | None,
               now: float) -> RebuildObservation | None:
        """The rebuild with its pace since the previous observation of the same version."""
        if rebuild is None:
            self._rebuild_marks.pop(key, None)
            return None
        version, positions = rebuild
        replayed = sum(positions.values())
        rate = None
        mark = self._rebuild_marks.get(key)
        if mark is not None and mark[0] == version and now > mark[1]:
            rate = max(0.0, (replayed - mark[2]) / (now - mark[1])) or None
        self._rebuild_marks[key] = (version, now, replayed)
        return RebuildObservation(version, positions, rate)


@contextmanager
def _store_files(kind: str, url: str, data: dict[str, Any],
                 mount: str) -> Iterator[tuple[str, Callable[[str], str]]]:
    """`url` with the files it names (keys of its Secret, checked) written to a folder only this
    process may read, removed afterwards (`url` itself when it names none); and a function that
    shows that folder in a message as the consumers' `mount`, so a message stays the same from one
    observation to the next (a changed one would be written to the status each time)."""
    named = files_named(kind, url)
    if not named:
        yield url, lambda text: text
        return
    with tempfile.TemporaryDirectory(prefix="store-files-") as folder:  # created 0700
        for key in filter(None, map(secret_key, named.values())):  # each one checked: a key of the Secret
            target = Path(folder) / key
            target.write_bytes(base64.b64decode(data[key]))
            target.chmod(0o600)
        yield resolve(kind, url, folder), lambda text: text.replace(folder, mount)
