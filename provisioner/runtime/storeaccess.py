"""What the rebuild runner reaches in its store, behind one object: the version record, the
rebuilder election, and the live and shadow stores.

`runtime.rebuild.StoreRunner` is handed a `StoreAccess`; a consumer process gets `UrlStoreAccess`
(everything opened by the store's URL), the unit tests an in-memory one, so every transition of a
rebuild can be driven without a server.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.base import Store, VersionFence
from provisioner.stores.election import Election, open_election
from provisioner.stores.registry import open_store
from provisioner.stores.versions import Versions, open_shadow_store, versions_of

__all__ = ["StoreAccess", "UrlStoreAccess"]


class StoreAccess(Protocol):
    """One (product, store)'s versions, election and stores."""

    def versions(self) -> contextlib.AbstractContextManager[Versions]:
        """The version record's operations, closed when the block ends."""

    def election(self) -> Election:
        """This replica's view of the rebuilder election (the caller closes it)."""

    def live_store(self, product: DataProduct, store_spec: StoreSpec, fence: VersionFence) -> Store:
        """The live store, written only while its version is `fence`'s."""

    def shadow_store(self, product: DataProduct, shadow_spec: StoreSpec) -> Store:
        """The store a version beside the live one is built through."""


class UrlStoreAccess:
    """`StoreAccess` of a store reached by its URL (what `provisioner consume` runs with)."""

    def __init__(self, product: DataProduct, store_spec: StoreSpec, url: str, *,
                 lease_seconds: float | None = None) -> None:
        self._product = product
        self._store_spec = store_spec
        self._url = url
        self._lease_seconds = lease_seconds  # a Redis rebuilder lease's TTL (None: the default)

    def versions(self) -> contextlib.AbstractContextManager[Versions]:
        return versions_of(self._product, self._store_spec, self._url)

    def election(self) -> Election:
        return open_election(self._product, self._store_spec, self._url, lease_seconds=self._lease_seconds)

    def live_store(self, product: DataProduct, store_spec: StoreSpec, fence: VersionFence) -> Store:
        return open_store(product, store_spec, self._url, fence=fence)

    def shadow_store(self, product: DataProduct, shadow_spec: StoreSpec) -> Store:
        return open_shadow_store(product, shadow_spec, self._url)
