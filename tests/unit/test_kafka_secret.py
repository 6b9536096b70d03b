"""The consumers' Kafka client Secret without a cluster: the spec's `source.credentials`, what
render mounts and lists, the operator's check of a Secret it read, and the condition it becomes."""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.kube.kafka_secret import MOUNT_DIR, PROPERTIES_FILE, credentials_problem, kafka_secret_of
from provisioner.kube.render import RenderOptions, render
from provisioner.kube.status import Observation, StoreObservation, compute_status
from provisioner.local.session import local_credentials_note
from provisioner.spec.fingerprint import compare, fingerprint
from provisioner.spec.loader import load_text
from provisioner.spec.models import DataProduct

CANARY = "canary-Sasl-Pa55-9c1d"
SPEC = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: vip-orders, namespace: sales}
spec:
  source:
    topic: orders
{credentials}  fields: {order_id: event.order_id}
  key: order_id
  stores:
    - name: cache
      redis: {connection: {secretRef: {name: cache-url, key: url}}}
    - name: db
      postgres: {}
"""
OWN = "    credentials: {secretRef: {name: sales-kafka}}\n"


def product(credentials: str = "") -> DataProduct:
    loaded, findings = load_text(SPEC.replace("{credentials}", credentials), "p.yaml")
    assert findings == []
    return loaded[0].product


def consumers(rendered_objects: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in rendered_objects if o["kind"] == "Deployment"]


def kafka_mounts(pod: dict[str, Any]) -> tuple[list[str], list[str], dict[str, str]]:
    """(Secret volumes but the store's, their mount paths, the container's plain env values)."""
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"] if v["name"] != "store-files"}
    secrets = [v["secret"]["secretName"] for v in volumes.values() if "secret" in v]
    paths = [m["mountPath"] for m in container["volumeMounts"] if "secret" in volumes.get(m["name"], {})]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return secrets, paths, env


def test_consumers_mount_the_platform_secret_read_only_and_get_the_file_path() -> None:
    [rendered] = render([product()], RenderOptions(kafka_bootstrap="kafka:9093", kafka_secret="platform-kafka"))
    pods = consumers(rendered.objects)
    assert len(pods) == 2
    for pod in pods:
        secrets, paths, env = kafka_mounts(pod)
        assert secrets == ["platform-kafka"]
        assert paths == [MOUNT_DIR]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == MOUNT_DIR)
        assert mount["readOnly"] is True
        volume = next(v for v in pod["volumes"] if v["name"] == "kafka")
        assert volume["secret"]["defaultMode"] == 0o440
        assert env["PROVISIONER_KAFKA_CONFIG"] == PROPERTIES_FILE == f"{MOUNT_DIR}/client.properties"
        assert env["PROVISIONER_KAFKA_BOOTSTRAP"] == "kafka:9093"
    listed = {(s.namespace, s.name): s.keys for s in rendered.secrets_to_create}
    assert listed[("sales", "platform-kafka")] == ("client.properties",)
    assert "platform-kafka (keys: client.properties)" in rendered.yaml().split("---")[0]


def test_a_products_own_credentials_replace_the_platform_secret() -> None:
    own = product(OWN)
    assert kafka_secret_of(own, "platform-kafka") == "sales-kafka"
    for platform in ("platform-kafka", None):
        [rendered] = render([own], RenderOptions(kafka_bootstrap="kafka:9093", kafka_secret=platform))
        for pod in consumers(rendered.objects):
            assert kafka_mounts(pod)[0] == ["sales-kafka"]
        names = [s.name for s in rendered.secrets_to_create]
        assert "sales-kafka" in names and "platform-kafka" not in names
        config_map = next(o for o in rendered.objects if o["kind"] == "ConfigMap")
        assert "credentials" not in json.dumps(config_map)  # mounted, not handed through the spec


def test_without_a_kafka_secret_consumers_get_the_address_only() -> None:
    [rendered] = render([product()], RenderOptions(kafka_bootstrap="kafka:9092"))
    for pod in consumers(rendered.objects):
        secrets, paths, env = kafka_mounts(pod)
        assert secrets == [] and paths == [] and "PROVISIONER_KAFKA_CONFIG" not in env
    assert all(s.keys != ("client.properties",) for s in rendered.secrets_to_create)


def test_render_cli_takes_the_secret_name_and_refuses_a_bad_one(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC.replace("{credentials}", ""))
    runner = CliRunner()
    result = runner.invoke(app, ["render", str(spec), "--kafka-bootstrap", "k:9093", "-o", "json",
                                 "--kafka-secret", "platform-kafka"])
    assert result.exit_code == 0, result.output
    assert "create Secret sales/platform-kafka (keys: client.properties)" in result.stderr
    assert '"secretName": "platform-kafka"' in result.stdout
    refused = runner.invoke(app, ["render", str(spec), "--kafka-bootstrap", "k:9093", "--kafka-secret", "Bad_Name"])
    assert refused.exit_code != 0
    assert "--kafka-secret: 'Bad_Name' is not an RFC 1123 label" in refused.output


def test_credentials_are_validated_and_change_in_place_not_by_rebuild() -> None:
    _, findings = load_text(SPEC.replace("{credentials}", "    credentials: {secretRef: {name: Sales_Kafka}}\n"), "p.yaml")
    assert [(f.line, f.path) for f in findings] == [(7, "spec.source.credentials.secretRef.name")]
    assert "RFC 1123" in findings[0].message
    _, findings = load_text(SPEC.replace("{credentials}", "    credentials: {secretRef: {name: k, key: url}}\n"), "p.yaml")
    assert [f.message for f in findings] == ["unknown field 'key'"]
    before, after = product(), product(OWN)
    for store in before.spec.stores:
        assert fingerprint(before, store) == fingerprint(after, after.store(store.name))
    changes = compare(before, after)
    assert [c.kind for c in changes] == ["in place", "in place"]
    assert all("spec.source.credentials" in c.settings for c in changes)


def test_locally_the_credentials_are_ignored_with_a_note() -> None:
    assert local_credentials_note(product()) is None
    note = local_credentials_note(product(OWN))
    assert note is not None and "Secret sales-kafka" in note and "--kafka-config" in note


def secret(data: dict[str, str | bytes]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for k, v in data.items()}
    return {"kind": "Secret", "data": encoded}


PROPERTIES = f"""\
bootstrap.servers=kafka:9093
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=orders
sasl.password={CANARY}
ssl.ca.location=ca.pem
"""


@pytest.mark.parametrize(("data", "expected"), [
    (None, "Secret sales/sales-kafka (named by source.credentials.secretRef) does not exist: create it with the "
           "key 'client.properties'"),
    ({"ca.pem": "x"}, "Secret sales/sales-kafka (named by source.credentials.secretRef) has no key "
                      "'client.properties'"),
    ({"client.properties": b"\xff\xfe"}, "key 'client.properties' is not UTF-8 text"),
    ({"client.properties": PROPERTIES}, "client.properties:6: ssl.ca.location names 'ca.pem', which is not a key"),
    ({"client.properties": PROPERTIES.replace("ca.pem", "../ca.pem"), "ca.pem": "x"},
     "ssl.ca.location names '../ca.pem', which is not a key of the Secret"),
    ({"client.properties": PROPERTIES.replace("orders", "${KAFKA_USER}"), "ca.pem": "x"},
     "key client.properties:4: sasl.username: environment variable KAFKA_USER is not set"),
])
def test_an_unusable_secret_is_named_never_quoted(data: dict[str, str | bytes] | None, expected: str) -> None:
    problem = credentials_problem(product(OWN), "sales", "sales-kafka", None if data is None else secret(data))
    assert problem is not None
    assert expected in problem
    assert CANARY not in problem


# An absolute path outside the mount is a file of the image (here: any file that exists).
@pytest.mark.parametrize("ca", ["ca.pem", "./ca.pem", f"{MOUNT_DIR}/ca.pem", str(Path(sys.executable).resolve())])
def test_a_usable_secret_has_no_problem(ca: str) -> None:
    data = {"client.properties": PROPERTIES.replace("=ca.pem", f"={ca}"), "ca.pem": "-----BEGIN CERTIFICATE-----"}
    assert credentials_problem(product(), "sales", "platform-kafka", secret(data)) is None


def test_the_platform_secret_is_named_as_such() -> None:
    problem = credentials_problem(product(), "sales", "platform-kafka", None)
    assert problem is not None and "platform's Kafka client Secret (operator --kafka-secret)" in problem


def test_a_missing_secret_makes_consumers_not_ready_with_its_reason() -> None:
    store = StoreObservation(name="cache", kind="redis", managed=False, consumer="vip-orders-cache-consumer",
                             positions={0: 0}, end_offsets={0: 0}, consumers=0)
    message = "Secret sales/sales-kafka (named by source.credentials.secretRef) does not exist: create it"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    status = compute_status(Observation(1, (store,), kafka_credentials=message), None, now)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert (by_type["ConsumersReady"]["status"], by_type["ConsumersReady"]["reason"]) == \
        ("False", "KafkaCredentialsMissing")
    assert by_type["ConsumersReady"]["message"] == message
    assert (by_type["Ready"]["reason"], by_type["Ready"]["message"]) == ("ConsumersNotReady", message)
    recovered = compute_status(Observation(1, (store,)), status, now)
    assert {c["type"]: c["reason"] for c in recovered["conditions"]}["ConsumersReady"] == "NoConsumer"


def test_kafka_refusing_the_operator_is_named_not_called_unavailable() -> None:
    why = "user 'operator' is not allowed to DESCRIBE group 'provisioner.sales.vip-orders.cache' on Kafka at k:9093"
    store = StoreObservation(name="cache", kind="redis", managed=False, consumer="vip-orders-cache-consumer",
                             positions=None, error="redis://u: connection refused",
                             kafka_refused=("KafkaAuthorization", why))
    status = compute_status(Observation(1, (store,)), None, datetime(2026, 1, 1, tzinfo=UTC))
    consumers_ready = {c["type"]: c for c in status["conditions"]}["ConsumersReady"]
    assert (consumers_ready["status"], consumers_ready["reason"]) == ("Unknown", "KafkaAuthorization")
    assert consumers_ready["message"].endswith(f"Kafka refused the operator's status reads: {why}")


def test_the_secrets_version_is_a_pod_annotation_so_a_rotation_rolls_the_consumers() -> None:
    def annotations(**extra: Any) -> list[dict[str, str]]:
        [rendered] = render([product()], RenderOptions(kafka_bootstrap="k:9093", **extra))
        return [o["spec"]["template"]["metadata"]["annotations"] for o in rendered.objects if o["kind"] == "Deployment"]

    key = "provisioner.dev/kafka-secret-version"
    assert all(key not in a for a in annotations(kafka_secret="platform-kafka"))  # not read (yet): none
    assert all(key not in a for a in annotations(kafka_secret_version="41"))  # no Secret mounted: none
    assert [a[key] for a in annotations(kafka_secret="platform-kafka", kafka_secret_version="41")] == ["41", "41"]


def test_consumers_wait_at_zero_replicas_while_their_secret_is_unusable() -> None:
    def replicas(**extra: Any) -> list[int]:
        [rendered] = render([product()], RenderOptions(kafka_bootstrap="k:9093", **extra))
        return [o["spec"]["replicas"] for o in rendered.objects if o["kind"] == "Deployment"]

    assert replicas(kafka_secret="platform-kafka", kafka_secret_usable=False) == [0, 0]
    assert replicas(kafka_secret="platform-kafka") == [1, 1]
    assert replicas(kafka_secret_usable=False) == [1, 1]  # no Secret mounted: nothing to wait for


@pytest.mark.parametrize(("text", "expected"), [
    (PROPERTIES.replace("sasl.username=orders\n", ""), "security.protocol SASL_SSL needs sasl.username"),
    (PROPERTIES + "ssl.certificate.location=client.pem\n", "a client certificate needs both"),
    (PROPERTIES.replace("SASL_SSL", "SASL_PLAINTEXT"), "ssl.ca.location is set but security.protocol is"),
])
def test_a_file_the_consumer_would_refuse_is_a_problem_here(text: str, expected: str) -> None:
    data = {"client.properties": text, "ca.pem": "-----BEGIN CERTIFICATE-----", "client.pem": "x"}
    problem = credentials_problem(product(), "sales", "platform-kafka", secret(data))
    assert problem is not None and expected in problem
    assert problem.startswith("Secret sales/platform-kafka (the platform's Kafka client Secret")
    assert CANARY not in problem
