"""Server-side apply of any namespaced object through the REST API (the generated client methods
drop the body of a 201 answer), as provisioner's field manager."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from kubernetes import client
from kubernetes.client.rest import ApiException

FIELD_MANAGER = "provisioner"
APPLY = "application/apply-patch+yaml"
_PLURALS = {
    "ServiceAccount": "serviceaccounts", "ConfigMap": "configmaps", "Secret": "secrets", "Service": "services",
    "NetworkPolicy": "networkpolicies", "StatefulSet": "statefulsets", "Deployment": "deployments",
    "DataProduct": "dataproducts", "Role": "roles", "RoleBinding": "rolebindings",
}
_CLUSTER_PLURALS = {
    "Namespace": "namespaces", "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
    "CustomResourceDefinition": "customresourcedefinitions",
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
}


def object_path(body: dict[str, Any], namespace: str | None) -> str:
    api_version, kind, name = body["apiVersion"], body["kind"], body["metadata"]["name"]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if kind in _CLUSTER_PLURALS:
        return f"{prefix}/{_CLUSTER_PLURALS[kind]}/{name}"
    return f"{prefix}/namespaces/{namespace}/{_PLURALS[kind]}/{name}"


def request(api: client.ApiClient, method: str, path: str, query: dict[str, str] | None = None,
            body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
    """One REST call; a non-2xx answer raises ApiException with the server's Status as body."""
    url = api.configuration.host + path + (f"?{urlencode(query)}" if query else "")
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    response = api.call_api(method, url, header_params=headers, body=body)
    data = response.read()
    if not 200 <= response.status < 300:
        raise ApiException(status=response.status, reason=response.reason, body=data.decode())
    result: dict[str, Any] = json.loads(data)
    return result


def apply(api: client.ApiClient, namespace: str, body: dict[str, Any], *, dry_run: bool = False,
          field_validation: str = "Strict") -> dict[str, Any]:
    """Server-side apply `body` into `namespace` (forcing conflicts, as a controller does); a
    cluster-scoped object ignores `namespace`."""
    if body["kind"] not in _CLUSTER_PLURALS:
        body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    query = {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": field_validation}
    if dry_run:
        query["dryRun"] = "All"
    return request(api, "PATCH", object_path(body, namespace), query, body, APPLY)
