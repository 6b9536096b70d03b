"""Versions of a store: which spec built the live store, the shadow being built beside it, the switch.

Every store keeps a version record next to its positions: the fingerprint of the content settings
that built it (`provisioner.spec.fingerprint`), that spec as JSON (so the old version can keep
following the stream while a new one is built), the shadow under construction if any, and a
replay request. Postgres keeps them in the `_provisioner_versions` table of the store's schema;
Redis in one hash per consumer group under the 0xFF namespace the positions use.

A shadow is the same store classes with a derived target and its own consumer group
`<group>.v<version>` (so its positions are its own):

- Postgres: the table `<table>__v<version>` (the base shortened so the name fits 63 characters);
- Redis: keys under `U+FFFF provisioner:shadow:<shadow group>:`. No key prefix starts with the
  noncharacter U+FFFF (the spec refuses one that does), so a reader's `SCAN keyPrefix*` never sees
  a shadow key. (A store with an empty key prefix owns the whole database: its readers see shadow
  keys and should skip keys starting with U+FFFF, as they skip the 0xFF positions.)

`switch` makes the shadow the live store in one atomic step, so a reader sees the old version or
the new one, never an empty, half-built or mixed store:

- Postgres, one transaction: the schema's advisory lock, an exclusive lock on the live table, drop
  it, rename the shadow to the live name (and its primary key to `<table>_pkey`), replace the live
  group's positions with the shadow's, record the new version. Readers wait on the lock for the
  moment the transaction takes, then read the new table.
- Redis, one Lua script: delete the live keys, rename every shadow key to its live name (TTLs are
  kept), move the shadow's positions to the live group, record the new version. Redis runs a script
  alone, so readers see before or after; a large store makes the script take a while (about a
  second per few hundred thousand keys), during which Redis answers nobody else.

Every statement's identifiers are quoted with `quote_identifier`; every value is a bind parameter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

import psycopg
import redis
from psycopg import errors
from redis.exceptions import RedisError

from provisioner.errors import ConflictError
from provisioner.spec.fingerprint import fingerprint
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.spec.names import (
    ORDER_HORIZON_TABLE,
    ORDER_MARKERS_TABLE,
    POSITIONS_TABLE,
    VERSIONS_TABLE,
    quote_identifier,
)
from provisioner.stores import postgres_connect, redis_connect
from provisioner.stores.base import Store, StoreError
from provisioner.stores.election import Election, PostgresElection, RedisElection
from provisioner.stores.redis import (
    ORDER_HORIZON_PREFIX,
    ORDER_KEY_PREFIX,
    ORDER_SEED_PREFIX,
    POSITIONS_KEY_PREFIX,
    VERSIONS_KEY_PREFIX,
    chunks,
    glob_escape,
)
from provisioner.stores.registry import open_store

__all__ = [
    "SHADOW_KEY_PREFIX",
    "VERSIONS_KEY_PREFIX",
    "VERSIONS_TABLE",
    "NotRebuilder",
    "ReplayRequest",
    "Shadow",
    "VersionRecord",
    "Versions",
    "open_shadow_store",
    "open_versions",
    "read_version",
    "shadow_for",
    "shadow_table_name",
    "version_id",
    "versions_of",
]

# U+FFFF is a noncharacter, never meant for interchange: no key prefix may start with it (the spec
# refuses one that does), so a reader's SCAN of `keyPrefix*` never sees a shadow key.
SHADOW_KEY_PREFIX: Final = "\uffffprovisioner:shadow:"
_IDENTIFIER_MAX: Final = 63
SWITCH_LOCK_TIMEOUT_MS: Final = 60_000
_SCAN_COUNT: Final = 1000


class NotRebuilder(ConflictError):
    """The switch was refused: this replica no longer holds the rebuilder election. Retrying the
    switch cannot help; its caller reads the version again and decides (another replica may build)."""

    retryable: ClassVar[bool] = False


def version_id(fingerprint: str, generation: int = 0) -> str:
    """The short name of a version: 8 hex digits of the fingerprint, plus `g<n>` for a replay."""
    return fingerprint[:8] if generation == 0 else f"{fingerprint[:8]}g{generation}"


def _shorten(name: str, suffix: str, limit: int = _IDENTIFIER_MAX) -> str:
    """`name + suffix` within `limit` characters: a long name keeps a hash of itself (deterministic)."""
    if len(name) + len(suffix) <= limit:
        return name + suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: limit - len(suffix) - 7]}_{digest}{suffix}"


def shadow_table_name(table: str, version: str) -> str:
    """The Postgres table a shadow of `table` is built in."""
    return _shorten(table, f"__v{version}")


def _pkey_name(table: str) -> str:
    return _shorten(table, "_pkey")


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """`provisioner replay` asked for a rebuild of the same spec, from `start_from`, up to `until`."""

    start_from: str | None = None
    until: str | None = None

    def to_json(self) -> str:
        return json.dumps({"from": self.start_from, "until": self.until})

    @classmethod
    def from_json(cls, text: str) -> ReplayRequest:
        data = json.loads(text)
        return cls(start_from=data.get("from"), until=data.get("until"))


@dataclass(frozen=True, slots=True)
class Shadow:
    """A version being built beside the live store: its name, consumer group and target."""

    version: str
    group: str
    target: str  # Postgres: the table; Redis: the key prefix

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "group": self.group, "target": self.target})

    @classmethod
    def from_json(cls, text: str) -> Shadow:
        data = json.loads(text)
        return cls(version=str(data["version"]), group=str(data["group"]), target=str(data["target"]))


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """What the store knows about the version it holds."""

    fingerprint: str
    spec: dict[str, Any] | None  # the product that built it, as JSON
    store: str  # that product's store name
    generation: int = 0
    shadow: Shadow | None = None
    replay: ReplayRequest | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return version_id(self.fingerprint, self.generation)

    def product(self) -> tuple[DataProduct, StoreSpec] | None:
        """The product and store spec that built the live version (None if unreadable)."""
        if self.spec is None:
            return None
        try:
            product = DataProduct.model_validate(self.spec)
            return product, product.store(self.store)
        except (ValueError, KeyError):
            return None


def product_json(product: DataProduct) -> dict[str, Any]:
    return product.model_dump(mode="json", by_alias=True, exclude_none=True)


def shadow_for(product: DataProduct, store: StoreSpec, version: str) -> tuple[StoreSpec, Shadow]:
    """The store spec a shadow version is built with, and its description for the version record.

    The name becomes `<store>.v<version>`, which makes the consumer group (and so the positions)
    the shadow's own; the target is derived so it never overlaps the live store.
    """
    name = f"{store.name}.v{version}"
    group = f"{product.consumer_group(store)}.v{version}"
    if store.postgres is not None:
        table = shadow_table_name(product.table(store), version)
        spec = store.model_copy(update={"name": name, "postgres": store.postgres.model_copy(update={"table": table})})
        return spec, Shadow(version, group, table)
    assert store.redis is not None
    prefix = f"{SHADOW_KEY_PREFIX}{group}:"
    spec = store.model_copy(update={"name": name, "redis": store.redis.model_copy(update={"key_prefix": prefix})})
    return spec, Shadow(version, group, prefix)


def open_shadow_store(product: DataProduct, shadow_spec: StoreSpec, url: str, *,
                      timeout: float = 10.0) -> Store:
    """The store a shadow is hydrated through: the ordinary store classes (connects lazily)."""
    return open_store(product, shadow_spec, url, timeout=timeout)


class Versions(Protocol):
    """The version record of one (product, store) and the operations that change versions."""

    def read(self) -> VersionRecord | None:
        """The record, or None for a store that never recorded one (new, or older than versions)."""

    def record(self, product: DataProduct, store: StoreSpec) -> None:
        """Record `product` as the spec of the live version (fingerprint, spec, generation kept)."""

    def request_replay(self, request: ReplayRequest) -> None:
        """Ask the next consumer start to rebuild the same spec (a new generation)."""

    def begin(self, shadow: Shadow) -> None:
        """Record that `shadow` is being built (before it is created, so it can never leak)."""

    def drop(self, shadow: Shadow) -> None:
        """Drop a shadow's data and positions, and forget it."""

    def switch(self, old: tuple[DataProduct, StoreSpec] | None, product: DataProduct, store: StoreSpec,
               shadow: Shadow, generation: int, *, election: Election | None = None) -> None:
        """Make `shadow` the live store of `product`/`store` in one atomic step and drop the old one;
        with `election`, only while it still holds (else NotRebuilder and nothing changes)."""

    def close(self) -> None:
        """Release connections."""


