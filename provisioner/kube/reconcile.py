"""Reconcile one DataProduct: level-based, idempotent, a short list of named steps.

1. `parse_product`: the custom resource's body into a DataProduct with the checks `provisioner
   validate` runs (same words; no file, line or column: there is no file). An invalid spec stops
   here: Ready=False/InvalidSpec names the error and no child is touched.
2. `desired_objects`: `provisioner render` of the product, with an ownerReference to it and its
   Secrets (managed stores' derived credentials, connection URLs) rendered as `data`. A `${NAME}`
   in a connection URL is never expanded (the operator's environment holds the credentials key):
   the product is Ready=False/InvalidSpec naming the field. The consumers' pod template carries
   the resourceVersion of their Kafka client Secret as last read (by name, on each product event
   and resync), so a rotated Secret rolls them onto its new content; while that Secret is missing
   or unusable they are rendered at 0 replicas (the status says why), so nothing crash-loops.
3. `apply_changes`: server-side apply (one field manager) of each desired object that is missing
   or differs from the live one. The operator never adopts or overwrites an object it did not
   create for this product: a missing object is created (POST, which fails if the name is taken)
   and only an object whose ownerReferences name this product's uid is ever applied; any other
   object holding a desired name leaves the product Ready=False/NameTaken naming it (and an Event).
   "Differs" means some value the operator sets is not what the live object holds (values the
   server defaults are ignored), so an edited child is restored and an unchanged one costs no
   write: an idle operator writes nothing.
4. `prune`: delete children the product owns (labels and an ownerReference to its uid) that are no
   longer desired, e.g. the objects of a removed store. Secrets are not watched (`WATCHED_KINDS`):
   the rendered ones are read by name on each periodic reconcile, and a Secret a live workload reads
   that is no longer rendered is read by name and deleted if the product owns it.
5. `observe` + `write_status`: positions, lag, consumers and dead letters from the stores and
   Kafka, turned into conditions; the status is written only when it changed, and each condition
   that changed status becomes one Event (a first status only when it reports a failure: see
   `status.transitions`). Steps 1-4 (`apply`) never wait on a store or a broker;
   the operator runs step 5 apart from them, so drift is repaired while Kafka is down. With
   `consumer.autoscale`, step 5 also sets each consumer Deployment's replicas from the lag
   (`provisioner.kube.scaling`), and step 3 keeps that choice.

Field order in the cluster: the API server keeps `spec.fields` as a JSON object and returns its keys
sorted by name (and integral floats as integers), so the order written in Git is lost. A product
in a cluster therefore evaluates, and creates Postgres columns for, its fields in name order;
`parse_product` sorts them explicitly, so the outcome does not depend on the server. Offline
`tests:` are not run by the operator (run `provisioner test` in CI).

Deletion needs no finalizer: every child is owned by the product, so the garbage collector removes
them; nothing outside the cluster is created (topics and store contents outlive a product by design).

Called by the operator (its live children come from watches) and by `provisioner apply|plan` (from
lists).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from provisioner.errors import ConflictError, ProvisionerError
from provisioner.kube.autoscale import DEFAULT_COOL_DOWN_S
from provisioner.kube.client import ApiRefusedError, KubeClient
from provisioner.kube.kafka_secret import kafka_secret_of
from provisioner.kube.observe import Observer
from provisioner.kube.render import (
    DEFAULT_IMAGE,
    DEFAULT_POSTGRES_IMAGE,
    DEFAULT_REDIS_IMAGE,
    OPERATOR_NAMESPACE,
    RenderOptions,
    RenderRefused,
    render,
)
from provisioner.kube.scaling import ScaleChange, Scaler
from provisioner.kube.status import Observation, Transition, compute_status, invalid_status, transitions
from provisioner.spec.durations import parse_duration
from provisioner.spec.findings import Finding, SpecError
from provisioner.spec.loader import product_from_document
from provisioner.spec.models import API_VERSION, KIND, DataProduct, consumer_group_id
from provisioner.spec.yamlsafe import Document

__all__ = [
    "CHILD_KINDS",
    "WATCHED_KINDS",
    "NameTakenError",
    "ReconcileResult",
    "Reconciler",
    "Settings",
    "child_labels",
    "desired_objects",
    "differs",
    "owned_by",
    "owner_reference",
    "parse_product",
    "spec_problem",
    "stale_children",
]

# ServiceAccount: rendered by earlier versions (one per product), no longer; still listed and
# watched so that such an account, now undesired, is pruned like any other stale child.
CHILD_KINDS = ("ServiceAccount", "ConfigMap", "Secret", "Service", "NetworkPolicy", "StatefulSet", "Deployment")
# What the operator lists and watches. Not Secrets: RBAC cannot narrow list/watch to a label, so
# watching them would mean reading every Secret of the cluster. The Secrets a product renders are
# read by name (`get`) when its status is refreshed, which repairs their drift every resync.
WATCHED_KINDS = tuple(kind for kind in CHILD_KINDS if kind != "Secret")


class NameTakenError(ProvisionerError):
    """A desired object's name is held by an object this product did not create: not overwritten."""

    reason = "NameTaken"


