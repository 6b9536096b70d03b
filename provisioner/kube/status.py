"""A DataProduct's status from what was observed: pure, so every case is a unit test.

Six conditions answer "is my data there and fresh?", each with `observedGeneration`, a stable
CamelCase `reason` and an actionable message that names stores, never counts or times (messages
must not change while the situation does not, or every refresh would write):

- StoresReady: every store answers (its positions can be read); False with StoreUnreachable, or
  with the reason of the first failing store when it has one: StoreCredentialsMissing (its Secret,
  its URL key or a certificate file its URL names is missing), StoreAuthentication,
  StoreAuthorization or StoreTLS (the store refused the operator's reads);
- ConsumersReady: every store's consumer group has a member (a consumer runs and reads); False
  with KafkaCredentialsMissing while their Kafka client Secret is missing or unusable; Unknown
  with KafkaAuthentication, KafkaAuthorization or KafkaTLS when Kafka refuses the operator's reads;
- CaughtUp: every store has read the topic up to its end at least once (pre-loaded); it stays True
  afterwards, falling behind again is what Fresh reports;
- Fresh: every store was caught up, with a consumer running, within `spec.freshness`;
  True with reason NoFreshnessGoal when the spec sets none; Unknown for a store never seen caught
  up (not observed yet, or Kafka or the store did not answer), False once it has been watched for
  longer than the goal without catching up;
- Ready: the spec is valid, its objects are applied and the four above hold (Fresh not False);
- Rebuilding: a store is being rebuilt beside its live version after a content change (readers
  keep the live version meanwhile, so it does not make the product un-Ready).

Numbers live in the per-store entries (position, lag, deadLetters, lastError) and in the totals
that `kubectl get dp` prints. `lastTransitionTime` moves only when a condition's status changes,
so an unchanged situation yields an identical status, which the operator then does not write.

Called by `provisioner.kube.reconcile`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from provisioner.runtime.progress import lag as records_behind

__all__ = [
    "CONDITION_TYPES",
    "Observation",
    "RebuildObservation",
    "ScaleObservation",
    "StoreObservation",
    "Transition",
    "compute_status",
    "invalid_status",
    "transitions",
]

CONDITION_TYPES = ("Ready", "StoresReady", "ConsumersReady", "CaughtUp", "Fresh", "Rebuilding")


@dataclass(frozen=True, slots=True)
class StoreObservation:
    """One store as observed now; None means "could not be observed"."""

    name: str
    kind: str
    managed: bool
    consumer: str  # the consumer Deployment's name, for messages
    positions: Mapping[int, int] | None = None  # from the store itself
    end_offsets: Mapping[int, int] | None = None  # from Kafka
    consumers: int | None = None  # members of the store's consumer group
    dead_letters: int | None = None
    error: str | None = None  # why the store or Kafka did not answer (never a secret)
    stale_for: float | None = None  # seconds since the store was last seen caught up with a consumer (None: never)
    watched_for: float | None = None  # seconds since its positions and end offsets were first read (None: never)
    rebuild: RebuildObservation | None = None  # a new version being built beside the live store
    read_rate: float | None = None  # records per second its consumers read since the previous observation
    scale: ScaleObservation | None = None  # the autoscaler's choice, with `consumer.autoscale`
    # Kafka refused the operator's reads: (KafkaAuthentication | KafkaAuthorization | KafkaTLS, why)
    kafka_refused: tuple[str, str] | None = None
    # Why the store did not answer, when that has a reason of its own (StoreCredentialsMissing,
    # StoreAuthentication, StoreAuthorization, StoreTLS); None: unreachable, or it answered.
    store_refused: str | None = None

    @property
    def lag(self) -> int | None:
        if self.positions is None or self.end_offsets is None:
            return None
        return records_behind(self.positions, self.end_offsets)


@dataclass(frozen=True, slots=True)
class RebuildObservation:
    """A version of a store being hydrated beside the live one (see provisioner.runtime.rebuild)."""

    version: str
    positions: Mapping[int, int]  # the new version's own positions
    records_per_second: float | None = None  # its pace since the previous observation


@dataclass(frozen=True, slots=True)
class ScaleObservation:
    """The replicas the operator chose for a store's consumer Deployment, and its bounds."""

    desired: int
    low: int
    high: int
    last_scale_time: str | None = None  # RFC 3339, when it last changed the replicas


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything the status of one generation of a product is computed from."""

    generation: int
    stores: tuple[StoreObservation, ...]
    freshness_goal: str | None = None  # spec.freshness as written (e.g. "30s")
    freshness_seconds: float | None = None
    problem: str | None = None  # the objects could not be applied: why
    problem_reason: str = "ApplyFailed"
    kafka_credentials: str | None = None  # why the consumers' Kafka client Secret is not usable


@dataclass(frozen=True, slots=True)
class Transition:
    """A condition whose status changed: worth one Event."""

    type: str
    status: str
    reason: str
    message: str


def _now_text(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _names(stores: Sequence[StoreObservation]) -> str:
    return ", ".join(s.name for s in stores)


def _condition(kind: str, status: bool | None, reason: str, message: str, generation: int) -> dict[str, Any]:
    text = "Unknown" if status is None else ("True" if status else "False")
    return {"type": kind, "status": text, "reason": reason, "message": message, "observedGeneration": generation}


def _stores_ready(observation: Observation) -> dict[str, Any]:
    failing = [s for s in observation.stores if s.positions is None]
    if not failing:
        return _condition("StoresReady", True, "StoresAnswer", "every store answers", observation.generation)
    details = "; ".join(f"store {s.name}: {s.error or 'did not answer'}" for s in failing)
    managed = any(s.managed for s in failing)
    hint = " (a managed store answers once its StatefulSet's pod runs)" if managed else ""
    reason = next((s.store_refused for s in failing if s.store_refused), "StoreUnreachable")
    return _condition("StoresReady", False, reason, f"{details}{hint}", observation.generation)


def _consumers_ready(observation: Observation) -> dict[str, Any]:
    if observation.kafka_credentials is not None:
        return _condition("ConsumersReady", False, "KafkaCredentialsMissing", observation.kafka_credentials,
                          observation.generation)
    unknown = [s for s in observation.stores if s.consumers is None]
    idle = [s for s in observation.stores if s.consumers == 0]
    if idle:
        deployments = ", ".join(s.consumer for s in idle)
        return _condition("ConsumersReady", False, "NoConsumer",
                          f"no consumer reads for store {_names(idle)}: check Deployment {deployments} "
                          "(pods, logs)", observation.generation)
    refused = [s for s in unknown if s.kafka_refused]
    if refused:
        reason, why = refused[0].kafka_refused or ("", "")
        return _condition("ConsumersReady", None, reason, f"cannot tell whether the consumers of {_names(refused)} "
                          f"run: Kafka refused the operator's status reads: {why}", observation.generation)
    if unknown:
        return _condition("ConsumersReady", None, "KafkaUnavailable",
                          f"cannot tell whether the consumers of {_names(unknown)} run: Kafka did not answer",
                          observation.generation)
    return _condition("ConsumersReady", True, "ConsumersRunning", "every store's consumer is reading",
                      observation.generation)


def _caught_up(observation: Observation, previously: Mapping[str, bool]) -> tuple[dict[str, Any], dict[str, bool]]:
    done: dict[str, bool] = {}
    for store in observation.stores:
        done[store.name] = previously.get(store.name, False) or store.lag == 0
    behind = [s for s in observation.stores if not done[s.name]]
    if not behind:
        condition = _condition("CaughtUp", True, "CaughtUp", "every store has read its topic to the end",
                               observation.generation)
    elif any(s.lag is None for s in behind):
        condition = _condition("CaughtUp", None, "PositionUnknown",
                               f"the positions of {_names([s for s in behind if s.lag is None])} are not known yet",
                               observation.generation)
    else:
        condition = _condition("CaughtUp", False, "Hydrating",
                               f"store {_names(behind)} is still loading the topic's backlog "
                               "(status.stores[].lag says how much is left)", observation.generation)
    return condition, done


def _stale(store: StoreObservation, goal: float) -> bool:
    """Last seen caught up longer than `goal` ago, or watched that long without ever catching up
    (a store never observed at all is not known to be stale: its freshness is unknown)."""
    waited = store.stale_for if store.stale_for is not None else store.watched_for
    return waited is not None and waited > goal


def _fresh(observation: Observation) -> dict[str, Any]:
    goal, seconds = observation.freshness_goal, observation.freshness_seconds
    if goal is None or seconds is None:
        return _condition("Fresh", True, "NoFreshnessGoal", "the spec sets no freshness goal (spec.freshness)",
                          observation.generation)
    stale = [s for s in observation.stores if _stale(s, seconds)]
    unknown = [s for s in observation.stores if s.stale_for is None and not _stale(s, seconds)]
    if stale:
        return _condition("Fresh", False, "Stale",
                          f"store {_names(stale)} has not been caught up with a running consumer within {goal}: "
                          "check its consumer and status.stores[].lag", observation.generation)
    if unknown:
        return _condition("Fresh", None, "FreshnessUnknown", f"the freshness of {_names(unknown)} is not known yet",
                          observation.generation)
    return _condition("Fresh", True, "Fresh", f"every store is within its freshness goal of {goal}",
                      observation.generation)


def _ready(observation: Observation, parts: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    generation = observation.generation
    if observation.problem is not None:
        return _condition("Ready", False, observation.problem_reason, observation.problem, generation)
    for kind, reason in (("StoresReady", "StoresNotReady"), ("ConsumersReady", "ConsumersNotReady"),
                         ("CaughtUp", "Hydrating")):
        if parts[kind]["status"] != "True":
            return _condition("Ready", False, reason, parts[kind]["message"], generation)
    if parts["Fresh"]["status"] == "False":
        return _condition("Ready", False, "Stale", parts["Fresh"]["message"], generation)
    return _condition("Ready", True, "Ready", "every store is loaded, fed by a running consumer and fresh", generation)


def _with_times(conditions: list[dict[str, Any]], previous: Sequence[Mapping[str, Any]],
                now: datetime) -> list[dict[str, Any]]:
    before = {c.get("type"): c for c in previous}
    out = []
    for condition in conditions:
        old = before.get(condition["type"])
        same = old is not None and old.get("status") == condition["status"] and old.get("lastTransitionTime")
        condition["lastTransitionTime"] = old["lastTransitionTime"] if same and old else _now_text(now)
        out.append(condition)
    return out


def _store_entry(store: StoreObservation, caught_up: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": store.name, "kind": store.kind, "managed": store.managed,
                             "ready": bool(store.positions is not None and store.consumers and caught_up
                                           and store.lag is not None),
                             "caughtUp": caught_up}
    if store.consumers is not None:
        entry["replicas"] = store.consumers
    if store.positions is not None:
        entry["position"] = sum(store.positions.values())
    if store.lag is not None:
        entry["lag"] = store.lag
    if store.dead_letters is not None:
        entry["deadLetters"] = store.dead_letters
    if store.error:
        entry["lastError"] = store.error
    if store.rebuild is not None:
        entry["rebuild"] = _rebuild_entry(store.rebuild, store.end_offsets)
    if store.scale is not None:
        scale = store.scale
        entry["autoscale"] = {"desired": scale.desired, "min": scale.low, "max": scale.high}
        if store.consumers is not None:
            entry["autoscale"]["current"] = store.consumers
        if scale.last_scale_time is not None:
            entry["autoscale"]["lastScaleTime"] = scale.last_scale_time
    return entry


def _rebuild_entry(rebuild: RebuildObservation, ends: Mapping[int, int] | None) -> dict[str, Any]:
    """Progress of a rebuild: records the new version has read, records left, and the time left
    at its recent pace."""
    entry: dict[str, Any] = {"version": rebuild.version, "replayed": sum(rebuild.positions.values())}
    if ends is not None:
        left = records_behind(rebuild.positions, ends)
        entry["left"] = left
        if rebuild.records_per_second:
            entry["estimatedSeconds"] = round(left / rebuild.records_per_second)
    return entry


def _rebuilding(observation: Observation) -> dict[str, Any]:
    rebuilding = [s for s in observation.stores if s.rebuild is not None]
    if not rebuilding:
        return _condition("Rebuilding", False, "NoRebuild", "no store is being rebuilt", observation.generation)
    return _condition("Rebuilding", True, "Rebuilding",
                      f"store {_names(rebuilding)} is being rebuilt beside the live version for a changed spec; "
                      "readers keep the current version until it switches (status.stores[].rebuild has the "
                      "progress)", observation.generation)


def compute_status(observation: Observation, previous: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The whole status of a product (valid spec) from an observation and its previous status."""
    previous = previous or {}
    previously_caught_up = {s.get("name", ""): bool(s.get("caughtUp")) for s in previous.get("stores", [])}
    caught_up, done = _caught_up(observation, previously_caught_up)
    parts = {
        "StoresReady": _stores_ready(observation),
        "ConsumersReady": _consumers_ready(observation),
        "CaughtUp": caught_up,
        "Fresh": _fresh(observation),
    }
    conditions = [_ready(observation, parts), *parts.values(), _rebuilding(observation)]
    stores = [_store_entry(s, done[s.name]) for s in observation.stores]
    lags = [s.lag for s in observation.stores]
    dead = [s.dead_letters for s in observation.stores]
    status: dict[str, Any] = {
        "observedGeneration": observation.generation,
        "conditions": _with_times(conditions, previous.get("conditions", []), now),
        "storesReady": f"{sum(1 for e in stores if e['ready'])}/{len(stores)}",
        "stores": stores,
    }
    if any(x is not None for x in lags):
        status["lag"] = sum(x for x in lags if x is not None)
    if any(x is not None for x in dead):
        status["deadLetters"] = sum(x for x in dead if x is not None)
    return status


