"""The Kafka client Secret end to end: the operator against a real API server and the secured dev
broker (SASL_SSL, SCRAM-SHA-512, ACLs enforced), the rendered consumer run as a local process with
the Secret's keys written out as the kubelet mounts them.

A product with its own Kafka user (`source.credentials.secretRef`) hydrates its store through the
mounted `client.properties`, whose CA is the Secret's `ca.pem` named relative to it, and the
operator's status (read with its own `--kafka-config`) says so; an operator follows its rotated
`--kafka-config` and, when its Kafka user may not read the product's consumer group, says
`KafkaAuthorization`; neither password appears in an Event,
status, ConfigMap, Deployment or log.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.kube.client import KubeClient
from provisioner.kube.kafka_secret import MOUNT_DIR
from provisioner.kube.reconcile import parse_product
from provisioner.local import securebroker
from provisioner.stream import kafka as kafka_helpers
from tests.integration.conftest import redis_server  # noqa: F401  (fixture)
from tests.integration.secured import grant_product, running_secure_broker

from .operator_harness import condition, product, running_operator, secret, wait_for

pytestmark = pytest.mark.integration

CANARY = "canary-" + secrets.token_hex(8)
WATCHER = "watcher-" + secrets.token_hex(6)
USERS = {"team": CANARY, "watcher": WATCHER}


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[securebroker.SecureBroker]:
    with running_secure_broker(tmp_path_factory.mktemp("secure-kafka"), USERS) as broker:
        yield broker


def _team_secret(broker: securebroker.SecureBroker) -> dict[str, str]:
    """The team's Secret as the README lays it out: the properties file and its CA beside it."""
    return {"client.properties": broker.scram_properties("team", CANARY, ca=Path("ca.pem")),
            "ca.pem": broker.ca.read_text()}


