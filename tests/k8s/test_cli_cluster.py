"""The cluster commands against a real API server: apply (server-side, then --wait while a status
turns Ready), plan (create / change with a diff / unchanged, per store in place or rebuild, from a
server-side dry run), status --target k8s (table and JSON) and delete --wait."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.kube.client import KubeClient
from provisioner.kube.reconcile import Reconciler, Settings

from .operator_harness import KEY, children, product, secret, wait_for

runner = CliRunner()




def _write(folder: Path, body: dict[str, Any]) -> Path:
    body = json.loads(json.dumps(body))
    body["metadata"].pop("namespace", None)  # the --namespace option supplies it
    path = folder / f"{body['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def _run(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "PROVISIONER_CREDENTIALS_KEY": KEY})


def test_apply_plan_status_delete(kubeconfig: Path, kube: KubeClient, namespace: str, tmp_path: Path) -> None:
    name = f"orders-{uuid.uuid4().hex[:6]}"
    body = product(name, namespace, "orders.v1")
    path = _write(tmp_path, body)
    common = ["--kubeconfig", str(kubeconfig), "--namespace", namespace]

    planned = _run("plan", str(path), "--target", "k8s", "--kafka-bootstrap", "kafka:9092", *common, "-o", "json")
    assert planned.exit_code == 0, planned.output
    first = json.loads(planned.output)["products"][0]
    assert first["action"] == "create"
    assert {o["action"] for o in first["objects"]} == {"create"}
    assert first["stores"] == [{"name": "cache", "change": "new", "settings": []}]

    applied = _run("apply", str(path), *common)
    assert applied.exit_code == 0, applied.output
    live = kube.get("DataProduct", namespace, name)
    assert live is not None and live["spec"]["key"] == "order_id"
    assert any(m["manager"] == "provisioner" and m["operation"] == "Apply" for m in live["metadata"]["managedFields"])

    # What the operator would build, built here in-process (no operator in this test).
    settings = Settings(kafka_bootstrap="kafka:9092", credentials_key=KEY.encode())
    Reconciler(kube, settings, None).reconcile(live, [], observe=False)
    assert len(children(kube, namespace, name)) == 3  # ConfigMap, Deployment, its egress policy

    same = _run("plan", str(path), "--target", "k8s", "--kafka-bootstrap", "kafka:9092", *common, "-o", "json")
    assert same.exit_code == 0, same.output
    unchanged = json.loads(same.output)["products"][0]
    assert unchanged["action"] == "unchanged"
    assert {o["action"] for o in unchanged["objects"]} == {"unchanged"}, unchanged
    assert unchanged["stores"] == [{"name": "cache", "change": "unchanged", "settings": []}]

    # A content change (a field's expression) rebuilds the store and changes the ConfigMap.
    body["spec"]["fields"]["amount"] = "event.amount * 2.0"
    _write(tmp_path, body)
    text = _run("plan", str(path), "--target", "k8s", "--kafka-bootstrap", "kafka:9092", *common)
    assert text.exit_code == 0, text.output
    assert f"dataproduct {namespace}/{name}: change" in text.output
    assert "store cache: rebuild (fields.amount" in text.output or "store cache: rebuild" in text.output
    assert "change ConfigMap/" in text.output
    assert "+" in text.output and "event.amount * 2.0" in text.output
    assert "unchanged NetworkPolicy/" in text.output
    changed = json.loads(_run("plan", str(path), "--target", "k8s", "--kafka-bootstrap", "kafka:9092",
                              *common, "-o", "json").output)["products"][0]
    config_map = next(o for o in changed["objects"] if o["kind"] == "ConfigMap")
    assert config_map["action"] == "change" and config_map["diff"].startswith("--- live ConfigMap/")
    assert kube.get("DataProduct", namespace, name)["spec"]["fields"]["amount"] == "event.amount"  # nothing written

    # apply --wait: follows the conditions until Ready (a status written here stands in for the operator).
    def operator_writes_ready() -> None:
        time.sleep(1.5)
        current = kube.get("DataProduct", namespace, name)
        assert current is not None
        generation = current["metadata"]["generation"]
        kube.patch_status("DataProduct", namespace, name, {
            "observedGeneration": generation, "storesReady": "1/1",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ready",
                            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"},
                           {"type": "StoresReady", "status": "True", "reason": "StoresAnswer", "message": "ok",
                            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}]})

    writer = threading.Thread(target=operator_writes_ready)
    writer.start()
    waited = _run("apply", str(path), "--wait", "--timeout", "30", *common)
    writer.join()
    assert waited.exit_code == 0, waited.output
    assert "1 data product(s) Ready" in waited.output

    table = _run("status", "--target", "k8s", *common)
    assert table.exit_code == 0, table.output
    assert f"{namespace}/{name}" in table.output and "True" in table.output
    as_json = json.loads(_run("status", "--target", "k8s", name, *common, "-o", "json").output)
    assert as_json["products"][0]["ready"] == "True"
    assert as_json["products"][0]["storesReady"] == "1/1"

    missing = _run("status", "--target", "k8s", "nope", *common)
    assert missing.exit_code == 1 and "not found" in missing.output

    deleted = _run("delete", name, "--wait", "--timeout", "60", *common)
    assert deleted.exit_code == 0, deleted.output
    assert kube.get("DataProduct", namespace, name) is None
    assert children(kube, namespace, name) == {}


def test_apply_wait_times_out_and_refused_specs(kubeconfig: Path, kube: KubeClient, namespace: str,
                                                tmp_path: Path) -> None:
    name = f"slow-{uuid.uuid4().hex[:6]}"
    path = _write(tmp_path, product(name, namespace, "orders.v1"))
    common = ["--kubeconfig", str(kubeconfig), "--namespace", namespace]
    waited = _run("apply", str(path), "--wait", "--timeout", "2", *common)
    assert waited.exit_code == 1
    assert f"not Ready after 2 s: {namespace}/{name}" in waited.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: provisioner.dev/v1alpha1\nkind: DataProduct\nmetadata: {name: bad}\nspec: {}\n")
    refused = _run("apply", str(bad), *common)
    assert refused.exit_code != 0
    assert kube.get("DataProduct", namespace, "bad") is None
    gone = _run("delete", "nope", *common)
    assert gone.exit_code == 1 and "not found" in gone.output
    secret(kube, namespace, "unused", {"url": "redis://x"})
    wait_for("product stored", lambda: kube.get("DataProduct", namespace, name))