def open_versions(product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0,
                  shared: redis.Redis | None = None) -> Versions:
    """`shared`: a Redis client for `url` to use (and leave open) instead of opening one."""
    if store.postgres is not None:
        return PostgresVersions(product, store, url, timeout=timeout)
    return RedisVersions(product, store, url, timeout=timeout, shared=shared)


@contextlib.contextmanager
def versions_of(product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0,
                shared: redis.Redis | None = None) -> Iterator[Versions]:
    """The store's versions for one block, closed when it ends, however it ends."""
    versions = open_versions(product, store, url, timeout=timeout, shared=shared)
    try:
        yield versions
    finally:
        versions.close()


def read_version(product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0,
                 shared: redis.Redis | None = None) -> VersionRecord | None:
    """The store's version record, read once (`shared`: see `open_versions`)."""
    with versions_of(product, store, url, timeout=timeout, shared=shared) as versions:
        return versions.read()


def _fingerprint(product: DataProduct, store: StoreSpec) -> str:
    return fingerprint(product, store)


# -- Postgres ---------------------------------------------------------------------------------


class PostgresVersions:
    def __init__(self, product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0) -> None:
        assert store.postgres is not None
        self._url = url
        self._timeout = timeout
        self._schema = store.postgres.db_schema
        self._group = product.consumer_group(store)
        self._topic = product.spec.source.topic
        q = quote_identifier
        self._versions = f"{q(self._schema)}.{q(VERSIONS_TABLE)}"
        self._positions = f"{q(self._schema)}.{q(POSITIONS_TABLE)}"
        self._connection: psycopg.Connection[Any] | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        self._connection = postgres_connect.connect(self._url, timeout=self._timeout,
                                                    application_name=f"provisioner versions {self._group}")
        return self._connection

    def _error(self, doing: str, error: BaseException) -> StoreError:
        if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
            self.close()
        return postgres_connect.failure(self._url, doing, error)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _lock(self, connection: psycopg.Connection[Any]) -> None:
        # The same lock PostgresStore.ensure_schema takes: schema changes of one schema in turn.
        connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"provisioner:{self._schema}",))

    def _ensure(self, connection: psycopg.Connection[Any]) -> None:
        found = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self._schema,))
        if found.fetchone() is None:
            connection.execute(f"CREATE SCHEMA {quote_identifier(self._schema)}")
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {self._versions} (consumer text PRIMARY KEY, fingerprint text NOT NULL, "
            "spec text, store text NOT NULL, generation integer NOT NULL DEFAULT 0, shadow text, replay text, "
            "updated_at timestamptz NOT NULL DEFAULT now())"
        )

    def read(self) -> VersionRecord | None:
        connection = self._connect()
        try:
            row = connection.execute(
                f"SELECT fingerprint, spec, store, generation, shadow, replay FROM {self._versions} "  # noqa: S608
                "WHERE consumer = %s", (self._group,)).fetchone()
        except errors.UndefinedTable:
            return None
        except psycopg.Error as error:
            raise self._error("reading the version failed", error) from None
        if row is None:
            return None
        fingerprint, spec, store, generation, shadow, replay = row
        return VersionRecord(
            fingerprint=fingerprint, spec=json.loads(spec) if spec else None, store=store,
            generation=int(generation), shadow=Shadow.from_json(shadow) if shadow else None,
            replay=ReplayRequest.from_json(replay) if replay else None,
        )

    def _upsert_record(self, connection: psycopg.Connection[Any], product: DataProduct, store: StoreSpec,
                       generation: int | None) -> None:
        fp = _fingerprint(product, store)
        spec = json.dumps(product_json(product))
        if generation is None:
            connection.execute(
                f"INSERT INTO {self._versions} (consumer, fingerprint, spec, store) VALUES (%s, %s, %s, %s) "  # noqa: S608
                "ON CONFLICT (consumer) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, spec = EXCLUDED.spec, "
                "store = EXCLUDED.store, updated_at = now()",
                (self._group, fp, spec, store.name))
        else:
            connection.execute(
                f"INSERT INTO {self._versions} (consumer, fingerprint, spec, store, generation) "  # noqa: S608
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (consumer) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, "
                "spec = EXCLUDED.spec, store = EXCLUDED.store, generation = EXCLUDED.generation, shadow = NULL, "
                "replay = NULL, updated_at = now()",
                (self._group, fp, spec, store.name, generation))

    def _run(self, doing: str, work: Any) -> None:
        connection = self._connect()
        try:
            with connection.transaction():
                self._lock(connection)
                self._ensure(connection)
                work(connection)
        except psycopg.Error as error:
            raise self._error(doing, error) from None

    def record(self, product: DataProduct, store: StoreSpec) -> None:
        self._run("recording the version failed", lambda c: self._upsert_record(c, product, store, None))

    def request_replay(self, request: ReplayRequest) -> None:
        def work(connection: psycopg.Connection[Any]) -> None:
            cursor = connection.execute(
                f"UPDATE {self._versions} SET replay = %s WHERE consumer = %s",  # noqa: S608
                (request.to_json(), self._group))
            if cursor.rowcount != 1:
                raise StoreError(f"{self._group} has no version record yet: start its consumer once first")

        self._run("requesting a replay failed", work)

    def begin(self, shadow: Shadow) -> None:
        self._run("recording the shadow failed", lambda c: c.execute(
            f"UPDATE {self._versions} SET shadow = %s WHERE consumer = %s",  # noqa: S608
            (shadow.to_json(), self._group)))

    def drop(self, shadow: Shadow) -> None:
        def work(connection: psycopg.Connection[Any]) -> None:
            table = f"{quote_identifier(self._schema)}.{quote_identifier(shadow.target)}"
            connection.execute(f"DROP TABLE IF EXISTS {table}")
            if self._has_positions(connection):
                connection.execute(f"DELETE FROM {self._positions} WHERE consumer = %s",  # noqa: S608
                                   (shadow.group,))
            self._move_markers(connection, shadow.group, None)
            connection.execute(f"UPDATE {self._versions} SET shadow = NULL WHERE consumer = %s",  # noqa: S608
                               (self._group,))

        self._run("dropping a shadow failed", work)

    def _move_markers(self, connection: psycopg.Connection[Any], source: str, target: str | None) -> None:
        """`spec.order`: the markers of group `source` become `target`'s (replacing its own), or go."""
        markers = f"{quote_identifier(self._schema)}.{quote_identifier(ORDER_MARKERS_TABLE)}"
        found = connection.execute("SELECT to_regclass(%s)", (markers,)).fetchone()
        if found is None or found[0] is None:
            return
        # The markers' trigger raises the target's horizon with the moved markers; the source's goes.
        horizon = f"{quote_identifier(self._schema)}.{quote_identifier(ORDER_HORIZON_TABLE)}"
        found = connection.execute("SELECT to_regclass(%s)", (horizon,)).fetchone()
        if found is not None and found[0] is not None:
            connection.execute(f"DELETE FROM {horizon} WHERE consumer = %s", (source,))  # noqa: S608
        if target is None:
            connection.execute(f"DELETE FROM {markers} WHERE consumer = %s", (source,))  # noqa: S608
            return
        connection.execute(f"DELETE FROM {markers} WHERE consumer = %s", (target,))  # noqa: S608
        connection.execute(f"UPDATE {markers} SET consumer = %s WHERE consumer = %s", (target, source))  # noqa: S608

    def _has_positions(self, connection: psycopg.Connection[Any]) -> bool:
        row = connection.execute("SELECT to_regclass(%s)", (self._positions,)).fetchone()
        return row is not None and row[0] is not None

    def switch(self, old: tuple[DataProduct, StoreSpec] | None, product: DataProduct, store: StoreSpec,
               shadow: Shadow, generation: int, *, election: Election | None = None) -> None:
        q = quote_identifier
        live_table = product.table(store)
        live = f"{q(self._schema)}.{q(live_table)}"
        shadow_table = f"{q(self._schema)}.{q(shadow.target)}"
        retired: list[str] = [live_table]
        if old is not None and old[1].postgres is not None and old[0].table(old[1]) != live_table:
            retired.append(old[0].table(old[1]))

        def work(connection: psycopg.Connection[Any]) -> None:
            connection.execute(f"SET LOCAL lock_timeout = {SWITCH_LOCK_TIMEOUT_MS}")
            # The version row first: fenced writers lock it (key share) before anything else, so taking
            # it before the tables cannot deadlock with them, and once it is ours no batch of the old
            # version lands any more (each one after the switch finds the new version and is refused).
            connection.execute(f"SELECT 1 FROM {self._versions} WHERE consumer = %s FOR UPDATE",  # noqa: S608
                               (self._group,))
            if isinstance(election, PostgresElection):
                self._check_elected(connection, election)
            for name in retired:
                if self._exists(connection, name):
                    connection.execute(f"LOCK TABLE {q(self._schema)}.{q(name)} IN ACCESS EXCLUSIVE MODE")
            for name in retired:
                connection.execute(f"DROP TABLE IF EXISTS {q(self._schema)}.{q(name)}")
            connection.execute(f"ALTER TABLE {shadow_table} RENAME TO {q(live_table)}")
            constraint = connection.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
                (live,)).fetchone()
            if constraint is not None and constraint[0] != _pkey_name(live_table):
                connection.execute(f"ALTER TABLE {live} RENAME CONSTRAINT {q(constraint[0])} "
                                   f"TO {q(_pkey_name(live_table))}")
            connection.execute(f"DELETE FROM {self._positions} WHERE consumer = %s",  # noqa: S608
                               (self._group,))
            connection.execute(f"UPDATE {self._positions} SET consumer = %s WHERE consumer = %s",  # noqa: S608
                               (self._group, shadow.group))
            self._move_markers(connection, shadow.group, self._group)
            self._upsert_record(connection, product, store, generation)

        self._run("switching versions failed", work)

    @staticmethod
    def _check_elected(connection: psycopg.Connection[Any], election: PostgresElection) -> None:
        """The rebuilder's advisory lock is still held by the election's session."""
        held = election.backend_pid is not None and connection.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s "
            "AND classid = (%s::bigint & 4294967295)::text::oid AND objid = (%s::bigint & 4294967295)::text::oid "
            "AND objsubid = 2",
            (election.backend_pid, election.keys[0], election.keys[1])).fetchone() is not None
        if not held:
            raise NotRebuilder("the switch was refused: this replica is no longer the store's rebuilder")

    def _exists(self, connection: psycopg.Connection[Any], table: str) -> bool:
        row = connection.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s", (self._schema, table)).fetchone()
        return row is not None


