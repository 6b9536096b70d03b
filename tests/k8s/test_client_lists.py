"""The client's names-only listing (the operator's periodic cache check) against the real API
server: each object's metadata and the kind asked for, and an empty kind lists as nothing."""

from __future__ import annotations

from provisioner.kube.client import PARTIAL_METADATA, KubeClient

LABELS = {"app.kubernetes.io/managed-by": "provisioner"}


def test_a_names_only_listing_gives_metadata_and_copes_with_none(kube: KubeClient, namespace: str) -> None:
    for index in range(3):
        kube.create({"apiVersion": "v1", "kind": "ConfigMap", "data": {"big": "x" * 1000},
                     "metadata": {"name": f"c{index}", "namespace": namespace, "labels": LABELS}})
    listed = kube.list("ConfigMap", namespace, LABELS, metadata_only=True, page=2)
    assert sorted(o["metadata"]["name"] for o in listed) == ["c0", "c1", "c2"]
    assert all(o["apiVersion"] == PARTIAL_METADATA and o["kind"] == "ConfigMap" and set(o) == {
        "apiVersion", "kind", "metadata"} for o in listed)
    assert kube.list("ServiceAccount", namespace, LABELS, metadata_only=True) == []
