"""Helpers of the operator tests: run `provisioner operator` as a process, make products, poll."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from provisioner.kube.client import KINDS, KubeClient
from provisioner.kube.reconcile import CHILD_KINDS

T = TypeVar("T")
TIMEOUT_S = 60.0
LEASE_NAMESPACE = "provisioner-system"  # the bundle's Role lets the operator hold Leases here only
KEY = "operator-test-credentials-key-0123456789"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT_S, every: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class OperatorProcess:
    """`provisioner operator` in its own process, its log in a file.

    `kubeconfig` should be the `operator_kubeconfig` fixture's: the bundle's ServiceAccount token
    under the bundle's RBAC, as in production (None: the in-cluster files named in `env`). The
    Lease lives where the bundle lets the operator hold it, named after the watched namespace."""

    def __init__(self, kubeconfig: Path | None, namespace: str, kafka: str, log_dir: Path, *, lease: str = "op",
                 extra: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.log = log_dir / f"operator-{uuid.uuid4().hex[:6]}.log"
        self.lease_name = f"{namespace}-{lease}"
        where = ["--kubeconfig", str(kubeconfig)] if kubeconfig is not None else []
        args = [sys.executable, "-m", "provisioner", "operator", *where,
                "--namespace", namespace, "--kafka-bootstrap", kafka, "--resync", "1",
                "--lease-namespace", LEASE_NAMESPACE, "--lease-name", self.lease_name, "--lease-duration", "6",
                "--log-level", "DEBUG", *(extra or [])]
        environment = {**os.environ, "PROVISIONER_CREDENTIALS_KEY": KEY, **(env or {})}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=environment,
                                         start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@contextmanager
def running_operator(*args: Any, **kwargs: Any) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(*args, **kwargs)
    try:
        yield operator
    finally:
        operator.stop()


def product(name: str, namespace: str, topic: str, *, stores: list[dict[str, Any]] | None = None,
            **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"topic": topic},
            "fields": {"order_id": "event.order_id", "amount": "event.amount"},
            "key": "order_id",
            "stores": stores or [{"name": "cache", "redis": {"connection": {"secretRef": {"name": "store-url",
                                                                                          "key": "url"}}}}],
            **spec,
        },
    }
    return body


def children(kube: KubeClient, namespace: str, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    labels = {"app.kubernetes.io/managed-by": "provisioner", "app.kubernetes.io/part-of": name}
    return {(o["kind"], o["metadata"]["name"]): o for kind in CHILD_KINDS for o in kube.list(kind, namespace, labels)}


def condition(body: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for item in ((body or {}).get("status") or {}).get("conditions", []):
        if item["type"] == kind:
            return dict(item)
    return None


def secret(kube: KubeClient, namespace: str, name: str, data: dict[str, str]) -> None:
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})


def published_texts(kube: KubeClient, namespace: str, operator: OperatorProcess) -> dict[str, str]:
    """What anyone may read about the namespace's products, by where: a secret must be in none."""
    return {
        "operator log": operator.text(),
        "DataProducts": json.dumps(kube.list("DataProduct", namespace)),
        "Events": json.dumps(kube.list("Event", namespace)),
        "ConfigMaps": json.dumps(kube.list("ConfigMap", namespace)),
        "Deployments": json.dumps(kube.list("Deployment", namespace)),
    }


def watch_writes(kube: KubeClient, namespace: str, kinds: tuple[str, ...], since: dict[str, str]) -> list[str]:
    """Every change to `kinds` in `namespace` after the list resourceVersions in `since`, read back
    from a watch that starts there (the API server replays what happened since)."""
    changes = []
    for kind in kinds:
        entry = KINDS[kind]
        url = kube.configuration.host + entry.collection(namespace)
        query = f"?watch=true&resourceVersion={since[kind]}&timeoutSeconds=1&allowWatchBookmarks=false"
        response = kube.api.call_api("GET", url + query, header_params={"Accept": "application/json"},
                                     _request_timeout=10)
        for line in response.read().decode().splitlines():
            if line.strip():
                event = json.loads(line)
                obj = event["object"]
                if kind == "Event" and obj.get("involvedObject", {}).get("kind") != "DataProduct":
                    continue  # the controller manager's own Events (a Pending StatefulSet's, ...)
                changes.append(f"{event['type']} {kind} {obj['metadata'].get('name')}")
    return changes


def list_versions(kube: KubeClient, namespace: str, kinds: tuple[str, ...]) -> dict[str, str]:
    return {kind: kube.request("GET", KINDS[kind].collection(namespace), {"limit": "1"})["metadata"]["resourceVersion"]
            for kind in kinds}


def wait_children(kube: KubeClient, namespace: str, name: str, count: int,
                  timeout: float = TIMEOUT_S) -> dict[tuple[str, str], dict[str, Any]]:
    """The product's children once there are exactly `count` of them."""
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def probe() -> bool:
        found.clear()
        found.update(children(kube, namespace, name))
        return len(found) == count

    wait_for(f"{count} objects of {name}", probe, timeout)
    return found
