"""`provisioner up` with a changed spec, and two data products sharing the embedded servers.

`up --until-caught-up` after a change of filter and fields exits only once the store holds the new
spec's content (the rebuild beside it switched), and `status` says when a rebuild is pending. Two
products naming the same Postgres table and the same (empty) Redis key prefix each live in a space
of their own: the rebuild and switch of one leaves the other's data as it was. While `up` runs, no command line shows a store's password.
Real Kafka, the embedded Redis and Postgres `up` starts itself, `up` run as a user runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from provisioner.local import embedded
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct
from provisioner.stores.registry import open_store
from tests.integration import harness as h
from tests.integration.test_local_runtime import _cli, _materialize, _ok, _records

EVENTS = 600


def _spec(path: Path, name: str, topic: str, *, filter_: str | None = None, doubled: bool = False) -> DataProduct:
    """A product with a Redis store under the empty prefix and a Postgres table named `items`:
    what every such product names alike."""
    n = "event.n * 2" if doubled else "event.n"
    path.write_text(f"""
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {{name: {name}}}
spec:
  source: {{topic: {topic}}}
  {f'filter: "{filter_}"' if filter_ else ''}
  fields: {{id: event.id, n: "{n}", kind: event.kind}}
  key: id
  errors: {{mode: skip}}
  stores:
    - {{name: cache, redis: {{keyPrefix: ""}}}}
    - {{name: db, postgres: {{table: items}}}}
""", encoding="utf-8")
    [loaded] = load_products([path])
    return loaded.product


def _produce(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for n in range(EVENTS):
        value = {"id": f"k{n % 150}", "n": n, "kind": "a" if n % 3 else "b"}
        producer.send(topic, key=value["id"].encode(), value=json.dumps(value).encode())
    producer.flush()
    producer.close()


def _contents(state: Path, product: DataProduct) -> dict[str, dict[str, str]]:
    """Each store's rows as the product's own consumer sees them (key -> fields), read directly
    from the product's space on the embedded servers."""
    found: dict[str, dict[str, str]] = {}
    for store_spec in product.spec.stores:
        server = embedded.find(store_spec.kind, state)
        assert server is not None
        store = open_store(product, store_spec, embedded.space_url(server, product.metadata.namespace, product.name))
        try:
            rows = store.inspect(10_000)
        finally:
            store.close()
        for row in rows:
            key = str(row.pop("_key", None) or row["id"])
            found[f"{store_spec.name}:{key}"] = {f: str(row[f]) for f in ("id", "n", "kind")}
    return found


def _expected(product: DataProduct, records: list[Any]) -> dict[str, dict[str, str]]:
    expected: dict[str, dict[str, str]] = {}
    for store_spec in product.spec.stores:
        rows, _ = _materialize(product, store_spec, records)
        for key, row in rows.items():
            expected[f"{store_spec.name}:{key}"] = {f: str(row[f]) for f in ("id", "n", "kind")}
    return expected


def _status(state: Path, bootstrap: str) -> list[dict[str, Any]]:
    stores: list[dict[str, Any]] = json.loads(_ok(_cli(state, bootstrap, "status", "-o", "json")))["stores"]
    return stores


def test_until_caught_up_waits_for_the_rebuild_and_products_stay_apart(tmp_path: Path, kafka_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic = f"it.up-rebuild.{suffix}"
    _produce(kafka_bootstrap, topic)
    records = _records(kafka_bootstrap, topic)
    state = tmp_path / "state"
    first = _spec(tmp_path / "first.yaml", f"first-{suffix}", topic)
    second_file = tmp_path / "second.yaml"
    second = _spec(second_file, f"second-{suffix}", topic)
    try:
        for spec in (tmp_path / "first.yaml", second_file):
            _ok(_cli(state, kafka_bootstrap, "up", str(spec), "--until-caught-up", "--timeout", "240"))
        first_rows = _expected(first, records)
        assert _contents(state, first) == first_rows
        assert _contents(state, second) == _expected(second, records)

        # A new filter and a changed field: the stores are rebuilt beside themselves and switched.
        changed = _spec(second_file, second.name, topic, filter_="event.kind == 'a'", doubled=True)
        assert [s["rebuild"] for s in _status(state, kafka_bootstrap)] == ["pending", "pending"]
        out = _ok(_cli(state, kafka_bootstrap, "up", str(second_file), "--until-caught-up", "--timeout", "240"))
        assert "caught up" in out
        wanted = _expected(changed, records)
        assert len(wanted) < len(_expected(second, records))  # the filter leaves rows out
        assert _contents(state, changed) == wanted
        for store in _status(state, kafka_bootstrap):
            assert (store["rebuild"], store["lag"]) == (None, 0), store

        # The other product, with the same table name and key prefix, kept every row.
        assert _contents(state, first) == first_rows
    finally:
        _cli(state, kafka_bootstrap, "down", "--purge")


def test_running_consumers_show_no_store_password(tmp_path: Path, kafka_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic = f"it.up-secret.{suffix}"
    _produce(kafka_bootstrap, topic)
    spec = tmp_path / "spec.yaml"
    _spec(spec, f"secret-{suffix}", topic)
    state = tmp_path / "state"
    env = {**os.environ, "PROVISIONER_KAFKA_BOOTSTRAP": kafka_bootstrap}
    with (tmp_path / "up.out").open("w") as out:
        up = subprocess.Popen([sys.executable, "-m", "provisioner", "up", str(spec), "--state-dir", str(state)],
                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        def consuming() -> bool:
            report = _cli(state, kafka_bootstrap, "status", "-o", "json")
            return report.returncode == 0 and all(s["state"] == "running" and s["lag"] == 0
                                                  for s in json.loads(report.stdout)["stores"])

        h.wait_for(consuming, 180, "both consumers running and caught up",
                   on_timeout=lambda: (tmp_path / "up.out").read_text(errors="replace"))
        passwords = [(state / kind / "password").read_text().strip() for kind in ("redis", "postgres")]
        command_lines = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError):
                command_lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
        assert sum("provisioner consume" in line.replace("\0", " ") for line in command_lines) >= 2
        assert not [line for line in command_lines if any(p in line for p in passwords)]
        assert not any(p in (tmp_path / "up.out").read_text(errors="replace") for p in passwords)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
        _cli(state, kafka_bootstrap, "down", "--purge")