def _run_pod(kube: KubeClient, namespace: str, name: str, store_url: str, folder: Path) -> subprocess.Popen[bytes]:
    """Stand in for the kubelet: write out the Secret the Deployment mounts, key by key, and run
    its container's command with its environment, the mount's paths pointing at that folder."""
    deployment = kube.get("Deployment", namespace, f"{name}-cache-consumer")
    config_map = kube.get("ConfigMap", namespace, f"{name}-spec")
    assert deployment is not None and config_map is not None
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    [volume] = [v for v in pod["volumes"] if v["name"] == "kafka"]  # not the store URL's Secret
    mounted = kube.get("Secret", namespace, volume["secret"]["secretName"])
    assert mounted is not None
    mount = folder / "kafka"
    mount.mkdir()
    for key, value in mounted["data"].items():
        (mount / key).write_bytes(base64.b64decode(value))
        (mount / key).chmod(0o400)
    spec_file = folder / "product.yaml"
    spec_file.write_text(config_map["data"]["product.yaml"])
    args = [a for a in container["args"] if a not in ("--metrics-port", "9102")]
    args[args.index("--spec") + 1] = str(spec_file)
    env = {e["name"]: e["value"].replace(MOUNT_DIR, str(mount)) for e in container["env"] if "value" in e}
    env.update(PROVISIONER_STORE_URL=store_url, PROVISIONER_STATE_DIR=str(folder / "state"))
    env.pop("PROVISIONER_METRICS_HOST", None)
    with (folder / "consumer.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "provisioner", *args], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **env}, start_new_session=True)


def _texts(kube: KubeClient, namespace: str, *logs: Path) -> dict[str, str]:
    return {
        **{str(path): path.read_text(errors="replace") for path in logs},
        "DataProducts": json.dumps(kube.list("DataProduct", namespace)),
        "Events": json.dumps(kube.list("Event", namespace)),
        "ConfigMaps": json.dumps(kube.list("ConfigMap", namespace)),
        "Deployments": json.dumps(kube.list("Deployment", namespace)),
    }


def test_a_products_own_kafka_user_hydrates_its_store_through_the_mounted_secret(
        secure_broker: securebroker.SecureBroker, redis_server: Any, operator_kubeconfig: Path,  # noqa: F811
        kube: KubeClient, namespace: str, tmp_path: Path) -> None:
    topic = f"team.{uuid.uuid4().hex[:8]}"
    admin = secure_broker.admin()
    kafka_helpers.ensure_topic(admin, topic, partitions=2)
    orders = [{"order_id": f"o{i}", "amount": i} for i in range(40)]
    kafka_helpers.produce_records(admin, topic, [
        kafka_helpers.OutgoingRecord(key=o["order_id"], value=json.dumps(o).encode()) for o in orders])
    secret(kube, namespace, "store-url", {"url": redis_server.url})
    secret(kube, namespace, "team-kafka", _team_secret(secure_broker))
    body = product("team", namespace, topic)
    body["spec"]["source"]["credentials"] = {"secretRef": {"name": "team-kafka"}}
    grant_product(secure_broker, "team", parse_product(body), parse_product(body).spec.stores[0])

    with running_operator(operator_kubeconfig, namespace, secure_broker.scram_bootstrap, tmp_path, lease="hydrate",
                          extra=["--kafka-secret", "platform-kafka",
                                 "--kafka-config", str(secure_broker.admin_properties)]) as operator:
        kube.apply(body)
        wait_for("the consumer Deployment", lambda: kube.get("Deployment", namespace, "team-cache-consumer"))
        consumer = _run_pod(kube, namespace, "team", redis_server.url, tmp_path)
        try:
            def ready() -> dict[str, Any] | None:
                assert consumer.poll() is None, (tmp_path / "consumer.log").read_text()[-3000:]
                body = kube.get("DataProduct", namespace, "team")
                found = condition(body, "Ready")
                return body if found and found["status"] == "True" else None

            status = wait_for("the product Ready", ready, timeout=120)["status"]
            assert status["stores"][0]["position"] == len(orders)
            assert status["stores"][0]["lag"] == 0
        finally:
            consumer.terminate()
            consumer.wait(30)
        texts = _texts(kube, namespace, operator.log, tmp_path / "consumer.log")
    for where, text in texts.items():
        assert CANARY not in text, where
        assert "Traceback" not in text, where


def test_the_operator_follows_its_rotated_kafka_config_and_names_a_refusal(
        secure_broker: securebroker.SecureBroker, operator_kubeconfig: Path, kube: KubeClient, namespace: str,
        tmp_path: Path) -> None:
    topic = f"watched.{uuid.uuid4().hex[:8]}"
    kafka_helpers.ensure_topic(secure_broker.admin(), topic, partitions=1)
    config = tmp_path / "watcher.properties"
    config.write_text(secure_broker.scram_properties("watcher", "not-the-password"))
    secret(kube, namespace, "store-url", {"url": "redis://127.0.0.1:1/0"})
    with running_operator(operator_kubeconfig, namespace, secure_broker.scram_bootstrap, tmp_path, lease="refused",
                          extra=["--kafka-config", str(config)]) as operator:
        kube.apply(product("watched", namespace, topic))
        wait_for("ConsumersReady Unknown while the password is wrong", lambda: (
            c := condition(kube.get("DataProduct", namespace, "watched"), "ConsumersReady"))
            and c["status"] == "Unknown" and c)
        # The password is rotated in the file (as the kubelet does for a mounted Secret): the operator
        # reads it again, gets in, and says what its user may not do.
        rotated = tmp_path / "watcher.properties.new"
        rotated.write_text(secure_broker.scram_properties("watcher", WATCHER))
        os.replace(rotated, config)
        refused = wait_for("ConsumersReady KafkaAuthorization", lambda: (
            c := condition(kube.get("DataProduct", namespace, "watched"), "ConsumersReady"))
            and c["reason"] == "KafkaAuthorization" and c)
        assert refused["status"] == "Unknown"
        assert f"user 'watcher' is not allowed to READ group 'provisioner.{namespace}.watched.cache'" in \
            refused["message"]
        assert "Kafka refused the operator's status reads" in refused["message"]
        assert "the Kafka settings in" in operator.text()
        texts = _texts(kube, namespace, operator.log)
    for where, text in texts.items():
        assert WATCHER not in text, where
