"""A small Kubernetes API client: server-side apply, get, list by labels, delete and status
patches, all as one field manager, with API errors sorted into provisioner's error hierarchy.

It talks REST through the `kubernetes` package's ApiClient (TLS and the connection pool) rather
than its generated methods, which drop the body of a 201 answer and need one method per kind. Every
request carries the Authorization header its `Credentials` give at that moment
(`provisioner.kube.auth`: tokens re-read or re-fetched as they rotate and expire, and once more
after a 401); the connection comes from `provisioner.kube.kubeconfig`.
The kinds provisioner writes are listed in `KINDS`; nothing else is reachable through this client.

Errors: 409 is a ConflictError and 429/5xx or a broken connection an UnavailableError (both
retryable); 401 (after one retry with fresh credentials) and 403 are ConfigurationError
(credentials or RBAC: fix the setup); a refusal (400, 422) is an ApiRefusedError whose message is
the server's own, except for Secrets, whose refusals never quote the server (it may echo a value).
`requests` and `writes` count calls, for the benchmark and the tests.

Called by `provisioner.kube.reconcile`, the operator and the cluster CLI commands.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from provisioner import __version__
from provisioner.errors import ConfigurationError, ConflictError, ProvisionerError, UnavailableError
from provisioner.kube.auth import Credentials, NoToken
from provisioner.kube.kubeconfig import load as kubeconfig_connection

__all__ = [
    "FIELD_MANAGER",
    "KINDS",
    "PARTIAL_METADATA",
    "ApiRefusedError",
    "Kind",
    "KubeClient",
    "NotFoundError",
    "kind_of",
]

FIELD_MANAGER = "provisioner"
_APPLY = "application/apply-patch+yaml"
_MERGE = "application/merge-patch+json"
_TIMEOUT_S = 30.0  # each call's connect and read timeout
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
PARTIAL_METADATA = "meta.k8s.io/v1"  # the apiVersion of an object listed with `metadata_only`
_PARTIAL_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


@dataclass(frozen=True, slots=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def collection(self, namespace: str | None) -> str:
        prefix = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace is not None:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"

    def path(self, namespace: str | None, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


KINDS: dict[str, Kind] = {k.kind: k for k in (
    Kind("v1", "ServiceAccount", "serviceaccounts"),
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Secret", "secrets"),
    Kind("v1", "Service", "services"),
    Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    Kind("apps/v1", "StatefulSet", "statefulsets"),
    Kind("apps/v1", "Deployment", "deployments"),
    Kind("provisioner.dev/v1alpha1", "DataProduct", "dataproducts"),
    Kind("v1", "Event", "events"),
    Kind("coordination.k8s.io/v1", "Lease", "leases"),
    Kind("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
         namespaced=False),
)}


def kind_of(body: dict[str, Any]) -> Kind:
    try:
        return KINDS[body["kind"]]
    except KeyError:
        raise ConfigurationError(f"provisioner does not manage objects of kind {body.get('kind')!r}") from None


class NotFoundError(ProvisionerError):
    """The object does not exist (404)."""


class ApiRefusedError(ProvisionerError):
    """The API server refused an object or a request as invalid (400, 422): not retried."""


DEFAULT_USER_AGENT = f"provisioner/{__version__}"
OPERATOR_USER_AGENT = f"provisioner-operator/{__version__}"


class KubeClient:
    """REST calls as provisioner's field manager over a `kubernetes.client.ApiClient`."""

    def __init__(self, api: Any, user_agent: str = DEFAULT_USER_AGENT, *, credentials: Credentials | None = None,
                 namespace: str = "default") -> None:
        self.api = api
        self.credentials: Credentials = credentials or NoToken()
        self.namespace = namespace  # the kubeconfig context's, or the Pod's
        self.user_agent = user_agent  # names provisioner (CLI or operator) in the API server's audit log
        self._lock = threading.Lock()
        self.requests = 0
        self.writes = 0

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None = None, context: str | None = None,
                        *, pool_size: int = 16, user_agent: str = DEFAULT_USER_AGENT) -> KubeClient:
        """A client for `kubeconfig` (default: $KUBECONFIG or ~/.kube/config) and `context`, or
        for the Pod's service account when no kubeconfig exists and the process runs in a cluster."""
        from kubernetes import client

        connection = kubeconfig_connection(kubeconfig, context)
        return cls(client.ApiClient(connection.configuration(pool_size)), user_agent,
                   credentials=connection.credentials, namespace=connection.namespace)

    @property
    def configuration(self) -> Any:
        return self.api.configuration

    def close(self) -> None:
        self.api.close()

    # -- the one REST call ------------------------------------------------------------------------

    def request(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None,
                content_type: str = "application/json", *, about: str = "",
                accept: str = "application/json") -> dict[str, Any]:
        """One call; the answer's JSON, or a ProvisionerError by meaning. `about` names the object
        in messages; a Secret's refusal never quotes the server. A 401 fetches the credentials again
        and retries once."""
        if body is not None:  # apply-patch+yaml too: JSON is YAML
            body = _encode(body).encode()
        url = self.api.configuration.host + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Content-Type": content_type, "Accept": accept, "User-Agent": self.user_agent}
        for attempt in (1, 2):
            authorization = self.credentials.authorization()
            if authorization:
                headers["Authorization"] = authorization
            status, data = self._call(method, url, headers, body)
            if status != 401 or attempt == 2:
                break
            self.credentials.expire()  # a rotated or expired token: fetch it again, then retry once
        if 200 <= status < 300:
            result: dict[str, Any] = json.loads(data) if data else {}
            return result
        raise _error(status, data, method, about or path)

    def _call(self, method: str, url: str, headers: dict[str, str], body: Any) -> tuple[int, bytes]:
        from urllib3.exceptions import HTTPError

        with self._lock:
            self.requests += 1
            if method != "GET":
                self.writes += 1
        try:
            # Straight to the pool the ApiClient built (its TLS settings, proxy and retries): its REST
            # layer would serialize the body again and look at the content type on every call.
            response = self.api.rest_client.pool_manager.request(method, url, body=body, headers=headers,
                                                                 timeout=_TIMEOUT_S)
            data: bytes = response.data
            status: int = response.status
        except HTTPError as error:
            raise UnavailableError(f"the API server did not answer ({type(error).__name__})") from None
        except OSError as error:
            raise UnavailableError(f"the API server did not answer ({error.strerror or error})") from None
        return status, data

    # -- objects ------------------------------------------------------------------------------------

    def apply(self, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply `body` (forcing conflicts, as a controller does)."""
        kind = kind_of(body)
        metadata = body["metadata"]
        query = {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("PATCH", kind.path(metadata.get("namespace"), metadata["name"]), query,
                            body, _APPLY, about=_about(body))

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", KINDS[kind].path(namespace, name), about=f"{kind} {namespace}/{name}")
        except NotFoundError:
            return None

    def list_versioned(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None,
                       *, page: int = 500, metadata_only: bool = False) -> tuple[list[dict[str, Any]], str]:
        """`list`, and the resourceVersion of the listing (every page is of one snapshot): a watch
        started from it misses nothing that happened after."""
        items: list[dict[str, Any]] = []
        version = ""
        query: dict[str, str] = {"limit": str(page)}
        if labels:
            query["labelSelector"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        entry = KINDS[kind]
        accept = _PARTIAL_LIST if metadata_only else "application/json"
        while True:
            answer = self.request("GET", entry.collection(namespace), query, about=f"{entry.plural}", accept=accept)
            version = version or answer.get("metadata", {}).get("resourceVersion") or ""
            for item in answer.get("items") or []:  # a PartialObjectMetadataList says null for none
                if metadata_only:
                    items.append({"apiVersion": PARTIAL_METADATA, "kind": kind, "metadata": item.get("metadata", {})})
                    continue
                item.setdefault("apiVersion", entry.api_version)
                item.setdefault("kind", kind)
                items.append(item)
            token = answer.get("metadata", {}).get("continue")
            if not token:
                return items, version
            query["continue"] = token

    def list(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None,
             *, page: int = 500, metadata_only: bool = False) -> list[dict[str, Any]]:
        """Every object of `kind` (in `namespace`, or everywhere) carrying `labels`, paged. With
        `metadata_only`, each object's metadata alone (apiVersion `PARTIAL_METADATA`, `kind` set
        to `kind`): a fraction of the bytes to send and parse when only names and labels matter."""
        return self.list_versioned(kind, namespace, labels, page=page, metadata_only=metadata_only)[0]

    def delete(self, kind: str, namespace: str | None, name: str, *, uid: str | None = None) -> bool:
        """Delete one object (its dependents in the background); False when it was already gone.
        With `uid`, only that incarnation of the name is deleted."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", KINDS[kind].path(namespace, name), None, body, about=f"{kind} {namespace}/{name}")
        except NotFoundError:
            return False
        except ConflictError:
            return False  # the uid precondition failed: the name belongs to a newer object
        return True

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Replace the object's status fields named in `status` (merge patch of the status subresource)."""
        return self.request("PATCH", KINDS[kind].path(namespace, name) + "/status", {"fieldManager": FIELD_MANAGER},
                            {"status": status}, _MERGE, about=f"{kind} {namespace}/{name}")

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        kind = kind_of(body)
        namespace = body["metadata"].get("namespace")
        return self.request("POST", kind.collection(namespace), {"fieldManager": FIELD_MANAGER},
                            body, about=_about(body))

    def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        """PUT `body` (it carries the resourceVersion it was read at: a ConflictError if it moved)."""
        kind = kind_of(body)
        metadata = body["metadata"]
        return self.request("PUT", kind.path(metadata.get("namespace"), metadata["name"]),
                            {"fieldManager": FIELD_MANAGER}, body, about=_about(body))


def _about(body: dict[str, Any]) -> str:
    metadata = body.get("metadata", {})
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{body.get('kind')} {where}{metadata.get('name')}"


def _error(status: int, data: bytes | str, method: str, about: str) -> ProvisionerError:
    try:
        answer = json.loads(data) if data else {}
    except ValueError:
        answer = {}
    server_message = str(answer.get("message", "")) if isinstance(answer, dict) else ""
    if status == 404:
        return NotFoundError(f"{about} not found")
    if status == 409:
        return ConflictError(f"{about} changed meanwhile (409 Conflict); retrying")
    if status == 401:
        return ConfigurationError(f"the API server did not accept the credentials for {method} {about} (401): "
                                  "the token or certificate is expired, revoked or not for this cluster")
    if status == 403:
        return ConfigurationError(f"not allowed to {method} {about} (403): check the identity's RBAC")
    if status == 429 or status >= 500:
        return UnavailableError(f"the API server could not {method} {about} now ({status})")
    if about.startswith("Secret "):
        return ApiRefusedError(f"the API server refused {about} ({status})")
    return ApiRefusedError(f"the API server refused {about} ({status}): {server_message}")
