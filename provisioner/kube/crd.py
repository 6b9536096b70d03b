"""The DataProduct CustomResourceDefinition, generated from the spec model.

One source of truth: the CLI's JSON Schema (`provisioner schema`) and the CRD's openAPIV3Schema
both derive from `provisioner.spec.models`. The conversion makes pydantic's JSON Schema structural
(Kubernetes' term): `$ref`s inlined, `null` branches of optional fields dropped, free-form values
(`source.schema`, test events) marked `x-kubernetes-preserve-unknown-fields`, defaults moved into
the descriptions (the API server applies none, so a stored DataProduct is what its author wrote and
GitOps tools see no drift). What the API server can check itself is added as OpenAPI keywords and
x-kubernetes-validations (CEL) rules; the rest (expressions compile, keys name fields, ...) is
checked by `provisioner validate` and the operator.

Regenerate the checked-in copy with `python -m provisioner.kube.crd > operators/crd/dataproducts.provisioner.dev.yaml`
(a unit test fails when it is stale). Called by that test, the k8s tests and the operator.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

import yaml

from provisioner.spec.export import spec_json_schema
from provisioner.spec.models import API_VERSION, KIND
from provisioner.spec.names import PRODUCT_NAME_MAX

__all__ = ["CRD_NAME", "GROUP", "PLURAL", "VERSION", "crd", "crd_yaml"]

GROUP, VERSION = API_VERSION.split("/")
PLURAL = "dataproducts"
CRD_NAME = f"{PLURAL}.{GROUP}"

# OpenAPI keywords a structural schema keeps (pydantic's `title`, `default`, `$schema`,
# `additionalProperties: false` and the like are dropped or rewritten).
_KEPT = ("description", "type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum",
         "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "minProperties", "maxProperties",
         "required")

_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_SQL_IDENTIFIER = {"pattern": r"^[a-z_][a-z0-9_]{0,62}$"}
_TOPIC = {
    "pattern": r"^[a-zA-Z0-9._-]{1,249}$",
    "maxLength": 249,
    "x-kubernetes-validations": [{"rule": "self != '.' && self != '..'",
                                  "message": "'.' and '..' are not legal Kafka topic names"}],
}
# Longer than zero: some digit is not 0 (a pattern costs nothing of the CEL budget, which an
# unbounded string would exhaust).
_POSITIVE_DURATION = {"allOf": [{"pattern": "[1-9]"}]}


def _exactly_one(fields: tuple[str, ...], message: str) -> dict[str, Any]:
    present = ", ".join(f"has(self.{f})" for f in fields)
    return {"x-kubernetes-validations": [{"rule": f"[{present}].filter(x, x).size() == 1", "message": message}]}


# What the API server can check itself beyond pydantic's JSON Schema: the field-level rules the
# model enforces in Python validators, keyed by their path in `spec` ("[]" is a list item, "{}" a
# map value). Each is covered by a test in tests/k8s/test_crd.py.
_EXTRA: dict[str, dict[str, Any]] = {
    "source.topic": _TOPIC,
    "errors.deadLetterTopic": _TOPIC,
    "source.startFrom": {"x-kubernetes-validations": [{
        "rule": "self == 'earliest' || self == 'latest' || self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]"
                "[0-9]{2}:[0-9]{2}:[0-9]{2}(\\\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$')",
        "message": "must be earliest, latest or an RFC 3339 timestamp (2026-01-31T00:00:00Z)",
    }]},
    "stores": {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    "stores[].name": {"pattern": _LABEL_PATTERN, "maxLength": PRODUCT_NAME_MAX},
    "stores[]": _exactly_one(("redis", "postgres"), "a store sets exactly one of redis or postgres"),
    "stores[].redis.connection": _exactly_one(("url", "secretRef"), "set exactly one of url or secretRef"),
    "stores[].postgres.connection": _exactly_one(("url", "secretRef"), "set exactly one of url or secretRef"),
    "stores[].redis.connection.secretRef.name": {"pattern": _LABEL_PATTERN, "maxLength": 63},
    "stores[].postgres.connection.secretRef.name": {"pattern": _LABEL_PATTERN, "maxLength": 63},
    "stores[].redis.ttl": _POSITIVE_DURATION,
    "stores[].postgres.schema": _SQL_IDENTIFIER,
    "stores[].postgres.table": _SQL_IDENTIFIER,
    "freshness": _POSITIVE_DURATION,
    # Exactly one of upsert, delete, skip, deadLetter (counted, not CEL: up to 1000 tests of any length).
    "tests[].expect[]": {"minProperties": 1, "maxProperties": 1},
}

_CONDITION = {
    "type": "object",
    "description": "An observation of one aspect of the product's state.",
    "required": ["type", "status"],
    "properties": {
        "type": {"type": "string",
                 "description": "Ready, StoresReady, ConsumersReady, CaughtUp, Fresh or Rebuilding.",
                 "maxLength": 316},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"], "description": "True, False or Unknown."},
        "reason": {"type": "string", "description": "A CamelCase word saying why.", "maxLength": 1024},
        "message": {"type": "string", "description": "What happened, for people.", "maxLength": 32768},
        "observedGeneration": {"type": "integer", "description": "The generation this condition describes."},
        "lastTransitionTime": {"type": "string", "format": "date-time",
                               "description": "When the status last changed."},
    },
}
_STORE_STATUS = {
    "type": "object",
    "description": "One store's consumer.",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "description": "The store's name."},
        "kind": {"type": "string", "description": "redis or postgres."},
        "managed": {"type": "boolean", "description": "Whether provisioner provisions the store."},
        "ready": {"type": "boolean",
                  "description": "Whether the store answers, its consumer runs and it is caught up."},
        "caughtUp": {"type": "boolean", "description": "Whether the store has read its topic to the end once."},
        "replicas": {"type": "integer", "description": "Consumers in the store's consumer group."},
        "position": {"type": "integer", "description": "Records read, summed over partitions (from the store)."},
        "lag": {"type": "integer",
                "description": "Records of the topic not yet in the store (end offsets - positions)."},
        "deadLetters": {"type": "integer", "description": "Dead letters this store's consumer sent."},
        "lastError": {"type": "string", "description": "Why the store or Kafka could not be observed, if so."},
        "autoscale": {
            "type": "object",
            "description": "With consumer.autoscale: the replicas the operator set for the consumer and why.",
            "properties": {
                "desired": {"type": "integer", "description": "Replicas the operator set on the Deployment."},
                "current": {"type": "integer", "description": "Consumers in the group now."},
                "min": {"type": "integer", "description": "The fewest replicas (consumer.replicas)."},
                "max": {"type": "integer", "description": "The most: min(maxReplicas, partitions)."},
                "lastScaleTime": {"type": "string", "format": "date-time",
                                  "description": "When the operator last changed the replicas."},
            },
        },
        "rebuild": {
            "type": "object",
            "description": "A new version of the store being built beside the live one after a content change.",
            "properties": {
                "version": {"type": "string", "description": "The version being built."},
                "replayed": {"type": "integer", "description": "Records the new version has read."},
                "left": {"type": "integer", "description": "Records it still has to read before the switch."},
                "estimatedSeconds": {"type": "integer",
                                     "description": "Time left at its recent pace, in seconds."},
            },
        },
    },
}
_STATUS = {
    "type": "object",
    "description": "The product's observed state, written by the operator.",
    "properties": {
        "observedGeneration": {"type": "integer", "description": "The generation the operator last acted on."},
        "conditions": {
            "type": "array", "description": "Ready, StoresReady, ConsumersReady, CaughtUp, Fresh and Rebuilding.",
            "items": _CONDITION, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
        },
        "storesReady": {"type": "string", "description": "Ready stores out of all stores, e.g. 2/2."},
        "lag": {"type": "integer", "description": "Records not yet in the stores, summed over stores."},
        "deadLetters": {"type": "integer", "description": "Dead letters sent, summed over stores."},
        "stores": {
            "type": "array", "description": "One entry per store.", "items": _STORE_STATUS,
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
        },
    },
}
_PRINTER_COLUMNS = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
     "description": "Whether every store is hydrated and fresh."},
    {"name": "Stores", "type": "string", "jsonPath": ".status.storesReady", "description": "Ready stores."},
    {"name": "Lag", "type": "integer", "jsonPath": ".status.lag", "description": "Records not yet in the stores."},
    {"name": "Dead letters", "type": "integer", "jsonPath": ".status.deadLetters",
     "description": "Dead letters sent."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`node` with its `$ref` inlined; keywords next to the `$ref` (a field's description) win."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target = _resolve(defs[ref.rsplit("/", 1)[1]], defs)
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _describe_default(description: str | None, default: Any) -> str | None:
    if default is None or default in ({}, []):
        return description
    text = default if isinstance(default, str) else json.dumps(default)
    suffix = f"Default: {text}."
    return f"{description} {suffix}" if description else suffix


def _structural(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        branches = [_resolve(b, defs) for b in node["anyOf"] if b.get("type") != "null"]
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        if len(branches) == 1:
            node = {**branches[0], **outer}
        elif all(b.get("type") in ("string", "integer") for b in branches):
            node = {**outer, "x-kubernetes-int-or-string": True}
        else:
            # A value of several types (e.g. `key`: a name or a list of names): structural schemas
            # cannot say so; the server keeps it as written and `provisioner validate` checks it.
            types = " or ".join(sorted({b.get("type", "any") for b in branches}))
            outer["description"] = f"{outer.get('description', '')} ({types})".strip()
            node = {**outer, "x-kubernetes-preserve-unknown-fields": True}
    if "const" in node:
        node = {**node, "enum": [node["const"]]}
    out: dict[str, Any] = {k: copy.deepcopy(node[k]) for k in _KEPT if k in node}
    description = _describe_default(node.get("description"), node.get("default"))
    if description:
        out["description"] = description
    if node.get("x-kubernetes-int-or-string"):
        out["x-kubernetes-int-or-string"] = True
        out.pop("type", None)
    properties = node.get("properties")
    additional = node.get("additionalProperties")
    if properties:
        out["properties"] = {name: _structural(child, defs, f"{path}.{name}".lstrip("."))
                             for name, child in properties.items()}
    if isinstance(additional, dict):
        out["additionalProperties"] = _structural(additional, defs, f"{path}{{}}")
    elif additional is True:
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif node.get("type") is None and "x-kubernetes-int-or-string" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True  # any JSON value (a test record's value) ...
        out["nullable"] = True  # ... null included (a tombstone)
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in node:
        out["items"] = _structural(node["items"], defs, f"{path}[]")
    if node.get("type") == "object" and "properties" not in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["properties"] = {}  # an empty object (`skip: {}`): keep it, prune anything in it
    for key, value in _EXTRA.get(path, {}).items():
        out[key] = copy.deepcopy(value)
    return out


def spec_schema() -> dict[str, Any]:
    """The structural openAPIV3Schema of a DataProduct's `spec`."""
    schema = spec_json_schema()
    defs = schema["$defs"]
    return _structural(schema["properties"]["spec"], defs, "")


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition of DataProduct (apiextensions.k8s.io/v1)."""
    root = {
        "type": "object",
        "description": spec_json_schema().get("description", ""),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": f"{API_VERSION}."},
            "kind": {"type": "string", "description": f"{KIND}."},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": _STATUS,
        },
        "x-kubernetes-validations": [
            {"rule": f"self.metadata.name.size() <= {PRODUCT_NAME_MAX} && "
                     f"self.metadata.name.matches('{_LABEL_PATTERN}')",
             "message": f"metadata.name must be an RFC 1123 label of at most {PRODUCT_NAME_MAX} characters"},
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "provisioner", "app.kubernetes.io/part-of": "provisioner"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": PLURAL, "singular": "dataproduct", "kind": KIND, "listKind": f"{KIND}List",
                "shortNames": ["dp"], "categories": ["provisioner"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": _PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": root},
            }],
        },
    }


def crd_yaml() -> str:
    """The CRD as the YAML text checked in under operators/crd/."""
    header = ("# Generated from provisioner/spec/models.py by `python -m provisioner.kube.crd`: do not edit.\n"
              "# Regenerate: python -m provisioner.kube.crd > operators/crd/dataproducts.provisioner.dev.yaml\n")
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(crd_yaml())
