"""Which `Store` implementation serves a store spec: the one explicit mapping, no import side effects.

Called by the consumer process's runner (`runtime.storeaccess`), the shadow versions, the local
session (inspect, status, replay) and the operator's observer. The
URL is resolved by the caller (a literal, an expanded `${ENV}`, a Secret, or a managed server).
"""

from __future__ import annotations

from typing import Any

from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.base import Store, VersionFence
from provisioner.stores.postgres import PostgresStore
from provisioner.stores.postgres_ordered import OrderedPostgresStore
from provisioner.stores.redis import RedisStore


def open_store(product: DataProduct, store_spec: StoreSpec, url: str, *, timeout: float = 10.0,
               fence: VersionFence | None = None, shared: Any = None) -> Store:
    """The store for `store_spec` of `product` at `url`. Connects lazily: no I/O happens here.
    With `fence`, every batch is refused (VersionMoved) unless the store's version is that one.
    `shared`: a Redis client for `url` to use (and leave open) instead of opening one."""
    if store_spec.redis is not None:
        return RedisStore(product, store_spec, url, timeout=timeout, fence=fence, shared=shared)
    if store_spec.postgres is not None and product.spec.order is not None:
        return OrderedPostgresStore(product, store_spec, url, timeout=timeout, fence=fence)
    if store_spec.postgres is not None:
        return PostgresStore(product, store_spec, url, timeout=timeout, fence=fence)
    raise ValueError(f"store {store_spec.name!r} sets neither redis nor postgres")
