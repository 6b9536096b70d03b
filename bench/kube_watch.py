"""When the operator has converged, seen through watches instead of polled lists.

Listing every product and child every second or so is load on the API server the operator shares
(at ten thousand products, each poll serialized forty thousand objects), and the floor it is
compared with is not polled at all. One list and then one watch per kind cost the API server
about one serialization per change, the same for both sides. Converged = every expected product's
status has `observedGeneration` equal to its `generation` and it has one child of each kind.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from provisioner.kube.client import KINDS, KubeClient

Key = tuple[str, str]
LABELS = "app.kubernetes.io/managed-by=provisioner"


class Convergence:
    """Watches products and their children; `wait` returns once every expected product converged."""

    def __init__(self, kube: KubeClient, expected: set[Key], child_kinds: tuple[str, ...]) -> None:
        self._kube = kube
        self._expected = expected
        self._wanted = len(child_kinds)
        self._lock = threading.Lock()
        self._done: set[Key] = set()
        self._children: dict[Key, set[tuple[str, str]]] = {}
        self._complete: set[Key] = set()  # expected products with every child
        self._reached = threading.Event()
        self._stopped = threading.Event()
        self.failures: list[str] = []
        kinds = [("DataProduct", None), *((kind, LABELS) for kind in child_kinds)]
        self._threads = [threading.Thread(target=self._follow, args=(kind, labels), daemon=True,
                                          name=f"watch-{kind}") for kind, labels in kinds]
        for thread in self._threads:
            thread.start()

    def wait(self, timeout: float) -> bool:
        return self._reached.wait(timeout)

    def close(self) -> None:
        self._stopped.set()

    # -- one kind ---------------------------------------------------------------------------------

    def _follow(self, kind: str, labels: str | None) -> None:
        entry = KINDS[kind]
        query = {"labelSelector": labels} if labels else {}
        version = None
        while not self._stopped.is_set():
            try:
                if version is None:
                    listing = self._kube.request("GET", entry.collection(None), query)
                    for item in listing.get("items") or []:
                        self._seen(kind, "ADDED", item)
                    version = listing["metadata"]["resourceVersion"]
                for event_type, obj in self._watch(entry.collection(None), {**query, "resourceVersion": version}):
                    if event_type == "ERROR":  # 410 Gone: list again
                        version = None
                        break
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event_type != "BOOKMARK":
                        self._seen(kind, event_type, obj)
            except Exception as error:  # the main loop's timeout reports a watch that never recovers
                self.failures.append(f"{kind}: {error}")
                time.sleep(1.0)
                version = None

    def _watch(self, path: str, query: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
        import urllib3

        params = {**query, "watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
        headers = {"Accept": "application/json", "User-Agent": self._kube.user_agent}
        authorization = self._kube.credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        url = f"{self._kube.configuration.host}{path}?{urlencode(params)}"
        response = self._kube.api.rest_client.pool_manager.request(
            "GET", url, headers=headers, preload_content=False, timeout=urllib3.Timeout(connect=10.0, read=330.0))
        try:
            if response.status != 200:
                raise RuntimeError(f"watch {path}: HTTP {response.status}")
            pending = b""
            for chunk in response.stream(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        event = json.loads(line)
                        yield event["type"], event["object"]
                if self._stopped.is_set():
                    return
        finally:
            response.release_conn()

    # -- the state ----------------------------------------------------------------------------------

    def _seen(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata", {})
        with self._lock:
            if kind == "DataProduct":
                key = (metadata.get("namespace", ""), metadata.get("name", ""))
                observed = (obj.get("status") or {}).get("observedGeneration")
                if event_type != "DELETED" and observed is not None and observed == metadata.get("generation"):
                    self._done.add(key)
                else:
                    self._done.discard(key)
            else:
                product = (metadata.get("labels") or {}).get("app.kubernetes.io/part-of", "")
                key = (metadata.get("namespace", ""), product)
                children = self._children.setdefault(key, set())
                if event_type == "DELETED":
                    children.discard((kind, metadata.get("name", "")))
                else:
                    children.add((kind, metadata.get("name", "")))
                if len(children) == self._wanted and key in self._expected:
                    self._complete.add(key)
                else:
                    self._complete.discard(key)
            if len(self._complete) == len(self._expected) and self._expected <= self._done:
                self._reached.set()