# -- Redis ------------------------------------------------------------------------------------

# ARGV: 1 the rebuilder's lease key and 2 its token ('' '': unguarded; a lease holding another token
# refuses the switch), then 3 the shadow's key prefix, 4 its positions key, 5 the live positions key,
# 6 the version key, 7 the live key prefix, 8 how many prefixes to clear, then those prefixes, then
# the version record's field/value pairs. Keys starting with 0xFF (positions, versions) or U+FFFF (shadows)
# are never cleared, even under an empty prefix. The order values of `spec.order` (ORDER_KEY_PREFIX
# followed by a data key) are cleared and renamed with their keys, and so are the order horizons
# and their seeds (ORDER_HORIZON_PREFIX and ORDER_SEED_PREFIX followed by a key prefix).
_SWITCH_LUA: Final = r"""
local function escape(s) return (string.gsub(s, "[%*%?%[%]\\]", "\\%0")) end
local function scan_all(prefix)
  local keys, cursor = {}, "0"
  repeat
    local reply = redis.call("SCAN", cursor, "MATCH", escape(prefix) .. "*", "COUNT", 1000)
    cursor = reply[1]
    for _, k in ipairs(reply[2]) do keys[#keys + 1] = k end
  until cursor == "0"
  return keys
end
local function clear_positions(pk)
  for _, p in ipairs(redis.call("SMEMBERS", pk .. ":partitions")) do redis.call("DEL", pk .. ":" .. p) end
  redis.call("DEL", pk .. ":partitions")
end
if ARGV[2] ~= '' and redis.call("GET", ARGV[1]) ~= ARGV[2] then return -1 end
local shadow, shadow_pk, live_pk, version_key, live = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local cleared = tonumber(ARGV[8])
for i = 9, 8 + cleared do
  for _, k in ipairs(scan_all(ARGV[i])) do
    if string.byte(k, 1) ~= 255 and string.sub(k, 1, 3) ~= "\239\191\191" then redis.call("UNLINK", k) end
  end
end
local markers = "\255provisioner:order:"
for i = 9, 8 + cleared do
  for _, k in ipairs(scan_all(markers .. ARGV[i])) do
    if string.sub(k, #markers + 1, #markers + 3) ~= "\239\191\191" then redis.call("UNLINK", k) end
  end
end
local moved = 0
for _, k in ipairs(scan_all(shadow)) do
  redis.call("RENAME", k, live .. string.sub(k, #shadow + 1))
  moved = moved + 1
end
for _, k in ipairs(scan_all(markers .. shadow)) do
  redis.call("RENAME", k, markers .. live .. string.sub(k, #markers + #shadow + 1))
end
for _, kind in ipairs({"\255provisioner:order-horizon:", "\255provisioner:order-seed:"}) do
  for i = 9, 8 + cleared do redis.call("DEL", kind .. ARGV[i]) end
  if redis.call("EXISTS", kind .. shadow) == 1 then redis.call("RENAME", kind .. shadow, kind .. live) end
end
clear_positions(live_pk)
for _, p in ipairs(redis.call("SMEMBERS", shadow_pk .. ":partitions")) do
  local offset = redis.call("GET", shadow_pk .. ":" .. p)
  if offset then
    redis.call("SET", live_pk .. ":" .. p, offset)
    redis.call("SADD", live_pk .. ":partitions", p)
  end
end
clear_positions(shadow_pk)
redis.call("HDEL", version_key, "shadow", "replay")
for i = 9 + cleared, #ARGV, 2 do redis.call("HSET", version_key, ARGV[i], ARGV[i + 1]) end
return moved
"""


