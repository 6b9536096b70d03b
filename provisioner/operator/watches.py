"""The operator's watches: one `KindWatch` thread per kind it follows (DataProducts, and every
watched kind of child) and namespace, handing what they read to the `Controller` on the event loop.

Why not kopf's: kopf turns each event into a cause, a logger, handler arguments and a task, about
0.4 ms of the operator's CPU per event, and a new product brings about ten events (its listing and
its status's echo; its children's creates and the controller manager's updates of a Deployment).
An event here only needs caching and comparing with what is cached (`Controller.product_event`,
`child_event`), a fraction of that. The watches start from the versions of the priming listing
(`Controller.prime`), so nothing between the listing and the watch is lost. kopf still serves the
admission webhook (`operator.webhook`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from provisioner.kube.client import KubeClient
from provisioner.kube.reconcile import WATCHED_KINDS
from provisioner.kube.watch import KindWatch, WatchPool
from provisioner.operator.handlers import CHILD_LABELS, Controller

__all__ = ["Watches"]

PRODUCT = "DataProduct"


class Watches:
    """Started in the event loop's thread; `stop` ends them (a read in progress is interrupted)."""

    def __init__(self, client: KubeClient, controller: Controller, *, server_timeout: int = 300) -> None:
        namespaces: list[str | None] = [*controller.namespaces] if controller.namespaces else [None]
        self._targets = [(kind, namespace) for namespace in namespaces for kind in (PRODUCT, *WATCHED_KINDS)]
        self._pool = WatchPool(client, len(self._targets))
        self._controller = controller
        self._server_timeout = server_timeout
        self._watches: list[KindWatch] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        controller = self._controller

        def to_loop(handle: Callable[[Iterable[tuple[str | None, Mapping[str, Any]]]], None]) -> Any:
            def deliver(events: list[tuple[str | None, dict[str, Any]]]) -> None:
                loop.call_soon_threadsafe(handle, events)
            return deliver

        for kind, namespace in self._targets:
            product = kind == PRODUCT
            watch = KindWatch(self._pool, kind, namespace, {} if product else CHILD_LABELS,
                              to_loop(controller.product_events if product else controller.child_events),
                              controller.listed_versions.get((kind, namespace)) or None,
                              server_timeout=self._server_timeout)
            self._watches.append(watch)
            where = f"-{namespace}" if namespace else ""
            threading.Thread(target=watch.run, name=f"watch-{kind.lower()}{where}", daemon=True).start()

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop()
        self._pool.close()
