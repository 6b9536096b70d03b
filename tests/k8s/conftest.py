"""Fixtures for Kubernetes tests: a real etcd + kube-apiserver + kube-controller-manager.

The binaries are built once from Go modules into the project's cache (see
tests/support/kubeapi.py; the first build takes minutes, later runs none), and one cluster is
started per session under a temporary directory and stopped at the end. Set PROVISIONER_KUBECONFIG
to run against an existing cluster instead (it needs a controller manager for the GC and
Deployment tests). Every test in this folder is marked `k8s`.

No kubelet or scheduler: Pods are admitted and created but stay Pending.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from provisioner.kube.client import KubeClient
from provisioner.kube.crd import crd
from tests.support import kubeapi

from .identity import (
    OPERATOR_ACCOUNT,
    OPERATOR_NAMESPACE,
    cluster_entry,
    install_operator_rbac,
    mint_token,
    write_kubeconfig,
)

KUBECONFIG_ENV = "PROVISIONER_KUBECONFIG"

# CRDs installed before the controller manager starts: its garbage collector reads API discovery
# only every 30 s, so kinds that exist when it starts are collected at once, later ones after ~40 s.
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.test"},
    "spec": {
        "group": "example.test",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }},
        }],
    },
}
# The DataProduct CRD too: the operator tests need its children collected when a product is deleted.
# Every request at the Metadata level (who, what, when): lets a test count the operator's writes,
# including no-op patches a watch never sees.
AUDIT_POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                "rules": [{"level": "Metadata"}]}

SESSION_CRDS = [WIDGET_CRD, crd()]

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.k8s)


def install_crds(kubeconfig: Path, crds: list[dict[str, Any]], timeout: float = 60) -> None:
    """Server-side apply `crds` and wait until each kind is served and published in OpenAPI v3
    (what kubectl explain and client-side validation read). A new CRD can answer 404 for a
    second or two after Established, and its OpenAPI document follows a moment later."""
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        extensions = client.ApiextensionsV1Api(api)
        custom = client.CustomObjectsApi(api)
        for crd in crds:
            extensions.patch_custom_resource_definition(
                crd["metadata"]["name"], crd, field_manager="provisioner-tests", force=True,
                _content_type="application/apply-patch+yaml",
            )
        deadline = time.monotonic() + timeout
        for crd in crds:
            spec = crd["spec"]
            group, version, plural = spec["group"], spec["versions"][0]["name"], spec["names"]["plural"]
            while True:
                try:
                    custom.list_cluster_custom_object(group, version, plural, limit=1)
                    if _openapi_has_kind(api, group, version, spec["names"]["kind"]):
                        break
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                if time.monotonic() > deadline:
                    raise AssertionError(f"CRD {crd['metadata']['name']} not served after {timeout:.0f} s")
                time.sleep(0.1)


def _openapi_has_kind(api: client.ApiClient, group: str, version: str, kind: str) -> bool:
    url = f"{api.configuration.host}/openapi/v3/apis/{group}/{version}"
    response = api.call_api("GET", url, header_params={"Accept": "application/json"})
    body = response.read()
    if response.status != 200:
        return False
    schemas = json.loads(body).get("components", {}).get("schemas", {})
    return any(name.endswith(f".{version}.{kind}") for name in schemas)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kubeapi.KubeCluster | None]:
    """The cluster this session started, or None when PROVISIONER_KUBECONFIG names an existing one.

    The session CRDs are installed before the controller manager starts (see SESSION_CRDS)."""
    configured = os.environ.get(KUBECONFIG_ENV, "").strip()
    if configured:
        install_crds(Path(configured).expanduser(), SESSION_CRDS)
        yield None
        return
    kubeapi.ensure_binaries()
    work = tmp_path_factory.mktemp("kube")
    policy = work / "audit-policy.yaml"
    policy.write_text(json.dumps(AUDIT_POLICY))
    cluster = kubeapi.start(work, controller_manager=False, extra_args=[
        f"--audit-policy-file={policy}", f"--audit-log-path={work / 'audit.log'}", "--audit-log-maxsize=0"])
    try:
        install_crds(cluster.kubeconfig, SESSION_CRDS)
        cluster.start_controller_manager()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def audit_log(kube_cluster: kubeapi.KubeCluster | None) -> Path | None:
    """The API server's audit log (one JSON entry per request), or None for an existing cluster."""
    if kube_cluster is None:
        return None
    return kube_cluster.work_dir / "audit.log"


def audited_requests(log: Path, since: float, verbs: tuple[str, ...] = ("create", "update", "patch", "delete"),
                     ) -> list[dict[str, Any]]:
    """Audit entries of `verbs` whose request was received at or after `since` (epoch seconds)."""
    found: list[dict[str, Any]] = []
    for line in log.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        received = datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
        if received >= since and entry.get("verb") in verbs:
            found.append(entry)
    return found


@pytest.fixture(scope="session")
def kubeconfig(kube_cluster: kubeapi.KubeCluster | None) -> Path:
    """Path of an admin kubeconfig for the cluster under test."""
    if kube_cluster is None:
        return Path(os.environ[KUBECONFIG_ENV].strip()).expanduser()
    return kube_cluster.kubeconfig


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path) -> Iterator[client.ApiClient]:
    """A Kubernetes API client authenticated as a cluster admin."""
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        yield api


@pytest.fixture(scope="session")
def operator_kubeconfig(kubeconfig: Path, kube_api: client.ApiClient,
                        tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig holding a token of the bundle's ServiceAccount, minted by the TokenRequest API,
    with the bundle's RBAC installed as written: the operator's identity in production."""
    install_operator_rbac(kube_api)
    token = mint_token(kube_api, OPERATOR_NAMESPACE, OPERATOR_ACCOUNT)
    return write_kubeconfig(tmp_path_factory.mktemp("identity") / "operator.kubeconfig", cluster_entry(kubeconfig),
                            {"token": token})


@pytest.fixture(scope="session")
def kube(kubeconfig: Path) -> Iterator[KubeClient]:
    """provisioner's own client of the cluster under test."""
    kube = KubeClient.from_kubeconfig(kubeconfig)
    yield kube
    kube.close()


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, named after the test module, deleted afterwards."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")[:16]
    name = f"{module}-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)
