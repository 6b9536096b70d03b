"""`provisioner up` honours `consumer.replicas`: three processes in one consumer group share a
6-partition topic, the dashboard and `status` count them, a SIGKILLed one's partitions are read
again by the group, and the store ends up holding every record exactly once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from tests.integration import harness as h
from tests.integration.test_local_runtime import _cli, _ok

PARTITIONS = 6
REPLICAS = 3
ASSIGNED = re.compile(r"assigned partitions \[([\d, ]*)\]")


def _produce(bootstrap: str, topic: str, numbers: range) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for n in numbers:
        producer.send(topic, key=f"k{n}".encode(), value=json.dumps({"id": f"k{n}", "n": n}).encode(),
                      partition=n % PARTITIONS)
    producer.flush()
    producer.close()


def _reported(folder: Path) -> list[list[str]]:
    """Every assignment each replica's log reports, in order."""
    logs = [folder / ("consumer.log" if replica == 0 else f"consumer-{replica}.log") for replica in range(REPLICAS)]
    return [ASSIGNED.findall(log.read_text(errors="replace")) if log.exists() else [] for log in logs]


def _assignments(folder: Path) -> list[list[int]]:
    """Each replica's partitions, from the last assignment its log reports."""
    return [[int(p) for p in found[-1].split(",") if p.strip()] if found else [] for found in _reported(folder)]


def test_up_runs_the_replicas_in_one_group_and_a_killed_one_hands_its_partitions_on(
        tmp_path: Path, kafka_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic = f"it.replicas.{suffix}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    admin.close()
    _produce(kafka_bootstrap, topic, range(600))
    name = f"replicas-{suffix}"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {{name: {name}}}
spec:
  source: {{topic: {topic}}}
  fields: {{id: event.id, n: event.n}}
  key: id
  stores: [{{name: cache, redis: {{}}}}]
  consumer: {{replicas: {REPLICAS}}}
""", encoding="utf-8")
    state = tmp_path / "state"
    folder = state / "consumers" / f"default.{name}.cache"
    env = {**os.environ, "PROVISIONER_KAFKA_BOOTSTRAP": kafka_bootstrap, "COLUMNS": "200"}
    with (tmp_path / "up.out").open("w") as out:
        up = subprocess.Popen([sys.executable, "-m", "provisioner", "up", str(spec), "--state-dir", str(state)],
                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    def store() -> dict[str, object]:
        report = _cli(state, kafka_bootstrap, "status", "-o", "json")
        return json.loads(report.stdout)["stores"][0] if report.returncode == 0 else {}

    def shared() -> bool:
        parts = _assignments(folder)
        return all(parts) and sorted(p for part in parts for p in part) == list(range(PARTITIONS))

    def log() -> str:
        return (tmp_path / "up.out").read_text(errors="replace")

    try:
        h.wait_for(shared, 180, "three processes sharing the six partitions", on_timeout=log)
        assert sorted(len(part) for part in _assignments(folder)) == [2, 2, 2]
        h.wait_for(lambda: (s := store()).get("consumers") == f"{REPLICAS}/{REPLICAS}" and s.get("lag") == 0,
                   120, "status: 3/3 consumers, caught up", on_timeout=log)
        assert f"running {REPLICAS}/{REPLICAS} consumers" in _ok(_cli(state, kafka_bootstrap, "status"))

        victim = int((folder / "pid-1").read_text())
        before = sum(len(found) for found in _reported(folder))
        os.kill(victim, signal.SIGKILL)
        _produce(kafka_bootstrap, topic, range(600, 1200))  # records in every partition, the lost ones too
        h.wait_for(lambda: (folder / "pid-1").exists() and int((folder / "pid-1").read_text()) != victim,
                   60, "the supervisor restarting the killed replica", on_timeout=log)
        h.wait_for(lambda: shared() and store().get("lag") == 0 and store().get("consumers") == "3/3", 180,
                   "the group reading every partition again, caught up", on_timeout=log)
        assert sum(len(found) for found in _reported(folder)) > before  # the group rebalanced
        rows = json.loads(_ok(_cli(state, kafka_bootstrap, "inspect", name, "--store", "cache", "--limit", "5000",
                                   "-o", "json")))["rows"]
        assert sorted((r["id"], int(r["n"])) for r in rows) == sorted((f"k{n}", n) for n in range(1200))
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
        _cli(state, kafka_bootstrap, "down", "--purge")