_METADATA_KEPT = ("name", "namespace", "labels")


@dataclass(frozen=True, slots=True)
class Settings:
    """The platform's decisions, shared by every product (see `RenderOptions`)."""

    kafka_bootstrap: str
    credentials_key: bytes | None = None
    image: str = DEFAULT_IMAGE
    redis_image: str = DEFAULT_REDIS_IMAGE
    postgres_image: str = DEFAULT_POSTGRES_IMAGE
    storage_size: str = "1Gi"
    operator_namespace: str = OPERATOR_NAMESPACE  # the operator's own (its pods may reach managed stores)
    scale_down_delay: float = DEFAULT_COOL_DOWN_S  # autoscaling's cool-down before it removes consumers
    kafka_secret: str | None = None  # the platform's Kafka client Secret, in each product's namespace


@dataclass(slots=True)
class ReconcileResult:
    product: DataProduct | None = None
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    problem: str | None = None
    status_written: bool = False
    transitions: list[Transition] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)  # the objects created, as the server answered


def child_labels(product_name: str) -> dict[str, str]:
    """The labels every child of a product carries (render sets them)."""
    return {"app.kubernetes.io/managed-by": "provisioner", "app.kubernetes.io/part-of": product_name}


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = body["metadata"]
    return {"apiVersion": API_VERSION, "kind": KIND, "name": metadata["name"], "uid": metadata["uid"],
            "controller": True, "blockOwnerDeletion": True}


def spec_problem(error: SpecError) -> str:
    """Findings as one line without a file location: `path: message; ...`."""
    return "; ".join(f"{f.path}: {f.message}" if f.path else f.message for f in error.findings)


def parse_product(body: Mapping[str, Any]) -> DataProduct:
    """The product a custom resource declares, checked as `provisioner validate` checks a file;
    SpecError (file-free findings) when it is invalid. Server-side metadata is left out, and
    `spec.fields` is taken in name order (see the module docstring)."""
    metadata = body.get("metadata", {})
    spec = dict(body.get("spec") or {})
    if isinstance(spec.get("fields"), dict):
        spec["fields"] = dict(sorted(spec["fields"].items()))
    data = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
            "metadata": {k: metadata[k] for k in _METADATA_KEPT if k in metadata}, "spec": spec}
    product, findings = product_from_document("", Document(0, data, {}, 1, []))
    if product is None:
        raise SpecError(findings or [Finding("", 1, 1, "", "not a valid DataProduct")])
    return product


def _as_data(secret: dict[str, Any]) -> dict[str, Any]:
    """A Secret with `stringData` turned into `data`, as the server stores it (so it compares)."""
    string_data = secret.pop("stringData", None) or {}
    secret["data"] = {k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()}
    return secret


def desired_objects(product: DataProduct, body: Mapping[str, Any], settings: Settings, *,
                    leave_derived: bool = False, kafka_secret_version: str | None = None,
                    kafka_secret_usable: bool = True) -> list[dict[str, Any]]:
    """What the product's children should be; with `leave_derived` and no credentials key, without
    the managed stores' credential Secrets (their values derive from a key only the operator has).
    `kafka_secret_version` and `kafka_secret_usable`: the consumers' Kafka client Secret as last read."""
    options = RenderOptions(
        kafka_bootstrap=settings.kafka_bootstrap, namespace=body["metadata"]["namespace"], image=settings.image,
        redis_image=settings.redis_image, postgres_image=settings.postgres_image, storage_size=settings.storage_size,
        with_secrets=True, credentials_key=settings.credentials_key, owner=owner_reference(body),
        operator_namespace=settings.operator_namespace, leave_derived=leave_derived,
        kafka_secret=settings.kafka_secret, kafka_secret_version=kafka_secret_version,
        kafka_secret_usable=kafka_secret_usable,
    )
    try:
        objects = render([product], options)[0].objects
    except RenderRefused as error:  # e.g. a ${NAME}: the operator's environment is not the spec's
        raise SpecError([Finding("", 1, 1, error.path, str(error))]) from None
    except ValueError as error:  # no credentials key for a managed store
        raise ApiRefusedError(f"cannot render the objects: {error}") from None
    return [_as_data(dict(o)) if o["kind"] == "Secret" else dict(o) for o in objects]


