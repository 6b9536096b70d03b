"""The GitOps loop with real Flux controllers: a folder of manifests pushed over HTTP to a git
server is fetched by source-controller and applied by kustomize-controller; a later push changes
what runs, and a manifest removed from the folder is pruned from the cluster."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support import gitserver
from tests.support.flux import FluxControllers

NAMESPACE = "flux-system"
TARGET_NAMESPACE = "default"
SOURCE = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
KUSTOMIZATION = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
POLL_TIMEOUT_S = 60.0

T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], timeout: float = POLL_TIMEOUT_S) -> T:
    """Poll `probe` until it returns something other than None (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.2)


def write_folder(folder: Path, config_maps: dict[str, dict[str, str]]) -> None:
    """Make `folder` hold one manifest per ConfigMap and a kustomization.yaml listing them."""
    for old in folder.glob("*.yaml"):
        old.unlink()
    for name, data in config_maps.items():
        manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": TARGET_NAMESPACE}, "data": data}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(manifest))
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": [f"{name}.yaml" for name in config_maps]}
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))


def config_map_data(core: client.CoreV1Api, name: str) -> dict[str, str] | None:
    try:
        return dict(core.read_namespaced_config_map(name, TARGET_NAMESPACE).data or {})
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def ready_at(custom: client.CustomObjectsApi, kind: tuple[str, str, str], name: str,
             commit: str) -> dict[str, Any] | None:
    """The object's status once it is Ready for `commit` (its revision ends with the commit id)."""
    status = custom.get_namespaced_custom_object(*kind[:2], NAMESPACE, kind[2], name).get("status") or {}
    revision = status.get("lastAppliedRevision") or (status.get("artifact") or {}).get("revision") or ""
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return status if revision.endswith(commit) and conditions.get("Ready") == "True" else None


@pytest.fixture
def flux_namespace(kube_api: client.ApiClient) -> str:
    try:
        client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    return NAMESPACE


@pytest.fixture
def flux_objects(kube_api: client.ApiClient, flux: FluxControllers, flux_namespace: str) -> Iterator[list[str]]:
    """Names of the GitRepository and Kustomization a test creates; deleted afterwards while the
    controllers still run (their finalizers need them), Kustomization first so it prunes."""
    custom = client.CustomObjectsApi(kube_api)
    created: list[str] = []
    yield created
    for kind in (KUSTOMIZATION, SOURCE):
        for name in created:
            try:
                custom.delete_namespaced_custom_object(*kind[:2], flux_namespace, kind[2], name)
            except ApiException as exc:
                if exc.status != 404:
                    raise

        def gone(kind: tuple[str, str, str] = kind) -> bool | None:
            names = {item["metadata"]["name"]
                     for item in custom.list_namespaced_custom_object(*kind[:2], flux_namespace, kind[2])["items"]}
            return True if not names & set(created) else None

        eventually(f"{kind[2]} {created} deleted", gone)


def test_a_pushed_folder_is_applied_changed_and_pruned(kube_api: client.ApiClient, git_server: gitserver.GitServer,
                                                       flux_objects: list[str], tmp_path: Path) -> None:
    core = client.CoreV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)
    suffix = uuid.uuid4().hex[:8]
    name, first, second = f"loop-{suffix}", f"loop-{suffix}-a", f"loop-{suffix}-b"
    repo = f"{name}.git"
    gitserver.create_bare_repo(git_server.root, repo)
    folder = tmp_path / "site"
    folder.mkdir()
    write_folder(folder, {first: {"value": "one"}})
    commit = gitserver.commit_folder(git_server.repo_url(repo), folder, "Add the first ConfigMap")

    flux_objects.append(name)
    custom.create_namespaced_custom_object(*SOURCE[:2], NAMESPACE, SOURCE[2], {
        "apiVersion": "/".join(SOURCE[:2]), "kind": "GitRepository",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"interval": "1m", "url": git_server.repo_url(repo), "ref": {"branch": "main"}},
    })
    custom.create_namespaced_custom_object(*KUSTOMIZATION[:2], NAMESPACE, KUSTOMIZATION[2], {
        "apiVersion": "/".join(KUSTOMIZATION[:2]), "kind": "Kustomization",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"interval": "1m", "path": "./", "prune": True,
                 "sourceRef": {"kind": "GitRepository", "name": name}},
    })
    assert eventually(f"{first} applied", lambda: config_map_data(core, first)) == {"value": "one"}
    eventually(f"Kustomization ready at {commit}", lambda: ready_at(custom, KUSTOMIZATION, name, commit))

    # A change: the first ConfigMap's data changes and a second one is added. Annotating the source
    # makes source-controller fetch now instead of after its interval.
    write_folder(folder, {first: {"value": "two"}, second: {"value": "new"}})
    commit = gitserver.commit_folder(git_server.repo_url(repo), folder, "Change the first, add a second")
    custom.patch_namespaced_custom_object(*SOURCE[:2], NAMESPACE, SOURCE[2], name, {
        "metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": str(time.time_ns())}}})
    eventually(f"Kustomization ready at {commit}", lambda: ready_at(custom, KUSTOMIZATION, name, commit))
    assert config_map_data(core, first) == {"value": "two"}
    assert config_map_data(core, second) == {"value": "new"}

    # A removal: the first ConfigMap's manifest leaves the folder, so prune deletes it.
    write_folder(folder, {second: {"value": "new"}})
    commit = gitserver.commit_folder(git_server.repo_url(repo), folder, "Remove the first")
    custom.patch_namespaced_custom_object(*SOURCE[:2], NAMESPACE, SOURCE[2], name, {
        "metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": str(time.time_ns())}}})
    eventually(f"{first} pruned", lambda: True if config_map_data(core, first) is None else None)
    eventually(f"Kustomization ready at {commit}", lambda: ready_at(custom, KUSTOMIZATION, name, commit))
    assert config_map_data(core, second) == {"value": "new"}
