"""Rendered objects against a real API server: every object of every example spec is accepted by
server-side apply (dry-run and real, strict field validation), and in a namespace that enforces the
Pod Security "restricted" profile the controller manager creates every consumer's and store's Pod
without a refusal. A password kept in a store's connection Secret shows up in no ConfigMap,
annotation, command line or environment value of what runs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client

from provisioner.kube.render import RenderOptions, render
from provisioner.spec.loader import load_products, load_text

from .apply import apply

T = TypeVar("T")
SPECS = sorted(Path(__file__).parents[2].joinpath("specs").glob("*.yaml"))
KEY = b"render-apply-test-key-0123456789"
CANARY = "canary-Pa55w0rd-41c9"
TIMEOUT_S = 60.0


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT_S) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


@pytest.fixture
def restricted_namespace(kube_api: client.ApiClient) -> Iterator[str]:
    name = f"render-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
    }}})
    yield name
    core.delete_namespace(name)


def failed_creates(api: client.ApiClient, namespace: str) -> list[str]:
    events = client.CoreV1Api(api).list_namespaced_event(namespace).items
    return [f"{e.involved_object.kind}/{e.involved_object.name}: {e.message}" for e in events
            if e.reason in ("FailedCreate", "FailedCreatePodSandBox") or "violates PodSecurity" in (e.message or "")]


def apply_all(api: client.ApiClient, namespace: str, objects: tuple[dict[str, Any], ...]) -> None:
    for obj in objects:
        apply(api, namespace, obj, dry_run=True)
    for obj in objects:
        stored = apply(api, namespace, obj)
        assert stored["metadata"]["labels"] == obj["metadata"]["labels"]


def expected_pods(objects: tuple[dict[str, Any], ...]) -> int:
    return sum(o["spec"]["replicas"] for o in objects if o["kind"] in ("Deployment", "StatefulSet"))


def pods_created(api: client.ApiClient, namespace: str, count: int) -> list[client.V1Pod] | None:
    failures = failed_creates(api, namespace)
    assert not failures, failures
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
    return pods if len(pods) >= count else None


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_rendered_objects_apply_and_their_pods_pass_the_restricted_profile(
        kube_api: client.ApiClient, restricted_namespace: str, path: Path) -> None:
    product = load_products([path])[0].product
    [rendered] = render([product], RenderOptions(kafka_bootstrap="kafka.platform:9092", namespace=restricted_namespace,
                                                 with_secrets=True, credentials_key=KEY))
    apply_all(kube_api, restricted_namespace, rendered.objects)
    count = expected_pods(rendered.objects)
    assert count == len(product.spec.stores) * product.spec.consumer.replicas + sum(
        s.managed for s in product.spec.stores)
    pods = wait_for(f"{count} pods in {restricted_namespace}",
                    lambda: pods_created(kube_api, restricted_namespace, count))
    assert len(pods) == count
    assert not failed_creates(kube_api, restricted_namespace)
    # Applying the same objects again changes nothing (the controllers see no new generation).
    before = {o.metadata.name: o.metadata.generation
              for o in client.AppsV1Api(kube_api).list_namespaced_deployment(restricted_namespace).items}
    apply_all(kube_api, restricted_namespace, rendered.objects)
    after = {o.metadata.name: o.metadata.generation
             for o in client.AppsV1Api(kube_api).list_namespaced_deployment(restricted_namespace).items}
    assert before == after


def test_a_connection_secret_stays_out_of_everything_that_runs(kube_api: client.ApiClient,
                                                               restricted_namespace: str) -> None:
    specs, findings = load_text("""
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: orders}
spec:
  source: {topic: orders.v1}
  fields: {order_id: event.order_id}
  key: order_id
  stores:
    - name: db
      postgres: {connection: {secretRef: {name: orders-db, key: url}}}
    - name: cache
      redis: {}
""")
    assert not findings, findings
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_secret(restricted_namespace, {
        "metadata": {"name": "orders-db"},
        "stringData": {"url": f"postgresql://app:{CANARY}@pg.data:5432/app"},
    })
    for with_secrets in (False, True):
        [rendered] = render([specs[0].product], RenderOptions(
            kafka_bootstrap="kafka.platform:9092", namespace=restricted_namespace, with_secrets=with_secrets,
            credentials_key=KEY))
        assert CANARY not in rendered.yaml()
    apply_all(kube_api, restricted_namespace, rendered.objects)
    pods = wait_for("pods", lambda: pods_created(kube_api, restricted_namespace, expected_pods(rendered.objects)))
    visible = {
        "config maps": [c.data for c in core.list_namespaced_config_map(restricted_namespace).items],
        "pods": [{"annotations": p.metadata.annotations, "containers": [
            {"command": c.command, "args": c.args, "env": [e.value for e in c.env or []]}
            for c in p.spec.containers]} for p in pods],
        "deployments": [yaml.safe_dump(client.ApiClient().sanitize_for_serialization(d))
                        for d in client.AppsV1Api(kube_api).list_namespaced_deployment(restricted_namespace).items],
    }
    assert CANARY not in json.dumps(visible)
    [consumer] = [p for p in pods if p.metadata.labels.get("provisioner.dev/store") == "db"]
    [url_env] = [e for e in consumer.spec.containers[0].env if e.name == "PROVISIONER_STORE_URL"]
    assert url_env.value is None
    assert (url_env.value_from.secret_key_ref.name, url_env.value_from.secret_key_ref.key) == ("orders-db", "url")


def test_the_namespace_really_enforces_the_restricted_profile(kube_api: client.ApiClient,
                                                               restricted_namespace: str) -> None:
    """The control for the tests above: the same Deployment with capabilities kept is refused."""
    product = load_products(SPECS[:1])[0].product
    [rendered] = render([product], RenderOptions(kafka_bootstrap="kafka:9092", namespace=restricted_namespace))
    deployment = next(o for o in rendered.objects if o["kind"] == "Deployment")
    del deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]
    apply(kube_api, restricted_namespace, deployment)
    refusals = wait_for("a PodSecurity refusal", lambda: failed_creates(kube_api, restricted_namespace))
    assert any("violates PodSecurity" in r for r in refusals), refusals
