"""The local control plane is a real one: version, CRDs with a status subresource, server-side
apply, Pod Security admission, the Deployment controllers and garbage collection."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support import kubeapi

from .conftest import WIDGET_CRD, install_crds

T = TypeVar("T")
TIMEOUT_S = 60.0
APPLY = "application/apply-patch+yaml"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT_S) -> T:
    """Poll `probe` until it returns something other than None (or False), at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False



@pytest.fixture
def restricted_namespace(kube_api: client.ApiClient) -> Iterator[str]:
    name = f"restricted-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    yield name
    core.delete_namespace(name)


def test_serves_the_pinned_version(kube_api: client.ApiClient, kube_cluster: kubeapi.KubeCluster | None) -> None:
    version = client.VersionApi(kube_api).get_code()
    assert version.major == "1"
    if kube_cluster is not None:
        assert version.git_version == kubeapi.KUBE_VERSION
        assert version.minor == kubeapi.KUBE_VERSION.split(".")[1]


def test_crd_becomes_established_and_status_is_a_subresource(
    kube_api: client.ApiClient, kubeconfig: Path, namespace: str
) -> None:
    group = f"g{uuid.uuid4().hex[:8]}.example.test"  # unique, so reruns on a shared cluster don't collide
    crd = {**WIDGET_CRD, "metadata": {"name": f"gadgets.{group}"}}
    crd["spec"] = {**WIDGET_CRD["spec"], "group": group,
                   "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"}}
    extensions = client.ApiextensionsV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)
    extensions.create_custom_resource_definition(crd)
    try:
        def established() -> bool:
            conditions = extensions.read_custom_resource_definition(f"gadgets.{group}").status.conditions or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        wait_for("the CRD to be Established", established)
        install_crds(kubeconfig, [crd])  # also waits out the short 404 window after Established

        body = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1"},
                "spec": {"size": 3}, "status": {"phase": "ignored"}}
        created = custom.create_namespaced_custom_object(group, "v1", namespace, "gadgets", body)
        assert created["spec"] == {"size": 3}
        assert "status" not in created  # the main resource ignores status when it is a subresource

        patched = custom.patch_namespaced_custom_object_status(
            group, "v1", namespace, "gadgets", "g1", {"status": {"phase": "Ready", "observedGeneration": 1}}
        )
        assert patched["status"] == {"phase": "Ready", "observedGeneration": 1}
        # ... and the status endpoint ignores spec.
        custom.patch_namespaced_custom_object_status(group, "v1", namespace, "gadgets", "g1", {"spec": {"size": 9}})
        stored = custom.get_namespaced_custom_object(group, "v1", namespace, "gadgets", "g1")
        assert stored["spec"] == {"size": 3}
        assert stored["status"]["phase"] == "Ready"
    finally:
        extensions.delete_custom_resource_definition(f"gadgets.{group}")


def test_server_side_apply_tracks_field_owners(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)

    def apply(manager: str, data: dict[str, str], force: bool = False) -> Any:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": data}
        return core.patch_namespaced_config_map("applied", namespace, body, field_manager=manager,
                                                force=force, _content_type=APPLY)

    first = apply("provisioner", {"a": "1", "b": "2"})
    assert first.data == {"a": "1", "b": "2"}
    assert [(m.manager, m.operation) for m in first.metadata.managed_fields] == [("provisioner", "Apply")]

    # Applying the same set again is a no-op; dropping a field from the applied set removes it.
    assert apply("provisioner", {"a": "1"}).data == {"a": "1"}

    with pytest.raises(ApiException) as conflict:
        apply("someone-else", {"a": "changed"})
    assert conflict.value.status == 409

    forced = apply("someone-else", {"a": "changed"}, force=True)
    assert forced.data == {"a": "changed"}
    assert {m.manager for m in forced.metadata.managed_fields} == {"someone-else"}


def _pod_spec(compliant: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "registry.invalid/app:1"}
    spec: dict[str, Any] = {"containers": [container]}
    if compliant:  # the restricted profile, field by field
        spec["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return spec


def test_pod_security_admission_refuses_a_non_compliant_pod(
    kube_api: client.ApiClient, restricted_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(restricted_namespace, {"metadata": {"name": "bad"}, "spec": _pod_spec(False)})
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in json.loads(refused.value.body)["message"]

    accepted = core.create_namespaced_pod(restricted_namespace, {"metadata": {"name": "good"},
                                                                 "spec": _pod_spec(True)})
    assert accepted.status.phase == "Pending"  # no scheduler, no kubelet


def _deployment(name: str, compliant: bool) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": _pod_spec(compliant)}},
    }


def test_deployments_get_replicasets_and_pods_unless_pod_security_refuses(
    kube_api: client.ApiClient, restricted_namespace: str
) -> None:
    apps = client.AppsV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    ns = restricted_namespace
    apps.create_namespaced_deployment(ns, _deployment("good", compliant=True))
    apps.create_namespaced_deployment(ns, _deployment("bad", compliant=False))

    def pods(app: str) -> list[Any]:
        return list(core.list_namespaced_pod(ns, label_selector=f"app={app}").items)

    good_pods = wait_for("2 Pods of the compliant Deployment", lambda: pods("good") if len(pods("good")) == 2 else None)
    owners = {ref.kind for pod in good_pods for ref in pod.metadata.owner_references}
    assert owners == {"ReplicaSet"}
    assert all(pod.status.phase == "Pending" for pod in good_pods)

    def failed_create() -> str | None:
        for rs in apps.list_namespaced_replica_set(ns, label_selector="app=bad").items:
            for condition in rs.status.conditions or []:
                if condition.type == "ReplicaFailure" and condition.reason == "FailedCreate":
                    return str(condition.message)
        return None

    message = wait_for("FailedCreate on the non-compliant ReplicaSet", failed_create)
    assert "violates PodSecurity" in message
    assert pods("bad") == []


@pytest.mark.parametrize("owner_kind", ["ConfigMap", "Widget"])
def test_deleting_an_owner_garbage_collects_what_it_owns(
    kube_api: client.ApiClient, namespace: str, owner_kind: str
) -> None:
    core = client.CoreV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)
    if owner_kind == "Widget":  # a custom kind, installed before the controller manager started
        owner = custom.create_namespaced_custom_object(
            "example.test", "v1", namespace, "widgets",
            {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "owner"}, "spec": {}},
        )
        api_version, uid = "example.test/v1", owner["metadata"]["uid"]
    else:
        api_version, uid = "v1", core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}}).metadata.uid
    reference = {"apiVersion": api_version, "kind": owner_kind, "name": "owner", "uid": uid,
                 "controller": True, "blockOwnerDeletion": True}
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "owned", "ownerReferences": [reference]}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "bystander"}})

    if owner_kind == "Widget":
        custom.delete_namespaced_custom_object("example.test", "v1", namespace, "widgets", "owner")
    else:
        core.delete_namespaced_config_map("owner", namespace)

    wait_for("the owned ConfigMap to be collected",
             lambda: gone(lambda: core.read_namespaced_config_map("owned", namespace)))
    assert core.read_namespaced_config_map("bystander", namespace).metadata.name == "bystander"
