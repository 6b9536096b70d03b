"""GitOps for real: the bundle's Flux example (operators/gitops/flux-kustomization.yaml) driven by
the real Flux controllers, pulling a specs folder from a git server, with the operator running as a
process. A commit that adds a DataProduct makes the operator build its objects, one that edits it
updates them, one that removes it (prune: true) removes the product and so its objects.

The example's `data-products` Kustomization is used as written except: the source is the local git
server, it does not depend on the bundle's Kustomization (the operator runs as a process here, not
as the bundle's Deployment: there is no kubelet), and `wait` is off (no consumer runs, so no product
ever becomes Ready and kstatus would wait for the timeout)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from provisioner.kube.client import KubeClient
from tests.integration.conftest import kafka_bootstrap  # noqa: F401  (fixture)
from tests.support import gitserver
from tests.support.flux import FluxControllers

from ..argocd_health import health
from ..operator_harness import children, product, running_operator, wait_for
from .test_flux_loop import KUSTOMIZATION, NAMESPACE, SOURCE

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).parents[3] / "operators" / "gitops" / "flux-kustomization.yaml"




def _example(name: str, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The example's GitRepository and specs Kustomization, pointed at `url` and named `name`."""
    documents = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d}
    source = documents[("GitRepository", "data-products")]
    specs = documents[("Kustomization", "data-products")]
    assert specs["spec"]["path"] == "./specs" and specs["spec"]["prune"] is True
    source["metadata"]["name"] = name
    source["spec"]["url"] = url
    specs["metadata"]["name"] = name
    specs["spec"]["sourceRef"]["name"] = name
    specs["spec"].pop("dependsOn")
    specs["spec"]["wait"] = False
    specs["spec"]["interval"] = "1m"
    return source, specs


def _write_specs(root: Path, products: list[dict[str, Any]]) -> None:
    folder = root / "specs"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    for body in products:
        (folder / f"{body['metadata']['name']}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [f"{b['metadata']['name']}.yaml" for b in products]}))


def _sync(custom: client.CustomObjectsApi, name: str, commit: str) -> None:
    custom.patch_namespaced_custom_object(*SOURCE[:2], NAMESPACE, SOURCE[2], name, {
        "metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": str(time.time_ns())}}})

    def applied() -> dict[str, Any] | None:
        status = custom.get_namespaced_custom_object(*KUSTOMIZATION[:2], NAMESPACE, KUSTOMIZATION[2],
                                                     name).get("status") or {}
        return status if (status.get("lastAppliedRevision") or "").endswith(commit) else None

    wait_for(f"Kustomization applied at {commit}", applied, timeout=90)


def test_commits_drive_the_operator(kube_api: client.ApiClient, kube: KubeClient, operator_kubeconfig: Path,
                                    namespace: str,
                                    flux: FluxControllers, git_server: gitserver.GitServer,
                                    kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: F811
    custom = client.CustomObjectsApi(kube_api)
    try:
        client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    name = f"specs-{uuid.uuid4().hex[:8]}"
    repo = f"{name}.git"
    gitserver.create_bare_repo(git_server.root, repo)
    work = tmp_path / "repo"
    orders = product("orders", namespace, "orders.v1")
    _write_specs(work, [orders])
    commit = gitserver.commit_folder(git_server.repo_url(repo), work, "Add the orders data product")
    source, specs = _example(name, git_server.repo_url(repo))

    with running_operator(operator_kubeconfig, namespace, kafka_bootstrap, tmp_path) as operator:
        custom.create_namespaced_custom_object(*SOURCE[:2], NAMESPACE, SOURCE[2], source)
        custom.create_namespaced_custom_object(*KUSTOMIZATION[:2], NAMESPACE, KUSTOMIZATION[2], specs)
        try:
            # Added: the operator builds its objects.
            found = wait_for("the operator's objects", lambda: (c := children(kube, namespace, "orders"))
                             and len(c) == 3 and c, timeout=90)
            assert {k for k, _ in found} == {"ConfigMap", "Deployment", "NetworkPolicy"}
            assert "amount: event.amount\n" in found[("ConfigMap", "orders-spec")]["data"]["product.yaml"]
            live = wait_for("a status", lambda: (b := kube.get("DataProduct", namespace, "orders"))
                            and (b.get("status") or {}).get("conditions") and b)
            assert health(live)[0] == "Progressing"  # no consumer runs here: never Ready, never failed

            # Edited: a field's expression changes, so does the consumers' ConfigMap.
            orders["spec"]["fields"]["amount"] = "event.amount * 100"
            _write_specs(work, [orders])
            commit = gitserver.commit_folder(git_server.repo_url(repo), work, "Amounts in cents")
            _sync(custom, name, commit)
            wait_for("the ConfigMap updated", lambda: "event.amount * 100" in
                     ((kube.get("ConfigMap", namespace, "orders-spec") or {}).get("data") or {}).get(
                         "product.yaml", ""), timeout=60)
            assert kube.get("DataProduct", namespace, "orders")["metadata"]["generation"] == 2  # type: ignore[index]

            # Removed: prune deletes the product; its owned objects are collected with it.
            _write_specs(work, [])
            commit = gitserver.commit_folder(git_server.repo_url(repo), work, "Retire orders")
            _sync(custom, name, commit)
            wait_for("the product pruned", lambda: kube.get("DataProduct", namespace, "orders") is None, timeout=60)
            wait_for("its objects collected", lambda: children(kube, namespace, "orders") == {}, timeout=90)
            assert "Traceback" not in operator.text()
        finally:
            for kind in (KUSTOMIZATION, SOURCE):
                try:
                    custom.delete_namespaced_custom_object(*kind[:2], NAMESPACE, kind[2], name)
                except ApiException as exc:
                    if exc.status != 404:
                        raise

            def gone(kind: tuple[str, str, str]) -> bool:
                names = {i["metadata"]["name"]
                         for i in custom.list_namespaced_custom_object(*kind[:2], NAMESPACE, kind[2])["items"]}
                return name not in names

            wait_for("Flux objects deleted", lambda: gone(KUSTOMIZATION) and gone(SOURCE), timeout=60)