class RedisVersions:
    def __init__(self, product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0,
                 shared: redis.Redis | None = None) -> None:
        assert store.redis is not None
        self._url = url
        self._timeout = timeout
        self._group = product.consumer_group(store)
        self._topic = product.spec.source.topic
        self.key = VERSIONS_KEY_PREFIX + self._group.encode()
        self._shared = shared
        self._client: redis.Redis | None = shared

    def _connect(self) -> redis.Redis:
        if self._client is None:
            # A switch's script renames every key of the store: its reply may take a while.
            self._client = redis_connect.client(self._url, timeout=self._timeout,
                                                read_timeout=max(self._timeout, 120.0))
        return self._client

    def _error(self, doing: str, error: BaseException) -> StoreError:
        self.close()
        return redis_connect.failure(self._url, doing, error)

    def close(self) -> None:
        if self._client is not None and self._client is not self._shared:
            self._client.close()
        self._client = None

    def _positions_key(self, group: str) -> bytes:
        return POSITIONS_KEY_PREFIX + f"{group}:{self._topic}".encode()

    def read(self) -> VersionRecord | None:
        try:
            raw = self._connect().hgetall(self.key)
        except RedisError as error:
            raise self._error("reading the version failed", error) from None
        if not raw:
            return None
        data = {_text(k): _text(v) for k, v in raw.items()}
        return VersionRecord(
            fingerprint=data["fingerprint"], spec=json.loads(data["spec"]) if data.get("spec") else None,
            store=data.get("store", ""), generation=int(data.get("generation", "0")),
            shadow=Shadow.from_json(data["shadow"]) if data.get("shadow") else None,
            replay=ReplayRequest.from_json(data["replay"]) if data.get("replay") else None,
        )

    @staticmethod
    def _fields(product: DataProduct, store: StoreSpec) -> dict[str, str]:
        return {"fingerprint": _fingerprint(product, store), "spec": json.dumps(product_json(product)),
                "store": store.name}

    def record(self, product: DataProduct, store: StoreSpec) -> None:
        try:
            self._connect().hset(self.key, mapping=self._fields(product, store))  # type: ignore[arg-type]
        except RedisError as error:
            raise self._error("recording the version failed", error) from None

    def request_replay(self, request: ReplayRequest) -> None:
        try:
            client = self._connect()
            if not client.exists(self.key):
                raise StoreError(f"{self._group} has no version record yet: start its consumer once first")
            client.hset(self.key, "replay", request.to_json())
        except RedisError as error:
            raise self._error("requesting a replay failed", error) from None

    def begin(self, shadow: Shadow) -> None:
        try:
            self._connect().hset(self.key, "shadow", shadow.to_json())
        except RedisError as error:
            raise self._error("recording the shadow failed", error) from None

    def drop(self, shadow: Shadow) -> None:
        """Positions first (an interrupted drop leaves a shadow that would start over), then the keys,
        then the record's mention of it. Repeating it after a crash finishes the job."""
        prefix = shadow.target.encode()
        pk = self._positions_key(shadow.group)
        try:
            client = self._connect()
            partitions = [_text(p) for p in client.smembers(pk + b":partitions")]
            client.delete(*(pk + b":" + p.encode() for p in partitions), pk + b":partitions")
            pattern = glob_escape(prefix) + b"*"
            for keys in chunks(client.scan_iter(match=pattern, count=_SCAN_COUNT)):
                client.unlink(*keys)
            markers = glob_escape(ORDER_KEY_PREFIX + prefix) + b"*"
            for keys in chunks(client.scan_iter(match=markers, count=_SCAN_COUNT)):
                client.unlink(*keys)
            client.unlink(ORDER_HORIZON_PREFIX + prefix, ORDER_SEED_PREFIX + prefix)
            client.hdel(self.key, "shadow")
        except RedisError as error:
            raise self._error("dropping a shadow failed", error) from None

    def switch(self, old: tuple[DataProduct, StoreSpec] | None, product: DataProduct, store: StoreSpec,
               shadow: Shadow, generation: int, *, election: Election | None = None) -> None:
        live = product.key_prefix(store).encode()
        cleared = [live]
        if old is not None and old[1].redis is not None:
            previous = old[0].key_prefix(old[1]).encode()
            if previous != live:
                cleared.append(previous)
        fields = {**self._fields(product, store), "generation": str(generation)}
        lease = [election.key, election.token.encode()] if isinstance(election, RedisElection) else [b"", b""]
        args: list[bytes] = [*lease, shadow.target.encode(), self._positions_key(shadow.group),
                             self._positions_key(self._group), self.key, live, b"%d" % len(cleared), *cleared]
        for name, value in fields.items():
            args += [name.encode(), value.encode()]
        try:
            moved = self._connect().eval(_SWITCH_LUA, 0, *args)
        except RedisError as error:
            raise self._error("switching versions failed", error) from None
        if moved == -1:
            raise NotRebuilder("the switch was refused: this replica's rebuilder lease expired")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
