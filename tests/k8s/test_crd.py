"""The DataProduct CRD against a real API server: it installs and becomes Established, accepts every
example spec, refuses bad ones by the server's own validation (one case per rule, each also refused
by the spec model, so the CLI and the cluster agree), and carries descriptions for kubectl explain."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from provisioner.kube.crd import CRD_NAME, GROUP, PLURAL, VERSION, crd
from provisioner.spec.loader import load_text

from .apply import apply, request
from .conftest import install_crds

SPECS = sorted(Path(__file__).parents[2].joinpath("specs").glob("*.yaml"))


@pytest.fixture(scope="module")
def dataproduct_crd(kube_api: client.ApiClient, kubeconfig: Path) -> dict[str, Any]:
    definition = crd()
    install_crds(kubeconfig, [definition])
    return definition



def test_the_crd_is_established_with_its_names_and_columns(kube_api: client.ApiClient,
                                                           dataproduct_crd: dict[str, Any]) -> None:
    live = client.ApiextensionsV1Api(kube_api).read_custom_resource_definition(CRD_NAME)
    conditions = {c.type: c.status for c in live.status.conditions}
    assert conditions.get("Established") == "True"
    assert conditions.get("NamesAccepted") == "True"
    assert live.spec.names.short_names == ["dp"]
    assert live.spec.names.categories == ["provisioner"]
    version = live.spec.versions[0]
    assert version.subresources.status == {}
    assert [c.name for c in version.additional_printer_columns] == ["Ready", "Stores", "Lag", "Dead letters", "Age"]


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_example_spec_is_accepted(kube_api: client.ApiClient, dataproduct_crd: dict[str, Any],
                                        namespace: str, path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    dry = apply(kube_api, namespace, body, dry_run=True)
    stored = apply(kube_api, namespace, body)
    # Nothing pruned, nothing defaulted; only numbers change type: the API server stores 150.0 as 150.
    assert _integral(dry["spec"]) == _integral(body["spec"]) == _integral(stored["spec"])


def _integral(value: Any) -> Any:
    """`value` with every integral float as an int (how the API server stores JSON numbers)."""
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def test_the_status_subresource_takes_the_printed_columns(kube_api: client.ApiClient,
                                                          dataproduct_crd: dict[str, Any], namespace: str) -> None:
    body = yaml.safe_load(SPECS[0].read_text())
    apply(kube_api, namespace, body)
    status = {"status": {
        "observedGeneration": 1, "storesReady": "1/2", "lag": 12, "deadLetters": 0,
        "conditions": [{"type": "Ready", "status": "False", "reason": "Hydrating", "message": "db is catching up",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "stores": [{"name": body["spec"]["stores"][0]["name"], "ready": True, "lag": 0, "deadLetters": 0}],
    }}
    patched = client.CustomObjectsApi(kube_api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, body["metadata"]["name"], status)
    assert patched["status"]["storesReady"] == "1/2"
    assert patched["status"]["conditions"][0]["reason"] == "Hydrating"


def _valid() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataProduct",
        "metadata": {"name": "orders"},
        "spec": {
            "source": {"topic": "orders.v1"},
            "fields": {"order_id": "event.order_id"},
            "key": "order_id",
            "stores": [{"name": "cache", "redis": {}}],
        },
    }


def _with(change: dict[str, Any]) -> dict[str, Any]:
    """The valid product with `change` merged in (dicts merge, anything else replaces)."""

    def merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
        for key, value in patch.items():
            if isinstance(value, dict) and value and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    body = _valid()
    merge(body, copy.deepcopy(change))
    return body


# One case per rule the API server checks itself: (id, change, text of the server's refusal).
BAD = [
    ("store-both-kinds", {"spec": {"stores": [{"name": "s", "redis": {}, "postgres": {}}]}},
     "exactly one of redis or postgres"),
    ("store-no-kind", {"spec": {"stores": [{"name": "s"}]}}, "exactly one of redis or postgres"),
    ("connection-url-and-secret", {"spec": {"stores": [{"name": "s", "redis": {"connection": {
        "url": "redis://h", "secretRef": {"name": "s", "key": "url"}}}}]}}, "exactly one of url or secretRef"),
    ("connection-empty", {"spec": {"stores": [{"name": "s", "postgres": {"connection": {}}}]}},
     "exactly one of url or secretRef"),
    ("secret-name", {"spec": {"stores": [{"name": "s", "redis": {"connection": {
        "secretRef": {"name": "Bad_Name", "key": "url"}}}}]}}, "should match"),
    ("duplicate-store-names", {"spec": {"stores": [{"name": "s", "redis": {}}, {"name": "s", "postgres": {}}]}},
     'duplicate entries for key [name="s"]'),
    ("store-name", {"spec": {"stores": [{"name": "Cache", "redis": {}}]}}, "should match"),
    ("no-stores", {"spec": {"stores": []}}, "should have at least 1 items"),
    ("name-too-long", {"metadata": {"name": "a" * 41}}, "at most 40 characters"),
    ("topic-dot", {"spec": {"source": {"topic": ".."}}}, "not legal Kafka topic names"),
    ("topic-chars", {"spec": {"source": {"topic": "orders v1"}}}, "should match"),
    ("dead-letter-topic", {"spec": {"errors": {"deadLetterTopic": "a/b"}}}, "should match"),
    ("start-from", {"spec": {"source": {"startFrom": "yesterday"}}}, "earliest, latest or an RFC 3339"),
    ("format", {"spec": {"source": {"format": "xml"}}}, "Unsupported value"),
    ("ttl-zero", {"spec": {"stores": [{"name": "s", "redis": {"ttl": "0s"}}]}}, "should match '[1-9]'"),
    ("ttl-unit", {"spec": {"stores": [{"name": "s", "redis": {"ttl": "1w"}}]}}, "should match"),
    ("freshness-zero", {"spec": {"freshness": "0ms"}}, "should match '[1-9]'"),
    ("table", {"spec": {"stores": [{"name": "s", "postgres": {"table": "Orders"}}]}}, "should match"),
    ("column-type", {"spec": {"stores": [{"name": "s", "postgres": {"columns": {"order_id": "varchar"}}}]}},
     "Unsupported value"),
    ("errors-mode", {"spec": {"errors": {"mode": "retry"}}}, "Unsupported value"),
    ("no-fields", {"spec": {"fields": {}}}, "should have at least 1 properties"),
    ("empty-expression", {"spec": {"filter": ""}}, "should be at least 1 chars long"),
    ("replicas", {"spec": {"consumer": {"replicas": 65}}}, "should be less than or equal to 64"),
    ("batch-size", {"spec": {"consumer": {"batchSize": 0}}}, "should be greater than or equal to 1"),
    ("expected-op", {"spec": {"tests": [{"name": "t", "given": [], "expect": [{"skip": {}, "deadLetter": {
        "stage": "key"}}]}]}}, "must have at most 1 item"),
    ("unknown-field", {"spec": {"sauce": {"topic": "x"}}}, ".spec.sauce: field not declared in schema"),
]


@pytest.mark.parametrize(("change", "refusal"), [(c, r) for _, c, r in BAD], ids=[i for i, _, _ in BAD])
def test_a_bad_spec_is_refused_by_the_api_server(kube_api: client.ApiClient, dataproduct_crd: dict[str, Any],
                                                 namespace: str, change: dict[str, Any], refusal: str) -> None:
    body = _with(change)
    assert load_text(yaml.safe_dump(body))[1], "the CLI accepts what the API server should refuse"
    for dry_run in (True, False):
        with pytest.raises(ApiException) as refused:
            apply(kube_api, namespace, body, dry_run=dry_run)
        # An unknown field fails when the apply patch is typed (500), before validation (422).
        assert refused.value.status in (422, 500), refused.value.body
        assert refusal in json.loads(refused.value.body)["message"]


def test_the_valid_base_case_is_accepted(kube_api: client.ApiClient, dataproduct_crd: dict[str, Any],
                                         namespace: str) -> None:
    assert not load_text(yaml.safe_dump(_valid()))[1]
    apply(kube_api, namespace, _valid(), dry_run=True)


def _published_schema(api: client.ApiClient) -> dict[str, Any]:
    """The DataProduct schema as the API server publishes it (what kubectl explain reads)."""
    schemas = request(api, "GET", f"/openapi/v3/apis/{GROUP}/{VERSION}")["components"]["schemas"]
    return next(schema for name, schema in schemas.items() if name.endswith(f".{VERSION}.DataProduct"))


def test_descriptions_are_published_for_kubectl_explain(kube_api: client.ApiClient,
                                                        dataproduct_crd: dict[str, Any]) -> None:
    schema = _published_schema(kube_api)
    spec = schema["properties"]["spec"]
    assert spec["description"]
    stores = spec["properties"]["stores"]
    assert "own consumer" in stores["description"]
    assert stores["items"]["properties"]["redis"]["properties"]["ttl"]["description"]


def test_every_field_of_the_crd_has_a_description(dataproduct_crd: dict[str, Any]) -> None:
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        scalar_item = path.endswith("[]") and "properties" not in node
        if not node.get("description") and not scalar_item:  # a list of scalars is described once
            missing.append(path)
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict) and node["additionalProperties"].get("properties"):
            walk(node["additionalProperties"], f"{path}{{}}")

    root = dataproduct_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    walk(root["properties"]["spec"], "spec")
    walk(root["properties"]["status"], "status")
    assert not missing, f"fields without a description: {missing}"
