"""The Secret holding a store's URL, with the operator against a real API server, run as the
bundle's ServiceAccount under the bundle's RBAC.

The consumer Deployment mounts that Secret read-only (the certificate files its URL names are
further keys of it); a URL naming a file that is not a key of the Secret is `StoresReady=False
StoreCredentialsMissing` naming the key, and clears by itself once the file is added. The URL's
password appears in no Event, status, Deployment or operator log. No store and no Kafka are
needed: the condition comes from the Secret, and the reads of an address nobody listens on fail fast.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.kube.client import KubeClient
from provisioner.kube.render import STORE_FILES_DIR

from .operator_harness import OperatorProcess, condition, product, published_texts, running_operator, secret, wait_for

CANARY = "canary-Store-Pa55-71c3"
NOBODY = "127.0.0.1:1"
URL = f"rediss://app:{CANARY}@127.0.0.1:1/0?ssl_ca_certs=ca.pem"


@pytest.fixture
def operator(operator_kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    with running_operator(operator_kubeconfig, namespace, NOBODY, tmp_path, lease=uuid.uuid4().hex[:6]) as op:
        yield op
        print(op.text()[-6000:])  # shown when the test failed


def _stores_ready(kube: KubeClient, namespace: str) -> dict[str, Any] | None:
    return condition(kube.get("DataProduct", namespace, "orders"), "StoresReady")


def test_the_consumer_mounts_its_stores_secret_and_a_file_missing_from_it_is_a_condition(
        kube: KubeClient, namespace: str, operator: OperatorProcess) -> None:
    secret(kube, namespace, "store-url", {"url": URL})
    kube.apply(product("orders", namespace, "orders.v1"))

    deployment = wait_for("the consumer Deployment", lambda: kube.get("Deployment", namespace, "orders-cache-consumer"))
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [volume] = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"] == {"secretName": "store-url", "defaultMode": 0o440}
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == f"{STORE_FILES_DIR}/store-url" and mount["readOnly"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["PROVISIONER_STORE_FILES"]["value"] == f"{STORE_FILES_DIR}/store-url"

    missing = wait_for("StoresReady StoreCredentialsMissing", lambda: (
        c := _stores_ready(kube, namespace)) and c["reason"] == "StoreCredentialsMissing" and c)
    assert missing["status"] == "False"
    assert "Secret store-url key 'url': the URL's ssl_ca_certs names 'ca.pem', which is not a key" \
        in missing["message"]

    # The file added: the operator finds it and goes on to the store (here: nobody listens).
    secret(kube, namespace, "store-url", {"url": URL, "ca.pem": "no certificate"})
    found = wait_for("StoresReady past the missing file", lambda: (
        c := _stores_ready(kube, namespace)) and c["reason"] not in ("StoreCredentialsMissing", "") and c)
    assert found["status"] == "False" and "ca.pem', which is not a key" not in found["message"]

    stored = kube.get("Secret", namespace, "store-url")
    assert stored is not None and CANARY in base64.b64decode(stored["data"]["url"]).decode()  # not vacuous
    texts = published_texts(kube, namespace, operator)
    assert "StoreCredentialsMissing" in texts["Events"]  # the condition's change was posted
    for where, text in texts.items():
        assert CANARY not in text, where
