"""A watch of one kind of object, read as a plain HTTP stream: how the operator follows its children.

The protocol is client-go's reflector, in its simplest form:

- it starts from the resourceVersion of a listing (the operator's priming one), so nothing that
  happened between the listing and the watch is missed;
- bookmarks (`allowWatchBookmarks`) keep that version current while no watched object changes;
- the server ends a watch after `timeoutSeconds`; it starts again from the last version seen;
- a version the server cannot watch from (410 Gone, as an answer or as an ERROR event, or an
  ERROR event of another kind) lists the kind again, hands each listed object over as an event of
  type None (as a listing), and watches from that listing's version; an object deleted meanwhile
  shows at the operator's next periodic listing;
- a broken connection or a refused request (a 401 after fresh credentials, a 403 until RBAC is
  fixed, a 5xx) is tried again after a pause that doubles from 1 s to 30 s.

Each chunk the server sends (one or more events) is decoded here and handed to `deliver` at once,
as a list of (type, object). The connections are the watch's own, outside the client's pool, since
each is held for minutes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from provisioner.kube.client import KINDS, KubeClient

__all__ = ["Delivery", "KindWatch", "WatchPool", "decode_lines"]

log = logging.getLogger("provisioner.kube.watch")

Delivery = Callable[[list[tuple[str | None, dict[str, Any]]]], None]
_PAUSE_S = (1.0, 30.0)  # after a failure: first pause, longest pause


class Gone(Exception):
    """The server cannot watch from the version asked for (410 Gone, or a version it has not
    seen yet, as after a switch to a lagging server): list again, as client-go does."""


def decode_lines(buffer: bytes, chunk: bytes) -> tuple[list[dict[str, Any]], bytes]:
    """The whole JSON lines of `buffer + chunk`, decoded, and what is left of an unfinished one."""
    data = buffer + chunk
    end = data.rfind(b"\n")
    if end < 0:
        return [], data
    return [json.loads(line) for line in data[:end].split(b"\n") if line.strip()], data[end + 1:]


class WatchPool:
    """The watches' own connections: the client's TLS settings and credentials, a pool as large as
    the number of watches (each holds a connection for the length of a watch)."""

    def __init__(self, client: KubeClient, size: int) -> None:
        from kubernetes.client import rest

        configuration = copy.deepcopy(client.configuration)
        configuration.connection_pool_maxsize = max(1, size)
        self.client = client
        self.rest = rest.RESTClientObject(configuration)

    def open(self, path: str, query: dict[str, str], read_timeout: float) -> Any:
        """A streaming GET (its urllib3 response, not read yet), with fresh credentials."""
        import urllib3

        headers = {"Accept": "application/json", "User-Agent": self.client.user_agent}
        authorization = self.client.credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        url = self.client.configuration.host + path + "?" + urlencode(query)
        return self.rest.pool_manager.request(
            "GET", url, headers=headers, preload_content=False,
            timeout=urllib3.Timeout(connect=10.0, read=read_timeout))

    def close(self) -> None:
        self.rest.pool_manager.clear()


class KindWatch:
    """Follows one kind (in one namespace, or all) carrying `labels`; `run` blocks until `stop`."""

    def __init__(self, pool: WatchPool, kind: str, namespace: str | None, labels: dict[str, str],
                 deliver: Delivery, resource_version: str | None, *, server_timeout: int = 300) -> None:
        self.pool = pool
        self.kind = kind
        self.namespace = namespace
        self.labels = dict(labels)
        self.selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        self.deliver = deliver
        self.resource_version = resource_version
        self.server_timeout = server_timeout
        self._stopped = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        """End `run`: a read in progress is interrupted."""
        self._stopped.set()
        with self._lock:
            response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed: the loop ends at its next check
                response.shutdown()

    def run(self) -> None:
        pause = _PAUSE_S[0]
        while not self._stopped.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                if self._watch():
                    pause = _PAUSE_S[0]  # the server ended a healthy watch: start again at once
                    continue
            except Gone as gone:
                log.info("watch of %s: the server cannot go on from version %s (%s); listing again",
                         KINDS[self.kind].plural, self.resource_version, gone)
                self.resource_version = None
                continue
            except Exception as error:
                if self._stopped.is_set():
                    return
                log.warning("watch of %s failed (%s); trying again in %g s",
                            KINDS[self.kind].plural, _reason(error), pause)
            if self._stopped.wait(pause):
                return
            pause = min(pause * 2, _PAUSE_S[1])

    def _relist(self) -> None:
        items, version = self.pool.client.list_versioned(self.kind, self.namespace, self.labels)
        self.deliver([(None, item) for item in items])
        self.resource_version = version

    def _watch(self) -> bool:
        """One watch request, until the server ends it (True) or it breaks (an exception)."""
        query = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": str(self.server_timeout),
                 "resourceVersion": self.resource_version or ""}
        if self.selector:
            query["labelSelector"] = self.selector
        path = KINDS[self.kind].collection(self.namespace)
        response = self.pool.open(path, query, read_timeout=self.server_timeout + 30.0)
        with self._lock:
            self._response = response
        try:
            if response.status == 410:
                raise Gone("410 Gone")
            if response.status == 401:
                self.pool.client.credentials.expire()
            if response.status != 200:
                raise RuntimeError(f"the API server answered {response.status}")
            buffer = b""
            for chunk in response.stream(65536):
                if self._stopped.is_set():
                    return False
                events, buffer = decode_lines(buffer, chunk)
                if events:
                    self._handle(events)
            return True
        finally:
            with self._lock:
                self._response = None
            response.release_conn()

    def _handle(self, events: list[dict[str, Any]]) -> None:
        delivered: list[tuple[str | None, dict[str, Any]]] = []
        for event in events:
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":  # 410: compacted away; 504: a version this server has not seen yet
                if delivered:
                    self.deliver(delivered)
                raise Gone(f"{obj.get('code')} {obj.get('reason')}")
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if version:
                self.resource_version = version
            if kind == "BOOKMARK":
                continue
            obj.setdefault("kind", self.kind)
            delivered.append((kind, obj))
        if delivered:
            self.deliver(delivered)


def _reason(error: BaseException) -> str:
    """A failure's kind and message, never a header (a token) or a body."""
    return f"{type(error).__name__}: {error}"[:200]
