"""A child object as the operator caches it: its content as compressed JSON, and a digest of it.

The cache holds every child of every product (three or more per product, ten thousand products),
and each watch event of a child meets it. Kept as dicts, each event cost a walk of the body to
copy it (and to share its strings, for memory), and the whole cache most of the operator's
memory. As JSON, an event costs one serialization in C, an event that changes nothing the drift
check compares (a controller's status update, the echo of our own create) is told apart by the
digest, and a Deployment takes about a kilobyte. The reconciler gets a fresh dict per read, so
nothing it does can change the cache.

What is left out: the status and managedFields (never compared), and the resourceVersion, kept
apart: it changes with every status update, and the content does not. Of a Deployment's status,
its ready replicas are kept: a change of them refreshes its product's status at once.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CachedChild", "content_digest", "freeze", "ready_replicas"]

_NOT_CONTENT = ("status",)
_NOT_CONTENT_METADATA = ("resourceVersion", "managedFields")
_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False, check_circular=False).encode


@dataclass(frozen=True, slots=True)
class CachedChild:
    """One cached child: `body()` gives it back as a new dict."""

    digest: bytes  # of the content: equal digests, nothing the drift check compares moved
    blob: bytes  # the content as JSON, compressed
    version: str | None  # metadata.resourceVersion
    ready: int | None = None  # a Deployment's status.readyReplicas: its product's status follows it

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(zlib.decompress(self.blob))
        if self.version is not None:
            body.setdefault("metadata", {})["resourceVersion"] = self.version
        return body


def _content(body: Mapping[str, Any]) -> str:
    content = {k: v for k, v in body.items() if k not in _NOT_CONTENT}
    content["metadata"] = {k: v for k, v in (body.get("metadata") or {}).items() if k not in _NOT_CONTENT_METADATA}
    return _dumps(content)


def _digest(text: bytes) -> bytes:
    return hashlib.blake2b(text, digest_size=16).digest()


def content_digest(body: Mapping[str, Any]) -> bytes:
    """The digest a `CachedChild` of `body` would have (to compare an event with the cache)."""
    return _digest(_content(body).encode())


def freeze(body: Mapping[str, Any]) -> CachedChild:
    """`body` (an event's, a listing's or a create's answer) as cached."""
    text = _content(body).encode()
    version = (body.get("metadata") or {}).get("resourceVersion")
    return CachedChild(_digest(text), zlib.compress(text, 1), None if version is None else str(version),
                       ready_replicas(body))


def ready_replicas(body: Mapping[str, Any]) -> int | None:
    """A Deployment's ready replicas (0 when its status says none), None for other kinds."""
    if body.get("kind") != "Deployment":
        return None
    ready = (body.get("status") or {}).get("readyReplicas")
    return ready if isinstance(ready, int) else 0
