"""`provisioner up --until T`: each store holds the state as of T, stops following, and says so."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from tests.integration.test_local_runtime import _cli, _ok

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_up_until_builds_the_state_as_of_an_instant(tmp_path: Path, kafka_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic = f"it.until.{suffix}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for n in range(10):  # one a second; key k0, k1, k2, k0, ...
        value = {"id": f"k{n % 3}", "n": n}
        producer.send(topic, key=value["id"].encode(), value=json.dumps(value).encode(), timestamp_ms=BASE_MS + n * 1000)
    producer.flush()
    producer.close()
    spec = tmp_path / "until.yaml"
    spec.write_text(f"""
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {{name: until-{suffix}}}
spec:
  source: {{topic: {topic}}}
  fields: {{id: event.id, n: event.n}}
  key: id
  errors: {{mode: skip}}
  stores: [{{name: cache, redis: {{}}}}]
""", encoding="utf-8")
    until = datetime.fromtimestamp((BASE_MS + 4500) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    state = tmp_path / "state"
    try:
        _ok(_cli(state, kafka_bootstrap, "up", str(spec), "--until-caught-up", "--timeout", "120", "--until", until))
        rows = json.loads(_ok(_cli(state, kafka_bootstrap, "inspect", f"until-{suffix}", "--store", "cache",
                                   "-o", "json")))["rows"]
        # Records 0..4 are at or before the instant; 5..9 never arrive.
        assert sorted((r["id"], r["n"]) for r in rows) == [("k0", "3"), ("k1", "4"), ("k2", "2")]
        status = json.loads(_ok(_cli(state, kafka_bootstrap, "status", "-o", "json")))
        (store,) = status["stores"]
        assert store["state"] == "stopped"  # `up --until-caught-up` stopped its consumers on exit
        assert store["positions"] == {"0": 5}  # the first record past the instant is where it stopped
    finally:
        _cli(state, kafka_bootstrap, "down", "--purge")


def test_up_refuses_an_until_that_is_not_a_timestamp(tmp_path: Path, kafka_bootstrap: str) -> None:
    result = _cli(tmp_path / "state", kafka_bootstrap, "up", "specs", "--until", "yesterday")
    assert result.returncode == 2  # a bad option value, as for every option
    assert "--until" in result.stderr and "RFC 3339" in result.stderr
