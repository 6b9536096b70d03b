"""Whether a store can be reached and written as its consumer will, leaving nothing behind: `doctor`.

The connection is opened by the backend's connection module (the consumer's TLS, timeouts and
error mapping). Writing is tried the way the consumer writes, then undone:

- Postgres: in one transaction rolled back, the store's schema and a table in it are created and a
  row inserted (the privileges the consumer's first start needs);
- Redis: one script writes a key under the positions' namespace and one under the store's key
  prefix and deletes both before it returns (scripting, both key patterns of the user's ACL; no
  reader can see the keys, a script runs alone).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict

from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.spec.names import quote_identifier
from provisioner.stores import postgres_connect, redis_connect
from provisioner.stores.redis import POSITIONS_KEY_PREFIX

__all__ = ["StoreProbe", "probe_store"]

_PROBE_TABLE = "_provisioner_doctor"
_REDIS_PROBE = """
for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'PX', 60000) end
return redis.call('DEL', unpack(KEYS))
"""


@dataclass(frozen=True, slots=True)
class StoreProbe:
    """What the probe found: whether the connection is encrypted, and whether the server's
    certificate and host name were verified (`tls` says how, in the URL's terms)."""

    encrypted: bool
    verified: bool
    tls: str


def probe_store(product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0) -> StoreProbe:
    """Connect and write as the consumer would, undone; raises the connection modules' errors."""
    if store.postgres is not None:
        return _probe_postgres(store, url, timeout)
    return _probe_redis(product, store, url, timeout)


def _probe_postgres(store: StoreSpec, url: str, timeout: float) -> StoreProbe:
    assert store.postgres is not None
    connection = postgres_connect.connect(url, timeout=timeout, application_name="provisioner doctor")
    schema = quote_identifier(store.postgres.db_schema)
    try:
        encrypted = bool(connection.pgconn.ssl_in_use)
        with connection.transaction(force_rollback=True):
            # As the consumer does: the schema is created only when missing (CREATE on the database).
            found = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (store.postgres.db_schema,))
            if found.fetchone() is None:
                connection.execute(f"CREATE SCHEMA {schema}")
            connection.execute(f"CREATE TABLE {schema}.{quote_identifier(_PROBE_TABLE)} (probe integer)")
            connection.execute(f"INSERT INTO {schema}.{quote_identifier(_PROBE_TABLE)} VALUES (1)")  # noqa: S608
    except psycopg.Error as error:
        raise postgres_connect.failure(url, "writing (rolled back) failed", error) from None
    finally:
        connection.close()
    try:
        mode = str(conninfo_to_dict(url).get("sslmode") or os.environ.get("PGSSLMODE") or "prefer")
    except psycopg.Error:
        mode = "prefer"
    verified = encrypted and mode == "verify-full"
    if not encrypted:
        return StoreProbe(False, False, f"not encrypted (sslmode={mode})")
    how = "certificate and host name verified" if verified else "certificate or host name not verified"
    return StoreProbe(True, verified, f"TLS, {how} (sslmode={mode})")


def _probe_redis(product: DataProduct, store: StoreSpec, url: str, timeout: float) -> StoreProbe:
    client = redis_connect.client(url, timeout=timeout)
    token = secrets.token_hex(8)
    keys = [POSITIONS_KEY_PREFIX + f"doctor:{token}".encode(), f"{product.key_prefix(store)}\0doctor:{token}".encode()]
    doing = "cannot connect"
    try:
        client.ping()
        doing = "writing (deleted at once) failed"
        client.eval(_REDIS_PROBE, len(keys), *keys, token)
        connection = client.connection_pool.connection_kwargs
    except (redis.RedisError, OSError) as error:
        raise redis_connect.failure(url, doing, error) from None
    finally:
        client.close()
    encrypted = url.lower().startswith("rediss://")
    if not encrypted:
        return StoreProbe(False, False, "not encrypted (redis://)")
    verified = connection.get("ssl_cert_reqs", "required") in ("required", 2) \
        and connection.get("ssl_check_hostname", True) not in (False, "false", "False")
    how = "certificate and host name verified" if verified else "certificate or host name not verified"
    return StoreProbe(True, verified, f"TLS, {how} (rediss://)")