def invalid_status(generation: int, message: str, previous: Mapping[str, Any] | None, now: datetime,
                   reason: str = "InvalidSpec") -> dict[str, Any]:
    """The status of a product whose spec is invalid: Ready=False naming the error; everything
    else (the stores, the other conditions) is left as it was, since no child was changed."""
    previous = previous or {}
    ready = _condition("Ready", False, reason, message, generation)
    others = [dict(c) for c in previous.get("conditions", []) if c.get("type") != "Ready"]
    conditions = _with_times([ready], previous.get("conditions", []), now) + others
    return {**previous, "observedGeneration": generation, "conditions": conditions}


def transitions(previous: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]],
                stores: Sequence[Mapping[str, Any]] = ()) -> list[Transition]:
    """Conditions whose status (or, for a failing one, reason) differs from before: one Event each.

    A product's first status is at most one transition, Ready's, whose message names the
    conditions not yet True, and none when it reports only what a new product passes through on
    its way to Ready (`stores`: the status's entries, which tell a managed store still starting
    from one that does not answer). At ten thousand products created at once, an Event saying
    "starting" for each would be a quarter of the operator's requests and tell nobody anything
    the status does not; a failure on arrival (an invalid spec, a taken name, missing
    credentials, a refusal, an unmanaged store that does not answer) still gets its Event."""
    if not previous:
        return [] if _starting(current, stores) else _first(current)
    before = {c.get("type"): c for c in previous}
    changes = []
    for condition in current:
        old = before.get(condition["type"])
        if old is not None and old.get("status") == condition["status"] and \
                (condition["status"] == "True" or old.get("reason") == condition.get("reason")):
            continue
        changes.append(Transition(condition["type"], condition["status"], condition.get("reason", ""),
                                  condition.get("message", "")))
    return changes


