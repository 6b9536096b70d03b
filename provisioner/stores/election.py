"""Electing one rebuilder per store, so that with `consumer.replicas > 1` one replica builds the new
version (its shadow consumer group then gets every partition) and performs the switch.

- Postgres: a session-level advisory lock (`pg_try_advisory_lock`) on two keys derived from the
  store's schema and consumer group (the identity of its version record), held on a dedicated
  connection for as long as the rebuild runs. The server releases it when that session ends, so a
  killed rebuilder frees it at once.
- Redis: a lease key `0xFF provisioner:rebuilder:<group>` set with NX and a TTL to a random token,
  renewed by the holder well within the TTL and deleted by compare-and-delete; a killed holder's
  lease expires after the TTL.

Each holds also fences the switch itself (`Versions.switch(..., election=...)`): the Postgres
switch checks in its transaction that the lock is still held by this election's session, the Redis
switch script that the lease still holds this token. A rebuilder that lost its election (a
connection cut, a pause longer than the lease) can therefore never switch.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import psycopg
import redis
from redis.exceptions import RedisError

from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores import postgres_connect, redis_connect
from provisioner.stores.base import StoreError

__all__ = [
    "LEASE_KEY_PREFIX",
    "LEASE_TTL_SECONDS",
    "Election",
    "LeaseTiming",
    "PostgresElection",
    "RedisElection",
    "advisory_keys",
    "open_election",
]

LEASE_KEY_PREFIX: Final = b"\xffprovisioner:rebuilder:"
LEASE_TTL_SECONDS: Final = 10.0

_RENEW_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def advisory_keys(schema: str, group: str) -> tuple[int, int]:
    """The two signed 32-bit keys of a store's rebuilder lock (a fixed namespace, then the store)."""

    def int32(text: str) -> int:
        value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
        return value - (1 << 32) if value >= 1 << 31 else value

    return int32("provisioner:rebuilder"), int32(f"{schema}\x00{group}")


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """When a lease holder renews and when it must consider its lease lost (pure, for tests)."""

    ttl: float = LEASE_TTL_SECONDS

    @property
    def renew_every(self) -> float:
        # A third of the TTL: two renewals may fail (a slow server) before the lease can expire.
        return self.ttl / 3

    def due(self, last_renewed: float, now: float) -> bool:
        return now - last_renewed >= self.renew_every

    def expired(self, last_renewed: float, now: float) -> bool:
        # Counted from before the renewal was sent, so the holder gives up no later than the server.
        return now - last_renewed >= self.ttl


class Election(Protocol):
    """One store's rebuilder election, as seen by one replica."""

    def try_acquire(self) -> bool:
        """Become the rebuilder if no one else is; True if this replica holds the election now."""

    def holds(self) -> bool:
        """Keep the election (renew a lease) and say whether it is still held; False once lost."""

    def release(self) -> None:
        """Give the election up (a no-op if not held)."""

    def close(self) -> None:
        """Release, and close connections."""


class PostgresElection:
    """The advisory lock on a dedicated autocommit connection; `backend_pid` names its session."""

    def __init__(self, product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0) -> None:
        assert store.postgres is not None
        self._url = url
        self._timeout = timeout
        self._group = product.consumer_group(store)
        self.keys = advisory_keys(store.postgres.db_schema, self._group)
        self._connection: psycopg.Connection[Any] | None = None
        self.backend_pid: int | None = None

    def _error(self, doing: str, error: BaseException) -> StoreError:
        self._drop()
        return postgres_connect.failure(self._url, doing, error)

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
        self.backend_pid = None

    def try_acquire(self) -> bool:
        if self.backend_pid is not None and self.holds():
            return True
        if self._connection is None or self._connection.closed:
            try:
                self._connection = postgres_connect.connect(
                    self._url, timeout=self._timeout, application_name=f"provisioner rebuilder {self._group}")
            except StoreError:
                self._drop()
                raise
        try:
            row = self._connection.execute("SELECT pg_try_advisory_lock(%s, %s), pg_backend_pid()",
                                           self.keys).fetchone()
        except psycopg.Error as error:
            raise self._error("electing the rebuilder failed", error) from None
        if row is None or not row[0]:
            return False
        self.backend_pid = int(row[1])
        return True

    def holds(self) -> bool:
        if self._connection is None or self.backend_pid is None:
            return False
        try:
            self._connection.execute("SELECT 1")
        except psycopg.Error:
            self._drop()  # the session is gone, and the lock with it
            return False
        return True

    def release(self) -> None:
        if self._connection is not None and self.backend_pid is not None:
            try:
                self._connection.execute("SELECT pg_advisory_unlock(%s, %s)", self.keys)
            except psycopg.Error:
                self._drop()
        self.backend_pid = None

    def close(self) -> None:
        self.release()
        self._drop()


class RedisElection:
    """The lease key, renewed by `holds()`; `token` names this holder."""

    def __init__(self, product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0,
                 timing: LeaseTiming | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._timeout = timeout
        self.key = LEASE_KEY_PREFIX + product.consumer_group(store).encode()
        self.token = secrets.token_hex(16)
        self.timing = timing or LeaseTiming()
        self._clock = clock
        self._renewed: float | None = None  # when the last successful set or renewal was sent
        self._client: redis.Redis | None = None

    def _connect(self) -> redis.Redis:
        if self._client is None:
            self._client = redis_connect.client(self._url, timeout=self._timeout)
        return self._client

    def _error(self, doing: str, error: BaseException) -> StoreError:
        if self._client is not None:
            self._client.close()
            self._client = None
        return redis_connect.failure(self._url, doing, error)

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.timing.ttl * 1000))

    def try_acquire(self) -> bool:
        if self._renewed is not None and self.holds():
            return True
        sent = self._clock()
        try:
            acquired = self._connect().set(self.key, self.token, nx=True, px=self._ttl_ms)
        except RedisError as error:
            raise self._error("electing the rebuilder failed", error) from None
        if acquired:
            self._renewed = sent
            return True
        return False

    def holds(self) -> bool:
        if self._renewed is None:
            return False
        now = self._clock()
        if self.timing.expired(self._renewed, now):
            self._renewed = None
            return False
        if not self.timing.due(self._renewed, now):
            return True
        try:
            renewed = self._connect().eval(_RENEW_LUA, 1, self.key, self.token, self._ttl_ms)
        except RedisError:
            self._client = None
            return True  # not renewed this time; `expired` decides when to give up
        if not renewed:
            self._renewed = None
            return False
        self._renewed = now
        return True

    def release(self) -> None:
        if self._renewed is None:
            return
        self._renewed = None
        try:
            self._connect().eval(_RELEASE_LUA, 1, self.key, self.token)
        except RedisError:
            self._client = None  # the lease expires by itself

    def close(self) -> None:
        self.release()
        if self._client is not None:
            self._client.close()
            self._client = None


def open_election(product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0,
                  lease_seconds: float | None = None) -> Election:
    """The election of `store`'s rebuilder; `lease_seconds` is a Redis lease's TTL (None: default)."""
    if store.postgres is not None:
        return PostgresElection(product, store, url, timeout=timeout)
    timing = LeaseTiming(lease_seconds) if lease_seconds is not None else None
    return RedisElection(product, store, url, timeout=timeout, timing=timing)
