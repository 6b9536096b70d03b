"""DataProducts in a cluster, for the cluster commands: apply, plan, status, delete.

- `resource(spec, namespace)`: the custom resource a spec file declares (what was written, the
  namespace filled in), applied server-side as the `provisioner` field manager.
- `preview(...)`: per product, what applying it would do: per object (the reconciler's
  `desired_objects`, compared with `differs` as the operator compares) create, change (a unified
  diff of the fields provisioner sets, from a server-side dry run, so defaults and admission are the
  server's) or leave alone, objects that would be pruned, and per store whether the change applies
  in place or rebuilds (`fingerprint.compare` with the live DataProduct as the old spec). Secret
  values never appear in a diff: their keys do, with `(changed)`.
- `summarize(body)`: the status fields `provisioner status --target k8s` shows.
- `wait_ready` / `wait_deleted`: bounded polls that report each product's conditions as they turn.

Called by `provisioner apply|plan|status|delete` (provisioner.cli); the operator does not use it.
"""

from __future__ import annotations

import copy
import difflib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from provisioner.errors import ProvisionerError, UnavailableError
from provisioner.kube.client import KubeClient
from provisioner.kube.observe import store_secret
from provisioner.kube.reconcile import (
    CHILD_KINDS,
    Settings,
    child_labels,
    desired_objects,
    differs,
    parse_product,
    spec_problem,
    stale_children,
)
from provisioner.kube.scaling import Scaler, replica_bounds
from provisioner.spec.findings import SpecError
from provisioner.spec.fingerprint import StoreChange, compare
from provisioner.spec.loader import LoadedSpec
from provisioner.spec.models import DataProduct

__all__ = [
    "ObjectPreview",
    "ProductPreview",
    "ProductSummary",
    "apply_resources",
    "preview",
    "resource",
    "summarize",
    "wait_deleted",
    "wait_ready",
]

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"  # a product not created yet (dry run only)


def resource(spec: LoadedSpec, namespace: str) -> dict[str, Any]:
    """The DataProduct custom resource of a spec file: what the file says, in `namespace` unless
    the file names one."""
    body = copy.deepcopy(dict(spec.document.data))
    metadata = body.setdefault("metadata", {})
    metadata["namespace"] = metadata.get("namespace") or namespace
    return body


