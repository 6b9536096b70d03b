"""The install bundle in operators/ against a real API server: every object applies (dry-run and
real), the RBAC has no wildcard, and the operator's Pod passes the restricted profile."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from .apply import apply

OPERATORS = Path(__file__).parents[2] / "operators"


def bundle() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((OPERATORS / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        objects.extend(doc for doc in yaml.safe_load_all((OPERATORS / resource).read_text()) if doc)
    return objects


def test_the_bundle_applies_and_the_operator_pod_is_admitted(kube_api: client.ApiClient) -> None:
    objects = bundle()
    assert {o["kind"] for o in objects} >= {"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
                                            "ClusterRoleBinding", "Deployment"}
    namespace = next(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
    for obj in objects:  # in kustomization order: the namespace exists before what lives in it
        apply(kube_api, namespace, obj, dry_run=True)
        apply(kube_api, namespace, obj)
    deadline = time.monotonic() + 60
    core = client.CoreV1Api(kube_api)
    while not core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=provisioner-operator").items:
        events = [e.message for e in core.list_namespaced_event(namespace).items if e.reason == "FailedCreate"]
        assert not events, events
        assert time.monotonic() < deadline, "the operator's Pod was not created"
        time.sleep(0.25)


def test_the_operator_rbac_names_every_resource_and_verb() -> None:
    rules = [rule for o in bundle() if o["kind"] == "ClusterRole" for rule in o["rules"]]
    assert rules
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
    secrets = [r for r in rules if "secrets" in r["resources"]]
    assert all("escalate" not in r["verbs"] and "bind" not in r["verbs"] for r in rules)
    assert secrets


def test_the_operator_cannot_list_secrets_or_write_outside_its_kinds() -> None:
    """Secrets are read by name only (no list/watch: that would be every Secret of the cluster);
    nothing is ever PUT; pods are not read; the one validating webhook configuration is patched by
    name, none is created, no mutating one at all."""
    rules = [rule for o in bundle() if o["kind"] == "ClusterRole" for rule in o["rules"]]
    secrets = [r for r in rules if "secrets" in r["resources"]]
    assert [sorted(r["verbs"]) for r in secrets] == [["create", "delete", "get", "patch"]]
    assert all(r["resources"] == ["secrets"] for r in secrets)
    assert not [r for r in rules if "pods" in r["resources"]]
    children = [r for r in rules if set(r["resources"]) & {"configmaps", "deployments", "networkpolicies"}]
    assert children and all("update" not in r["verbs"] for r in children)
    webhooks = [r for r in rules if r["apiGroups"] == ["admissionregistration.k8s.io"]]
    assert webhooks == [{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
                         "resourceNames": ["provisioner.dev"], "verbs": ["get", "patch"]}]
    shipped = [o["metadata"]["name"] for o in bundle() if o["kind"] == "ValidatingWebhookConfiguration"]
    assert shipped == ["provisioner.dev"]  # created by the bundle: the operator only patches it


def test_the_argocd_health_check_is_the_same_text_in_both_files() -> None:
    lua = (OPERATORS / "gitops" / "argocd-health-dataproduct.lua").read_text()
    config = yaml.safe_load((OPERATORS / "gitops" / "argocd-cm-health.yaml").read_text())
    assert config["data"]["resource.customizations.health.provisioner.dev_DataProduct"] == lua