# Ready's reasons while it waits on the other conditions, and the other conditions' reasons on the
# way to Ready: a consumer not in its group yet, a store loading the backlog, positions and
# freshness not known yet, no rebuild.
_WAITING = frozenset({"StoresNotReady", "ConsumersNotReady", "Hydrating"})
_STARTING = frozenset({"NoConsumer", "PositionUnknown", "Hydrating", "FreshnessUnknown", "NoRebuild"})


def _starting(current: Sequence[Mapping[str, Any]], stores: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a first status says only that the product is on its way to Ready."""
    if not current:
        return False
    managed_starting = all(s.get("managed") for s in stores if "position" not in s)
    for condition in current:
        reason = condition.get("reason", "")
        if condition.get("type") == "Ready":
            if condition.get("status") != "True" and reason not in _WAITING:
                return False
        elif condition.get("status") != "True" and reason not in _STARTING and \
                not (reason == "StoreUnreachable" and managed_starting):
            return False
    return True


def _first(current: Sequence[Mapping[str, Any]]) -> list[Transition]:
    ready = next((c for c in current if c.get("type") == "Ready"), None)
    if ready is None:
        return []
    settled = {"Rebuilding": "False"}  # the one condition whose good value is False
    pending = [f"{c['type']}={c['status']} ({c.get('reason', '')})" for c in current
               if c.get("type") != "Ready" and c.get("status") != settled.get(c.get("type", ""), "True")]
    message = ready.get("message", "")
    if pending:
        message = f"{message}; {', '.join(pending)}" if message else ", ".join(pending)
    return [Transition("Ready", ready["status"], ready.get("reason", ""), message)]