def _empty(value: Any) -> bool:
    """A zero value: the API server leaves such fields out of what it stores (`omitempty`), so a
    desired `false`, `0` or `""` matches an absent live field (e.g. a Service's
    `publishNotReadyAddresses: false`); without this every reconcile would apply them again."""
    return value is None or value in ({}, [], False, "")


def _contains(live: Any, want: Any) -> bool:
    if isinstance(want, dict):
        if not isinstance(live, dict):
            return all(_empty(v) for v in want.values()) and _empty(live)
        return all(_contains(live.get(k), v) if not _empty(v) else _empty(live.get(k)) or live.get(k) == v
                   for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(map(_contains, live, want))
    if live == want:
        return True
    return live is not None and not isinstance(live, (dict, list)) and str(live) == str(want)


def differs(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether applying `desired` would change `live`: a value the operator sets is not the live one."""
    return live is None or not _contains(live, desired)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def stale_children(live: Iterable[Mapping[str, Any]], desired: Sequence[Mapping[str, Any]],
                   owner_uid: str) -> list[Mapping[str, Any]]:
    """Live children owned by the product (uid) that are not desired any more."""
    wanted = {_key(o) for o in desired}
    return [o for o in live if _key(o) not in wanted and owned_by(o, owner_uid)]


def owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    """Whether the product with `owner_uid` created `obj` (its ownerReferences name that uid)."""
    return any(ref.get("uid") == owner_uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def _secrets_read(obj: Mapping[str, Any]) -> set[str]:
    """Names of the Secrets a workload's containers read through `secretKeyRef`."""
    if obj.get("kind") not in ("Deployment", "StatefulSet"):
        return set()
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {ref["name"] for container in pod.get("containers") or [] for env in container.get("env") or []
            if (ref := (env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")}


def _holder(obj: Mapping[str, Any]) -> str:
    """Who holds an object's name, in words (names only: never an object's content)."""
    metadata = obj.get("metadata", {})
    owners = [f"{ref.get('kind')} {ref.get('name')}" for ref in metadata.get("ownerReferences") or []]
    whose = f"belongs to {', '.join(owners)}" if owners else "was not created by the operator for this product"
    return f"{obj.get('kind')} {metadata.get('name')} already exists and {whose}"


def _now() -> datetime:
    return datetime.now(UTC)


def _same_status(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> bool:
    return json.dumps(a or {}, sort_keys=True) == json.dumps(b, sort_keys=True)


class Reconciler:
    """The steps above, with the client, the observer and the clock injected."""

    def __init__(self, client: KubeClient, settings: Settings, observer: Observer | None,
                 now: Any = _now) -> None:
        self.client = client
        self.settings = settings
        self.observer = observer
        self._now = now
        # The last parse and render of each product, reused while its uid, generation and labels
        # stay (a child's event or a status refresh reconciles it again with the same spec).
        self._rendered: dict[tuple[str, str], tuple[tuple[Any, ...], DataProduct, list[dict[str, Any]]]] = {}
        self.scaler = Scaler(settings.scale_down_delay)
        # Each Kafka client Secret (namespace, name) as last read: its resourceVersion, rendered into
        # the consumers' pod template so that a rotated Secret rolls them onto its new content, and
        # whether it is usable (if not, the consumers are rendered at 0 replicas: no crash loop).
        self._kafka_secrets: dict[tuple[str, str], tuple[str | None, bool]] = {}
        # Per product, its children found to match what it desires: (kind, name) -> (the live
        # object's resourceVersion, a digest of the desired object, that object), see `_differs`.
        self._matching: dict[tuple[str | None, str | None],
                             dict[tuple[str, str], tuple[str, bytes, Mapping[str, Any]]]] = {}

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is cached about a deleted product."""
        self._rendered.pop((namespace, name), None)
        self._matching.pop((namespace, name), None)
        self.scaler.forget(namespace, name)

    def names_held(self, namespace: str, product: str) -> dict[tuple[str, str], str]:
        """(kind, name) of every object the other products of `namespace` render, and whose they are
        (from the last render of each: the admission webhook refuses a product that would clash)."""
        rendered = list(self._rendered.items())  # workers add to it meanwhile
        return {(o["kind"], o["metadata"]["name"]): name for (where, name), (_, _, objects) in rendered
                if where == namespace and name != product for o in objects}

    def _desired(self, body: Mapping[str, Any], *, refresh: bool = False) -> tuple[DataProduct, list[dict[str, Any]]]:
        """parse_product and desired_objects, from the cache when the body's spec and its Kafka
        client Secret's version are the ones seen last (`refresh`: read that version again)."""
        metadata = body["metadata"]
        where = (metadata["namespace"], metadata["name"])
        version = (metadata.get("uid"), metadata.get("generation"), json.dumps(metadata.get("labels"), sort_keys=True),
                   body.get("apiVersion"), body.get("kind"))
        cached = self._rendered.get(where)
        product = cached[1] if cached is not None and cached[0][:-1] == version else parse_product(body)
        kafka = self._kafka_secret(metadata["namespace"], product, refresh)
        if cached is not None and cached[0] == (*version, kafka):
            return cached[1], cached[2]
        desired = desired_objects(product, body, self.settings, kafka_secret_version=kafka[0],
                                  kafka_secret_usable=kafka[1])
        self._rendered[where] = ((*version, kafka), product, desired)
        return product, desired

    def _kafka_secret(self, namespace: str, product: DataProduct, refresh: bool) -> tuple[str | None, bool]:
        """The product's Kafka client Secret's resourceVersion and whether it is usable: read
        (through the observer's short-lived cache) when `refresh`, else as last read; a Secret the
        operator cannot read keeps the last answer (usable, when there is none: the status says why)."""
        name = kafka_secret_of(product, self.settings.kafka_secret)
        if name is None or self.observer is None:
            return None, True
        key = (namespace, name)
        if refresh or key not in self._kafka_secrets:
            with contextlib.suppress(ProvisionerError):
                version, problem = self.observer.kafka_secret_state(product, namespace, self.settings.kafka_secret)
                self._kafka_secrets[key] = (version, problem is None)
        return self._kafka_secrets.get(key, (None, True))

    def _kafka_usable(self, namespace: str, product: DataProduct) -> bool:
        """Whether the product's Kafka client Secret was usable when last read (autoscaling then
        leaves its consumers at the 0 replicas rendered for an unusable one)."""
        return self._kafka_secret(namespace, product, refresh=False)[1]

    def reconcile(self, body: Mapping[str, Any], live: Sequence[Mapping[str, Any]], *,
                  observe: bool = True) -> ReconcileResult:
        """Bring one product's children and status to what its spec asks: `apply`, then (with
        `observe`) `observe` and `write_status` in one go. The operator runs the two halves apart,
        so that a slow store or Kafka never holds up its children."""
        result = self.apply(body, live, secrets=observe)
        if observe and result.problem is None:
            observation = self.observe(body)
            if observation is not None:
                self.write_status(body, observation, result)
        return result

    def apply(self, body: Mapping[str, Any], live: Sequence[Mapping[str, Any]], *,
              secrets: bool = True) -> ReconcileResult:
        """Steps 1-4: the children as the spec asks. Raises only retryable errors (the caller
        retries with backoff), reports the rest in the status (`problem`); touches no store and
        no broker. With `secrets`, the rendered Secrets are read by name and repaired too (they are
        not watched: a child's event never needs them)."""
        result = ReconcileResult()
        metadata = body["metadata"]
        namespace = metadata["namespace"]
        generation = int(metadata.get("generation", 1))
        previous = body.get("status") or {}
        try:
            product, desired = self._desired(body, refresh=secrets)
        except SpecError as error:
            result.problem = spec_problem(error)
            self._write_status(body, invalid_status(generation, result.problem, previous, self._now()), result)
            return result
        except ProvisionerError as error:
            if error.retryable:
                raise
            result.problem = str(error)
            self._write_status(body, invalid_status(generation, result.problem, previous, self._now(),
                                                    reason="ApplyFailed"), result)
            return result
        result.product = product
        if self._kafka_usable(namespace, product):  # else the consumers stay at 0 until it is
            desired = self.scaler.with_replicas(body, product, desired)
        try:
            # Secrets are not watched: read the rendered ones by name when refreshing the status,
            # and leave them alone otherwise (a child's event is never a Secret's).
            if secrets:
                live = [*live, *self._secrets(namespace, desired)]
            else:
                desired = [o for o in desired if o["kind"] != "Secret"]
            self.apply_changes(desired, live, result, metadata["uid"])
            self.prune(live, desired, metadata["uid"], namespace, result)
        except ProvisionerError as error:
            if error.retryable:
                raise
            result.problem = str(error)
            self._write_status(body, invalid_status(generation, result.problem, previous, self._now(),
                                                    reason=getattr(error, "reason", "ApplyFailed")), result)
        return result

    def expect_observations(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Tell the observer which products are observed next, in order, so Kafka describes their
        consumer groups together (a request per group was most of a status refresh's Kafka CPU).
        Their groups are read lazily, only as many as the observer describes at once."""
        if self.observer is not None:
            self.observer.expect_groups(group for body in bodies for group in self._consumer_groups(body))

    def _consumer_groups(self, body: Mapping[str, Any]) -> list[str]:
        """The product's consumer groups: from its last parse, or (not parsed yet) its stores'
        names as written; a hint only, so a spec that does not parse costs a wasted description."""
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        cached = self._rendered.get((namespace, name))
        if cached is not None:
            return [cached[1].consumer_group(store) for store in cached[1].spec.stores]
        stores = (body.get("spec") or {}).get("stores")
        return [consumer_group_id(namespace, name, store["name"]) for store in stores or ()
                if isinstance(store, Mapping) and isinstance(store.get("name"), str)] \
            if isinstance(stores, list) else []

    def observe(self, body: Mapping[str, Any]) -> Observation | None:
        """Step 5's reads: the stores and Kafka, each bounded by the observer's timeouts; None
        without an observer or for an invalid spec (`apply` reports that one). Writes nothing."""
        if self.observer is None:
            return None
        try:
            product, desired = self._desired(body)
        except (SpecError, ProvisionerError):
            return None
        namespace = body["metadata"]["namespace"]
        return Observation(
            generation=int(body["metadata"].get("generation", 1)),
            stores=self.observer.observe(product, namespace, desired),
            kafka_credentials=self.observer.kafka_credentials(product, namespace, self.settings.kafka_secret),
            freshness_goal=product.spec.freshness,
            freshness_seconds=parse_duration(product.spec.freshness).total_seconds()
            if product.spec.freshness else None,
        )

    def write_status(self, body: Mapping[str, Any], observation: Observation,
                     result: ReconcileResult | None = None) -> ReconcileResult:
        """Step 5's write: the status computed from `observation` and the status `body` holds,
        written only when it changed."""
        result = result if result is not None else ReconcileResult()
        changes: list[ScaleChange] = []
        with contextlib.suppress(SpecError, ProvisionerError):  # observe() already parsed it
            product, desired = self._desired(body)
            if self._kafka_usable(body["metadata"]["namespace"], product):
                observation, changes = self.scaler.decide(body, product, observation, self._now())
        for change in changes:
            if (deployment := Scaler.deployment(desired, change)) is not None:
                self.client.apply(deployment)
                result.applied.append(f"Deployment/{change.deployment}")
        self._write_status(body, compute_status(observation, body.get("status") or {}, self._now()), result)
        for change in changes:
            self._emit(body, "ScaledUp" if change.up else "ScaledDown", change.message, "Normal")
        return result

    def apply_changes(self, desired: Sequence[dict[str, Any]], live: Sequence[Mapping[str, Any]],
                      result: ReconcileResult, owner_uid: str) -> None:
        """Create what is missing, apply what differs and is this product's; NameTakenError (after
        the rest is done) naming the objects that hold a desired name but are not the product's."""
        current = {_key(o): o for o in live}
        taken: list[str] = []
        for obj in desired:
            now = current.get(_key(obj))
            if not self._differs(obj, now):
                continue
            if now is None:
                now = self._create(obj, result)
                if now is None:
                    result.applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
                    continue
            if not owned_by(now, owner_uid):
                taken.append(_holder(now))
                continue
            self.client.apply(obj)
            result.applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
        if taken:
            raise NameTakenError(f"{'; '.join(taken)}: rename the product or store, or remove that object "
                                 "(the operator never overwrites an object it did not create)")

    def _differs(self, desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
        """`differs`, remembered: a live object at a resourceVersion already found to match the
        same desired object (same JSON) still matches, so a resync that finds nothing changed costs
        a serialization per child instead of a walk of it (most of an idle operator's CPU); and no
        serialization when the desired object is the very one rendered last time (renders are
        cached per spec), whose digest is kept with it."""
        version = live is not None and (live.get("metadata") or {}).get("resourceVersion")
        if not version:
            return differs(desired, live)
        metadata = desired["metadata"]
        where = (metadata.get("namespace"), (metadata.get("labels") or {}).get("app.kubernetes.io/part-of"))
        entry = (desired["kind"], metadata["name"])
        known = self._matching.setdefault(where, {})
        seen = known.get(entry)
        if seen is not None and seen[2] is desired:  # the same rendered object (kept, so never another's id)
            if seen[0] == version:
                return False
            digest = seen[1]
        else:
            digest = hashlib.blake2b(json.dumps(desired, default=str).encode(), digest_size=16).digest()
            if seen is not None and seen[:2] == (version, digest):
                known[entry] = (version, digest, desired)
                return False
        if differs(desired, live):
            known.pop(entry, None)
            return True
        known[entry] = (version, digest, desired)
        return False

    def _create(self, obj: dict[str, Any], result: ReconcileResult) -> Mapping[str, Any] | None:
        """Create `obj`; None when created, else the object that already holds its name."""
        try:
            answer = self.client.create(obj)
            answer.setdefault("kind", obj["kind"])
            result.created.append(answer)
            return None
        except ConflictError:  # 409 AlreadyExists: someone's object, or ours not yet in the cache
            existing = self.client.get(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
            if existing is None:
                raise  # deleted meanwhile: retried
            return existing

    def _secrets(self, namespace: str, objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The live Secrets named like the Secrets among `objects` (those that exist)."""
        found = (self.client.get("Secret", namespace, o["metadata"]["name"]) for o in objects if o["kind"] == "Secret")
        return [{**secret, "kind": "Secret"} for secret in found if secret is not None]

    def prune(self, live: Sequence[Mapping[str, Any]], desired: Sequence[Mapping[str, Any]], owner_uid: str,
              namespace: str, result: ReconcileResult) -> None:
        still_read = {o["metadata"]["name"] for o in [*live, *desired] if o["kind"] == "Secret"}
        still_read |= {name for o in desired for name in _secrets_read(o)}
        unread = {name for o in live for name in _secrets_read(o)} - still_read
        no_longer = self._secrets(namespace, ({"kind": "Secret", "metadata": {"name": n}} for n in sorted(unread)))
        for obj in stale_children([*live, *no_longer], desired, owner_uid):
            meta = obj["metadata"]
            if self.client.delete(obj["kind"], namespace, meta["name"], uid=meta.get("uid")):
                result.deleted.append(f"{obj['kind']}/{meta['name']}")

    def _write_status(self, body: Mapping[str, Any], status: dict[str, Any], result: ReconcileResult) -> None:
        previous = body.get("status") or {}
        if _same_status(previous, status):
            return
        metadata = body["metadata"]
        # A merge patch: keys of the old status that the new one drops are set to null (removed).
        patch = {**{k: None for k in previous if k not in status}, **status}
        self.client.patch_status("DataProduct", metadata["namespace"], metadata["name"], patch)
        result.status_written = True
        result.transitions = transitions(previous.get("conditions", []), status.get("conditions", []),
                                         status.get("stores", []))
        for change in result.transitions:
            self._event(body, change)

    def _event(self, body: Mapping[str, Any], change: Transition) -> None:
        self._emit(body, change.reason or change.type, f"{change.type}={change.status}: {change.message}",
                   "Normal" if change.status == "True" else "Warning")

    def _emit(self, body: Mapping[str, Any], reason: str, message: str, kind: str) -> None:
        metadata = body["metadata"]
        stamp = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
            "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": metadata["name"],
                               "namespace": metadata["namespace"], "uid": metadata["uid"]},
            "reason": reason, "message": message, "type": kind, "source": {"component": "provisioner-operator"},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        with contextlib.suppress(ProvisionerError):  # an Event is a courtesy: never fail a reconcile for one
            self.client.create(event)
