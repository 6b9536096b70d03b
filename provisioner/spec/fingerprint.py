"""Which spec changes change a store's content, and which apply in place.

A store is a function of its spec and the event log. `content_settings` lists exactly the settings
that decide what a store holds (source topic, start, schema and until; filter, delete, order, fields and
key; the
store's kind, structure, mode, table or key prefix and column types), and `fingerprint` hashes
them: two specs with the same fingerprint fill a store identically from the same records, so a
change that keeps it (replicas, batch size and latency, freshness, error mode, TTL of new writes,
connection, description, tests) applies in place, and one that changes it needs a rebuild.

Field order is not content: the cluster keeps `fields` as a map whose order the API server does not
preserve, and a row is the same whatever order its fields were computed in, so fields are hashed by
name. Pure; used by `plan` and by whoever applies a changed spec.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from provisioner.spec.models import DataProduct, StoreSpec

__all__ = ["StoreChange", "compare", "content_settings", "fingerprint"]

ChangeKind = Literal["new", "unchanged", "in place", "rebuild", "removed"]


def content_settings(product: DataProduct, store: StoreSpec) -> dict[str, Any]:
    """The settings that decide the store's content, defaults applied, in a canonical form."""
    spec = product.spec
    settings: dict[str, Any] = {
        "source": {"topic": spec.source.topic, "format": spec.source.format, "startFrom": spec.source.start_from,
                   "schema": spec.source.json_schema},
        "filter": spec.filter,
        "delete": spec.delete,
        "fields": dict(sorted(product.fields.items())),
        "key": list(product.key_fields),
        "kind": store.kind,
    }
    if spec.order is not None:
        # Only when set, like `until`: a store's content depends on which ops were stale.
        settings["order"] = spec.order
    if spec.source.until is not None:
        # Only when set, so the fingerprints of stores older than `until` stay what they were.
        settings["source"]["until"] = spec.source.until
    if spec.source.key_format != "string":
        settings["source"]["keyFormat"] = spec.source.key_format
    if store.redis is not None:
        settings["redis"] = {"keyPrefix": product.key_prefix(store), "structure": store.redis.structure}
    if store.postgres is not None:
        settings["postgres"] = {"schema": store.postgres.db_schema, "table": product.table(store),
                                "mode": store.postgres.mode, "columns": dict(sorted(store.postgres.columns.items()))}
    return settings


def fingerprint(product: DataProduct, store: StoreSpec) -> str:
    """A short, stable hash of `content_settings`: equal exactly when the content rules are equal."""
    canonical = json.dumps(content_settings(product, store), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class StoreChange:
    """What applying a new spec does to one store, and the settings that make it so."""

    store: str
    kind: ChangeKind
    settings: tuple[str, ...] = ()  # dotted names of the settings that differ

    def __str__(self) -> str:
        return f"{self.store}: {self.kind}" + (f" ({', '.join(self.settings)})" if self.settings else "")


def compare(old: DataProduct | None, new: DataProduct | None) -> list[StoreChange]:
    """Per store of either spec: new, removed, unchanged, changed in place, or rebuilt.

    A rebuild names the content settings that differ; a change in place names the others.
    """
    old_stores = {s.name: s for s in old.spec.stores} if old is not None else {}
    new_stores = {s.name: s for s in new.spec.stores} if new is not None else {}
    changes: list[StoreChange] = []
    for name in [*new_stores, *(n for n in old_stores if n not in new_stores)]:
        before, after = old_stores.get(name), new_stores.get(name)
        if before is None or old is None:
            changes.append(StoreChange(name, "new"))
        elif after is None or new is None:
            changes.append(StoreChange(name, "removed"))
        else:
            content = _differences(content_settings(old, before), content_settings(new, after))
            if content:
                changes.append(StoreChange(name, "rebuild", tuple(content)))
                continue
            rest = _differences(_everything(old, before), _everything(new, after))
            changes.append(StoreChange(name, "in place", tuple(rest)) if rest else StoreChange(name, "unchanged"))
    return changes


def _everything(product: DataProduct, store: StoreSpec) -> dict[str, Any]:
    """The whole spec as this store sees it: the product without its other stores, and this one."""
    dumped = product.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec = dumped["spec"]
    spec.pop("stores", None)
    spec.pop("tests", None)
    spec.pop("fields", None)  # their order is not a change; their content is compared as content
    store_settings = store.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"metadata": dumped["metadata"], "spec": spec, "store": store_settings}


def _differences(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[str]:
    return sorted(set(_walk(before, after, prefix)))


def _walk(before: Any, after: Any, path: str) -> Iterator[str]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in {*before, *after}:
            yield from _walk(before.get(key), after.get(key), f"{path}.{key}" if path else str(key))
    elif before != after or type(before) is not type(after):
        yield path or "(root)"
