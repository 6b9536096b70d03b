"""The operator's side of `consumer.autoscale`: what it chose for each store, kept between
observations, and the consumer Deployments rendered with that choice.

The choice lives in memory and in the product's status (`stores[].autoscale.desired` and
`lastScaleTime`), so a restarted operator (or `provisioner apply`, which reads the live product)
starts from it instead of the floor. Drift repair renders each consumer Deployment with the chosen
replicas, so a hand-set count is put back; with `autoscale: external` render leaves `replicas` out
of the Deployment, so server-side apply never claims it and an HPA or KEDA owns it.

The decision itself is `provisioner.kube.autoscale.decide`. Called by `provisioner.kube.reconcile`.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from provisioner.kube.autoscale import DEFAULT_COOL_DOWN_S, bounds, decide
from provisioner.kube.render import object_name
from provisioner.kube.status import Observation, ScaleObservation
from provisioner.spec.durations import parse_duration
from provisioner.spec.models import Autoscale, DataProduct

__all__ = ["ScaleChange", "Scaler", "replica_bounds"]

_Key = tuple[str, str, str]  # (namespace, product, store)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScaleChange:
    """A consumer Deployment whose replicas the operator changed: one Event each."""

    store: str
    deployment: str
    before: int
    after: int
    reason: str

    @property
    def up(self) -> bool:
        return self.after > self.before

    @property
    def message(self) -> str:
        return (f"store {self.store}: scaled Deployment {self.deployment} from {self.before} to {self.after} "
                f"replicas ({self.reason})")


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def replica_bounds(product: DataProduct) -> str:
    """Each store consumer's replicas in words, as `plan` says them."""
    consumer = product.spec.consumer
    if consumer.autoscale == "external":
        return f"set by an external autoscaler (autoscale: external; {consumer.replicas} when created)"
    if isinstance(consumer.autoscale, Autoscale):
        return (f"{consumer.replicas} to {consumer.autoscale.max_replicas} by lag, never more than the partitions of "
                f"{product.spec.source.topic} (autoscale: catch up within {consumer.autoscale.catch_up_within})")
    return str(consumer.replicas)


class Scaler:
    """The replicas chosen for each autoscaled store: (replicas, when chosen, epoch seconds)."""

    def __init__(self, cool_down: float = DEFAULT_COOL_DOWN_S) -> None:
        self.cool_down = cool_down
        self._chosen: dict[_Key, tuple[int, float | None]] = {}
        self._lock = threading.Lock()

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            for key in [k for k in self._chosen if k[:2] == (namespace, name)]:
                del self._chosen[key]

    def _current(self, body: Mapping[str, Any], store: str, floor: int) -> tuple[int, float | None]:
        """The choice in memory, else the one the status records, else the floor."""
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"], store)
        with self._lock:
            known = self._chosen.get(key)
        if known is not None:
            return known
        for entry in (body.get("status") or {}).get("stores") or []:
            recorded = entry.get("autoscale") if isinstance(entry, Mapping) else None
            if entry.get("name") == store and isinstance(recorded, Mapping) \
                    and isinstance(recorded.get("desired"), int):
                return recorded["desired"], _epoch(recorded.get("lastScaleTime"))
        return floor, None

    def with_replicas(self, body: Mapping[str, Any], product: DataProduct,
                      desired: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """`desired` with each autoscaled consumer Deployment at the chosen replicas (within the
        bounds the spec gives now; the partitions cap is applied when observing)."""
        autoscale = product.spec.consumer.autoscale
        if not isinstance(autoscale, Autoscale):
            return list(desired)
        floor = product.spec.consumer.replicas
        wanted = {object_name(product.name, store.name, "consumer"):
                  max(floor, min(autoscale.max_replicas, self._current(body, store.name, floor)[0]))
                  for store in product.spec.stores}
        out = []
        for obj in desired:
            name = obj["metadata"]["name"]
            if obj["kind"] == "Deployment" and name in wanted and obj["spec"].get("replicas") != wanted[name]:
                out.append({**obj, "spec": {**obj["spec"], "replicas": wanted[name]}})
            else:
                out.append(obj)
        return out

    def decide(self, body: Mapping[str, Any], product: DataProduct, observation: Observation,
               now: datetime) -> tuple[Observation, list[ScaleChange]]:
        """The observation with each store's choice in it, and the changes to make (remembered as
        made: the caller applies them before anything else reads the choice)."""
        autoscale = product.spec.consumer.autoscale
        if not isinstance(autoscale, Autoscale):
            return observation, []
        metadata = body["metadata"]
        floor = product.spec.consumer.replicas
        within = parse_duration(autoscale.catch_up_within).total_seconds()
        stores, changes = [], []
        for seen in observation.stores:
            current, changed_at = self._current(body, seen.name, floor)
            partitions = len(seen.end_offsets) if seen.end_offsets else None
            limits = bounds(floor, autoscale.max_replicas, partitions)
            decision = decide(lag=seen.lag, rate=seen.read_rate, consumers=seen.consumers, current=current,
                              limits=limits, catch_up_within=within, last_change=changed_at,
                              now=now.timestamp(), cool_down=self.cool_down)
            log.debug("%s/%s store %s: %d replicas wanted, %d set (%s)", metadata["namespace"], metadata["name"],
                      seen.name, decision.replicas, current, decision.reason)
            if decision.replicas != current:
                changed_at = now.timestamp()
                changes.append(ScaleChange(seen.name, object_name(product.name, seen.name, "consumer"), current,
                                           decision.replicas, decision.reason))
            with self._lock:
                self._chosen[(metadata["namespace"], metadata["name"], seen.name)] = (decision.replicas, changed_at)
            stamp = None if changed_at is None else _stamp(datetime.fromtimestamp(changed_at, UTC))
            stores.append(replace(seen, scale=ScaleObservation(decision.replicas, limits.low, limits.high, stamp)))
        return replace(observation, stores=tuple(stores)), changes

    @staticmethod
    def deployment(desired: Sequence[Mapping[str, Any]], change: ScaleChange) -> dict[str, Any] | None:
        """The consumer Deployment to apply for `change` (None when it is not rendered)."""
        for obj in desired:
            if obj["kind"] == "Deployment" and obj["metadata"]["name"] == change.deployment:
                scaled = copy.deepcopy(dict(obj))
                scaled["spec"]["replicas"] = change.after
                return scaled
        return None
