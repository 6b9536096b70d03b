"""The children's watches: one `KindWatch` thread per watched kind (and namespace) feeding
`Controller.child_events` on the event loop.

Why not kopf's, as for the products: kopf turns each event into a cause, a logger, handler
arguments and a task, about 0.4 ms of the operator's CPU per event, and a product's children
bring about eight events at creation (the creates' echoes, the controller manager's updates of a
Deployment). A child's event only needs caching and comparing with what is cached
(`Controller.child_event`), which costs a fraction of that. The watches start from the versions
of the priming listing (`Controller.prime`), so nothing between the listing and the watch is lost.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from provisioner.kube.client import KubeClient
from provisioner.kube.reconcile import WATCHED_KINDS
from provisioner.kube.watch import KindWatch, WatchPool
from provisioner.operator.handlers import CHILD_LABELS, Controller

__all__ = ["ChildWatches"]


class ChildWatches:
    """Started in the event loop's thread; `stop` ends them (a read in progress is interrupted)."""

    def __init__(self, client: KubeClient, controller: Controller, *, server_timeout: int = 300) -> None:
        namespaces: list[str | None] = [*controller.namespaces] if controller.namespaces else [None]
        self._pool = WatchPool(client, len(WATCHED_KINDS) * len(namespaces))
        self._controller = controller
        self._server_timeout = server_timeout
        self._targets = [(kind, namespace) for namespace in namespaces for kind in WATCHED_KINDS]
        self._watches: list[KindWatch] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        controller = self._controller

        def deliver(events: list[tuple[str | None, dict[str, Any]]]) -> None:
            loop.call_soon_threadsafe(controller.child_events, events)

        for kind, namespace in self._targets:
            watch = KindWatch(self._pool, kind, namespace, CHILD_LABELS, deliver,
                              controller.listed_versions.get((kind, namespace)) or None,
                              server_timeout=self._server_timeout)
            self._watches.append(watch)
            where = f"-{namespace}" if namespace else ""
            threading.Thread(target=watch.run, name=f"watch-{kind.lower()}{where}", daemon=True).start()

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop()
        self._pool.close()