def apply_resources(client: KubeClient, bodies: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Server-side apply each DataProduct; the objects as the server stored them."""
    return [client.apply(body) for body in bodies]


# -- preview ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ObjectPreview:
    kind: str
    name: str
    action: str  # create | change | unchanged | delete | derived (a managed store's Secret: the operator's key)
    diff: str = ""


@dataclass(slots=True)
class ProductPreview:
    namespace: str
    name: str
    action: str  # create | change | unchanged
    objects: list[ObjectPreview] = field(default_factory=list)
    stores: list[StoreChange] = field(default_factory=list)
    problem: str | None = None  # the live product's spec no longer parses (the comparison is all "new")
    replicas: str = ""  # each store consumer's replicas, or their bounds with autoscale

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace, "name": self.name, "action": self.action,
            "objects": [{"kind": o.kind, "name": o.name, "action": o.action, "diff": o.diff} for o in self.objects],
            "stores": [{"name": s.store, "change": s.kind, "settings": list(s.settings)}
                       for s in self.stores],
            "replicas": self.replicas,
        }


def _projection(live: Any, want: Any) -> Any:
    """`live` restricted to the fields `want` sets (lists compared whole)."""
    if isinstance(want, dict) and isinstance(live, dict):
        return {k: _projection(live.get(k), v) for k, v in want.items() if k in live}
    return live


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (a ConfigMap's spec) as blocks, so a diff shows the lines that changed."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _string)


def _diff(kind: str, name: str, live: Mapping[str, Any], after: Mapping[str, Any], desired: Mapping[str, Any]) -> str:
    old, new = _projection(dict(live), dict(desired)), _projection(dict(after), dict(desired))
    if kind == "Secret":
        old_data, new_data = (old or {}).get("data") or {}, (new or {}).get("data") or {}
        old = {**old, "data": dict.fromkeys(old_data, "(value)")}
        new = {**new, "data": {k: "(value)" if old_data.get(k) == v else "(changed)" for k, v in new_data.items()}}
    text_old = yaml.dump(old, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=1000).splitlines()
    text_new = yaml.dump(new, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=1000).splitlines()
    return "\n".join(difflib.unified_diff(text_old, text_new, f"live {kind}/{name}", f"applied {kind}/{name}",
                                          lineterm="", n=2))


def preview(client: KubeClient, bodies: Sequence[dict[str, Any]], settings: Settings) -> list[ProductPreview]:
    """What `provisioner apply` followed by the operator's reconcile would change, product by product.
    Each product is read from its resource as the operator reads it (`parse_product`: fields in
    name order), so the objects compare as the operator would build them."""
    previews = []
    for body in bodies:
        product = parse_product(body)
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        live = client.get("DataProduct", namespace, name)
        old: DataProduct | None = None
        problem = None
        if live is not None:
            try:
                old = parse_product(live)
            except SpecError as error:
                problem = spec_problem(error)
        client.apply(body, dry_run=True)  # the server's own checks of the resource (schema, admission)
        owner = {**body, "metadata": {**metadata, "uid": (live or {}).get("metadata", {}).get("uid")
                                      or PLACEHOLDER_UID}}
        desired = desired_objects(product, owner, settings, leave_derived=True)
        desired = Scaler().with_replicas(live or owner, product, desired)  # the operator's autoscaling choice
        current = {(o["kind"], o["metadata"]["name"]): o
                   for kind in CHILD_KINDS for o in client.list(kind, namespace, child_labels(name))}
        # Without the operator's key, managed stores' passwords are not known here: their Secrets
        # are previewed by name only, never compared, never reported as pruned.
        derived_names = [store_secret(product, store)[0] for store in product.spec.stores
                         if store.managed and settings.credentials_key is None]
        derived = [{"kind": "Secret", "metadata": {"name": n}} for n in derived_names]
        objects = [ObjectPreview("Secret", n, "derived") for n in derived_names]
        for obj in desired:
            key = (obj["kind"], obj["metadata"]["name"])
            now = current.get(key)
            if now is None:
                objects.append(ObjectPreview(*key, "create"))
            elif differs(obj, now):
                after = client.apply(obj, dry_run=True)
                objects.append(ObjectPreview(*key, "change", _diff(*key, now, after, obj)))
            else:
                objects.append(ObjectPreview(*key, "unchanged"))
        if live is not None:
            objects.extend(ObjectPreview(stale["kind"], stale["metadata"]["name"], "delete")
                           for stale in stale_children(current.values(), [*desired, *derived],
                                                       live["metadata"]["uid"]))
        spec_changed = live is None or _spec(live) != _spec(body)
        action = "create" if live is None else "change" if spec_changed else "unchanged"
        previews.append(ProductPreview(namespace, name, action, objects, compare(old, product), problem,
                                       replica_bounds(product)))
    return previews


def _spec(body: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(body.get("spec") or {}, sort_keys=True))


# -- status ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductSummary:
    namespace: str
    name: str
    ready: str  # True | False | Unknown
    reason: str
    message: str
    stores_ready: str
    lag: int | None
    dead_letters: int | None
    conditions: tuple[tuple[str, str, str], ...]  # (type, status, reason)
    current: bool  # the status is about the latest generation

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "ready": self.ready, "reason": self.reason,
                "message": self.message, "storesReady": self.stores_ready, "lag": self.lag,
                "deadLetters": self.dead_letters, "observedCurrent": self.current,
                "conditions": [{"type": t, "status": s, "reason": r} for t, s, r in self.conditions]}


def summarize(body: Mapping[str, Any]) -> ProductSummary:
    metadata = body["metadata"]
    status = body.get("status") or {}
    conditions = status.get("conditions") or []
    ready: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
    generation = metadata.get("generation")
    return ProductSummary(
        namespace=metadata["namespace"], name=metadata["name"], ready=ready.get("status", "Unknown"),
        reason=ready.get("reason", "") or ("" if conditions else "NotReconciled"), message=ready.get("message", ""),
        stores_ready=status.get("storesReady", "?"), lag=status.get("lag"), dead_letters=status.get("deadLetters"),
        conditions=tuple((c.get("type", ""), c.get("status", ""), c.get("reason", "")) for c in conditions),
        current=generation is None or status.get("observedGeneration") == generation,
    )


# -- waiting -------------------------------------------------------------------------------------------


def wait_ready(client: KubeClient, keys: Sequence[tuple[str, str]], timeout: float,
               on_change: Callable[[ProductSummary | None, tuple[str, str]], None] | None = None,
               every: float = 1.0) -> dict[tuple[str, str], ProductSummary | None]:
    """Poll until every product's status is about its latest spec and Ready=True, or `timeout`
    seconds passed (then the last summaries, some not ready). `on_change` hears each new summary."""
    deadline = time.monotonic() + timeout
    last: dict[tuple[str, str], ProductSummary | None] = {}
    while True:
        for key in keys:
            try:
                body = client.get("DataProduct", *key)
            except UnavailableError:
                continue
            summary = summarize(body) if body is not None else None
            if key not in last or last[key] != summary:
                last[key] = summary
                if on_change is not None:
                    on_change(summary, key)
        if all(s is not None and s.current and s.ready == "True" for s in (last.get(k) for k in keys)):
            return last
        if time.monotonic() >= deadline:
            return last
        time.sleep(every)


def wait_deleted(client: KubeClient, namespace: str, name: str, timeout: float, every: float = 0.5) -> bool:
    """Poll until the product and every object labelled as its child are gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            gone = client.get("DataProduct", namespace, name) is None and not any(
                client.list(kind, namespace, child_labels(name)) for kind in CHILD_KINDS)
        except ProvisionerError:
            gone = False
        if gone:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)


# -- connecting -----------------------------------------------------------------------------------------


_CONFIG_KEYS = {"PROVISIONER_KAFKA_BOOTSTRAP": "kafka_bootstrap", "PROVISIONER_IMAGE": "image",
                "PROVISIONER_REDIS_IMAGE": "redis_image", "PROVISIONER_POSTGRES_IMAGE": "postgres_image",
                "PROVISIONER_STORAGE_SIZE": "storage_size", "PROVISIONER_KAFKA_SECRET": "kafka_secret"}


def operator_settings(client: KubeClient, operator_namespace: str, *, kafka_bootstrap: str | None,
                      credentials_key: bytes | None) -> Settings:
    """The settings the installed operator renders with: its ConfigMap `provisioner-config` in
    `operator_namespace`, overridden by what is given here. The credentials key Secret is never
    read: without `credentials_key`, managed stores' Secrets are previewed as derived by the operator."""
    values: dict[str, Any] = {}
    try:
        config_map = client.get("ConfigMap", operator_namespace, "provisioner-config") or {}
    except ProvisionerError:
        config_map = {}
    for key, attribute in _CONFIG_KEYS.items():
        if (config_map.get("data") or {}).get(key):
            values[attribute] = config_map["data"][key]
    if kafka_bootstrap:
        values["kafka_bootstrap"] = kafka_bootstrap
    values.setdefault("kafka_bootstrap", "kafka:9092")
    return Settings(credentials_key=credentials_key, **values)
