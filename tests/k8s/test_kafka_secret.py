"""The consumers' Kafka client Secret with the operator against a real API server, run as the
bundle's ServiceAccount under the bundle's RBAC.

The consumer Deployment mounts the platform's Secret (`--kafka-secret`), or the product's own when
`source.credentials` names one; a missing or unusable Secret is `ConsumersReady=False
KafkaCredentialsMissing` naming it, and clears by itself once the Secret is there; a SASL password
in the Secret (and in the operator's own `--kafka-config`) appears in no Event, status, ConfigMap,
Deployment or operator log (`pytest -s` prints how long recovery and a rotation took). No Kafka is
needed: the conditions come from the Secret, and the operator's status reads of an address nobody
listens on fail fast.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.kube.client import KubeClient
from provisioner.kube.kafka_secret import MOUNT_DIR, PROPERTIES_FILE

from .operator_harness import OperatorProcess, condition, product, published_texts, running_operator, secret, wait_for

CANARY = "canary-Sasl-Pa55-4b8e"
OPERATOR_CANARY = "canary-Operator-Pa55-0d2f"
NOBODY = "127.0.0.1:1"  # no broker: the operator's Kafka reads fail at once
PROPERTIES = f"""\
bootstrap.servers=kafka.platform:9093
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=orders
sasl.password={CANARY}
ssl.ca.location=ca.pem
"""
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def operator(operator_kubeconfig: Path, namespace: str, kube: KubeClient,
             tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator with the platform's Secret `platform-kafka` and, for its own status reads, a
    client properties file whose password is another canary."""
    config = tmp_path / "operator.properties"
    config.write_text(f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
                      f"sasl.username=operator\nsasl.password={OPERATOR_CANARY}\n")
    secret(kube, namespace, "store-url", {"url": "redis://127.0.0.1:1/0"})
    with running_operator(operator_kubeconfig, namespace, NOBODY, tmp_path, lease=uuid.uuid4().hex[:6],
                          extra=["--kafka-secret", "platform-kafka", "--kafka-config", str(config)]) as op:
        yield op
        print(op.text()[-6000:])  # shown when the test failed


def _consumer_pod(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    deployment = wait_for(f"Deployment {name}-cache-consumer",
                          lambda: kube.get("Deployment", namespace, f"{name}-cache-consumer"))
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def _mounted_secret(pod: dict[str, Any]) -> str:
    """The Secret mounted read-only at the Kafka mount, checked along with the env naming its file."""
    container = pod["containers"][0]
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == MOUNT_DIR]
    assert mount.get("readOnly") is True
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    env = {e["name"]: e for e in container["env"]}
    assert env["PROVISIONER_KAFKA_CONFIG"] == {"name": "PROVISIONER_KAFKA_CONFIG", "value": PROPERTIES_FILE}
    name: str = volume["secret"]["secretName"]
    return name


