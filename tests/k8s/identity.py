"""Identities the way production has them: the bundle's ServiceAccount and RBAC installed as
written, tokens minted by the API server's TokenRequest API, and kubeconfigs that carry a token, a
token file or an exec plugin (or a Pod's in-cluster files) instead of the admin's certificate."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from .apply import apply, request

OPERATORS = Path(__file__).parents[2] / "operators"
OPERATOR_NAMESPACE = "provisioner-system"
OPERATOR_ACCOUNT = "provisioner-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"


def install_operator_rbac(api: client.ApiClient) -> None:
    """The bundle's namespace, ServiceAccount, ClusterRole, Role and bindings, exactly as written,
    and the (empty) ValidatingWebhookConfiguration the operator may patch but not create."""
    for name in ("namespace.yaml", "rbac.yaml", "webhook-service.yaml"):
        for body in yaml.safe_load_all((OPERATORS / name).read_text()):
            if body:
                apply(api, OPERATOR_NAMESPACE, body)


def mint_token(api: client.ApiClient, namespace: str, account: str, *, seconds: int = 3600,
               bound_secret: dict[str, Any] | None = None) -> str:
    """A token for the ServiceAccount from the TokenRequest API (what the kubelet projects into a
    Pod). Bound to a Secret, it stops being valid once that Secret is deleted."""
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if bound_secret is not None:
        spec["boundObjectRef"] = {"kind": "Secret", "apiVersion": "v1", "name": bound_secret["metadata"]["name"],
                                  "uid": bound_secret["metadata"]["uid"]}
    answer = request(api, "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", None,
                     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    return str(answer["status"]["token"])


def cluster_entry(admin_kubeconfig: Path) -> dict[str, Any]:
    """The admin kubeconfig's cluster (server and CA), with paths made absolute."""
    document = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = dict(document["clusters"][0]["cluster"])
    if "certificate-authority" in cluster and not Path(cluster["certificate-authority"]).is_absolute():
        cluster["certificate-authority"] = str(admin_kubeconfig.parent / cluster["certificate-authority"])
    return cluster


def write_kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any], namespace: str = "default") -> Path:
    document = {
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}],
    }
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


def exec_plugin(folder: Path, token: str, *, expires: str | None = None) -> tuple[Path, Path]:
    """A credential plugin script printing an ExecCredential with `token`; returns the script and
    the file it appends a line to on every run."""
    runs = folder / "plugin-runs"
    credential: dict[str, Any] = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                                  "status": {"token": token}}
    if expires:
        credential["status"]["expirationTimestamp"] = expires
    script = folder / "credential-plugin"
    script.write_text("#!/bin/sh\n"
                      f"echo \"$KUBERNETES_EXEC_INFO\" >> '{runs}'\n"
                      f"cat <<'EOF'\n{json.dumps(credential)}\nEOF\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, runs


def in_cluster_files(folder: Path, cluster: dict[str, Any], token: str, namespace: str) -> dict[str, str]:
    """A Pod's ServiceAccount folder (token, ca.crt, namespace) and the environment that points
    provisioner at it; the server from `cluster` split into KUBERNETES_SERVICE_HOST/PORT."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(token)
    if "certificate-authority-data" in cluster:
        (folder / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    else:
        (folder / "ca.crt").write_bytes(Path(cluster["certificate-authority"]).read_bytes())
    (folder / "namespace").write_text(namespace)
    host, port = cluster["server"].removeprefix("https://").rsplit(":", 1)
    return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
            "PROVISIONER_SERVICE_ACCOUNT_DIR": str(folder), "KUBECONFIG": ""}
