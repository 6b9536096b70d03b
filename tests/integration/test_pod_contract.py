"""The pods' contract, without a kubelet: what `render` puts in a consumer Deployment runs as
written and hydrates its store exactly as `provisioner up` would (see tests/podcontract.py)."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import yaml

from provisioner.kube.render import RenderOptions, render
from provisioner.spec.loader import load_text
from provisioner.spec.models import DataProduct
from provisioner.stream.kafka import produce_jsonl
from tests import podcontract
from tests.integration.harness import (
    actual_postgres_upsert,
    create_topic,
    expected_for,
    expected_postgres_upsert,
    expected_redis,
    read_topic,
    redis_contents,
    wait_caught_up,
)

SPECS = Path(__file__).resolve().parents[2] / "specs"
CANARY = "canary-Pa55word-7f3a"


def _product(topic: str, suffix: str) -> DataProduct:
    """specs/vip-orders.yaml on a topic, key prefix and table of its own."""
    document = yaml.safe_load((SPECS / "vip-orders.yaml").read_text(encoding="utf-8"))
    document["metadata"]["name"] = f"vip-{suffix}"
    document["metadata"]["namespace"] = "contract"
    spec = document["spec"]
    spec["source"]["topic"] = topic
    spec["errors"]["deadLetterTopic"] = f"{topic}.dlq"
    for store in spec["stores"]:
        if "redis" in store:
            store["redis"]["keyPrefix"] = f"vip-{suffix}:"
        else:
            store["postgres"]["table"] = f"vip_{suffix}"
    specs, findings = load_text(yaml.safe_dump(document, sort_keys=False))
    assert not findings, findings
    return specs[0].product


def test_rendered_consumers_hydrate_their_stores(tmp_path: Path, kafka_bootstrap: str, topic: str,
                                                 redis_server: Any, postgres_server: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    product = _product(topic, suffix)
    create_topic(kafka_bootstrap, topic)
    create_topic(kafka_bootstrap, f"{topic}.dlq")
    with (SPECS / "events" / "orders.v1.jsonl").open(encoding="utf-8") as events:
        assert produce_jsonl(kafka_bootstrap, topic, events) > 0
    (rendered,) = render([product], RenderOptions(kafka_bootstrap="kafka.platform:9092", with_secrets=True,
                                                  credentials_key=CANARY.encode()))
    objects = list(rendered.objects)
    deployments = podcontract.consumer_deployments(objects)
    assert sorted(d["metadata"]["labels"]["provisioner.dev/store"] for d in deployments) == ["cache", "db"]
    # The cluster's DNS names of the managed stores stand for the local servers here.
    urls = {"cache": redis_server.url, "db": postgres_server.url}
    secret_urls = {}
    for deployment in deployments:
        store = deployment["metadata"]["labels"]["provisioner.dev/store"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ref = next(e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == "PROVISIONER_STORE_URL")
        secret_urls[(ref["name"], ref["key"])] = urls[store]
    pods = [podcontract.start(d, objects, tmp_path, secret_overrides=secret_urls,
                              env_overrides={"PROVISIONER_KAFKA_BOOTSTRAP": kafka_bootstrap})
            for d in deployments]
    try:
        records = read_topic(kafka_bootstrap, topic)
        ends: dict[int, int] = {}
        for record in records:
            ends[record.partition] = record.offset + 1
        for store_name, url in urls.items():
            wait_caught_up(product, product.store(store_name), url, ends, timeout=120, consumers=[])
    finally:
        codes = [pod.stop() for pod in pods]
    logs = "\n".join(pod.log() for pod in pods)
    assert codes == [0, 0], logs
    cache, db = product.store("cache"), product.store("db")
    expected = expected_for(product, cache, records)
    assert expected.ops["upsert"] > 0 and expected.ops["delete"] > 0 and expected.rows, "the events exercise nothing"
    assert redis_contents(redis_server.url, f"vip-{suffix}:") == expected_redis(expected_for(product, cache, records),
                                                                                  product)
    assert actual_postgres_upsert(postgres_server.url, product, db) == \
        expected_postgres_upsert(expected_for(product, db, records), product, db)
    # What the pods ran and printed never shows a store's password.
    for pod in pods:
        assert not any(CANARY in part for part in pod.command)
    secrets = [o for o in objects if o["kind"] == "Secret"]
    passwords = [base64.b64decode(v).decode() for s in secrets for v in s.get("data", {}).values()]
    for password in passwords:
        assert password not in logs