def _consumers_ready(kube: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    return condition(kube.get("DataProduct", namespace, name), "ConsumersReady")


def _wait_reason(kube: KubeClient, namespace: str, name: str, reason: str, *texts: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = _consumers_ready(kube, namespace, name)
        if found and found["reason"] == reason and all(t in found["message"] for t in texts):
            return found
        return None

    return wait_for(f"ConsumersReady {reason} on {name}", probe)


def _wait_recovered(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    return wait_for(f"{name}'s Kafka credentials found", lambda: (c := _consumers_ready(kube, namespace, name))
                    and c["reason"] != "KafkaCredentialsMissing" and c)


def test_consumers_mount_the_platform_secret_a_missing_one_is_a_condition_until_it_appears(
        kube: KubeClient, namespace: str, operator: OperatorProcess) -> None:
    kube.apply(product("orders", namespace, "orders.v1"))
    assert _mounted_secret(_consumer_pod(kube, namespace, "orders")) == "platform-kafka"
    missing = _wait_reason(kube, namespace, "orders", "KafkaCredentialsMissing",
                           f"Secret {namespace}/platform-kafka", "does not exist", "'client.properties'")
    assert missing["status"] == "False"
    assert "stay at 0 replicas" in missing["message"]
    _wait_replicas(kube, namespace, "orders", 0)  # waiting, not crash-looping
    ready = condition(kube.get("DataProduct", namespace, "orders"), "Ready")
    assert ready is not None and ready["status"] == "False"

    created = time.monotonic()
    secret(kube, namespace, "platform-kafka", {"client.properties": PROPERTIES, "ca.pem": CA})
    _wait_recovered(kube, namespace, "orders")
    print(f"KafkaCredentialsMissing cleared {time.monotonic() - created:.1f} s after the Secret was created")
    _wait_replicas(kube, namespace, "orders", 1)
    assert _mounted_secret(_consumer_pod(kube, namespace, "orders")) == "platform-kafka"
    _wait_rolled_onto(kube, namespace, "orders")

    # A rotated password: the consumers' pod template follows the Secret, so they restart onto it.
    rotated = time.monotonic()
    secret(kube, namespace, "platform-kafka", {"client.properties": PROPERTIES.replace(CANARY, f"{CANARY}-2"),
                                               "ca.pem": CA})
    _wait_rolled_onto(kube, namespace, "orders")
    print(f"consumers' pod template followed the rotated Secret {time.monotonic() - rotated:.1f} s after it")
    _assert_no_canary(kube, namespace, operator)


def _wait_replicas(kube: KubeClient, namespace: str, name: str, replicas: int) -> None:
    wait_for(f"{name}'s consumers at {replicas} replicas", lambda: (
        d := kube.get("Deployment", namespace, f"{name}-cache-consumer")) and d["spec"]["replicas"] == replicas)


def _wait_rolled_onto(kube: KubeClient, namespace: str, name: str) -> None:
    """Until the consumers' pod template names the Secret's current resourceVersion."""
    def probe() -> bool:
        current = kube.get("Secret", namespace, "platform-kafka")
        deployment = kube.get("Deployment", namespace, f"{name}-cache-consumer")
        annotations = (deployment or {}).get("spec", {}).get("template", {}).get("metadata", {}).get("annotations")
        return current is not None and (annotations or {}).get("provisioner.dev/kafka-secret-version") == \
            current["metadata"]["resourceVersion"]

    wait_for(f"{name}'s consumers rolled onto the Secret's current version", probe)


def test_a_products_own_secret_replaces_the_platform_one_and_is_checked(
        kube: KubeClient, namespace: str, operator: OperatorProcess) -> None:
    secret(kube, namespace, "platform-kafka", {"client.properties": PROPERTIES, "ca.pem": CA})
    body = product("team", namespace, "team.v1")
    body["spec"]["source"]["credentials"] = {"secretRef": {"name": "team-kafka"}}
    kube.apply(body)
    pod = _consumer_pod(kube, namespace, "team")
    assert _mounted_secret(pod) == "team-kafka"
    assert [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v] == ["store-url", "team-kafka"]
    _wait_reason(kube, namespace, "team", "KafkaCredentialsMissing", f"Secret {namespace}/team-kafka",
                 "source.credentials.secretRef", "does not exist")

    # There, but its file names a CA that is not in it: unusable, said so by key and line.
    secret(kube, namespace, "team-kafka", {"client.properties": PROPERTIES})
    _wait_reason(kube, namespace, "team", "KafkaCredentialsMissing", "client.properties:6: ssl.ca.location",
                 "not a key of the Secret")
    # A file the consumer would refuse at start: said so, and the consumers wait at 0 replicas.
    secret(kube, namespace, "team-kafka", {"client.properties": PROPERTIES.replace("sasl.username=orders\n", ""),
                                           "ca.pem": CA})
    _wait_reason(kube, namespace, "team", "KafkaCredentialsMissing", "needs sasl.username and sasl.password")
    _wait_replicas(kube, namespace, "team", 0)
    secret(kube, namespace, "team-kafka", {"client.properties": PROPERTIES, "ca.pem": CA})
    _wait_recovered(kube, namespace, "team")
    _wait_replicas(kube, namespace, "team", 1)
    _assert_no_canary(kube, namespace, operator)


def _assert_no_canary(kube: KubeClient, namespace: str, operator: OperatorProcess) -> None:
    """Neither password in an Event, a product's status, a ConfigMap, a Deployment (env included)
    or the operator's log; the Secret itself does hold it (the check is not vacuous)."""
    stored = kube.get("Secret", namespace, "platform-kafka")
    assert stored is not None and CANARY in base64.b64decode(stored["data"]["client.properties"]).decode()
    texts = published_texts(kube, namespace, operator)
    assert "KafkaCredentialsMissing" in texts["Events"]  # the condition's change was posted
    for where, text in texts.items():
        assert CANARY not in text, where
        assert OPERATOR_CANARY not in text, where


def test_plan_renders_with_the_installed_operators_kafka_secret(kube: KubeClient, namespace: str) -> None:
    """`plan --target k8s` reads the operator's settings from its ConfigMap: the Kafka Secret too."""
    from provisioner.kube.products import operator_settings
    from provisioner.kube.reconcile import desired_objects, parse_product

    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "provisioner-config", "namespace": namespace},
                "data": {"PROVISIONER_KAFKA_BOOTSTRAP": "kafka.platform:9093",
                         "PROVISIONER_KAFKA_SECRET": "platform-kafka"}})
    settings = operator_settings(kube, namespace, kafka_bootstrap=None, credentials_key=None)
    assert (settings.kafka_bootstrap, settings.kafka_secret) == ("kafka.platform:9093", "platform-kafka")
    body = {**product("planned", namespace, "orders.v1"), "metadata": {"name": "planned", "namespace": namespace,
                                                                      "uid": "0"}}
    [deployment] = [o for o in desired_objects(parse_product(body), body, settings) if o["kind"] == "Deployment"]
    assert _mounted_secret(deployment["spec"]["template"]["spec"]) == "platform-kafka"
