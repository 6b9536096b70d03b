"""Authentication as production has it, against the real API server: the operator as the bundle's
ServiceAccount from a Pod's in-cluster files, its bound token rotated and the old one revoked while
it runs; the cluster CLI with a token, a token-file and an exec-plugin kubeconfig. The audit log
says who each request was (never `system:anonymous`)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.errors import ConfigurationError
from provisioner.kube.client import DEFAULT_USER_AGENT, OPERATOR_USER_AGENT, KubeClient
from tests.integration.conftest import kafka_bootstrap  # noqa: F401  (fixture)

from .apply import apply, request
from .conftest import audited_requests
from .identity import (
    OPERATOR_ACCOUNT,
    OPERATOR_NAMESPACE,
    OPERATOR_USER,
    cluster_entry,
    exec_plugin,
    in_cluster_files,
    install_operator_rbac,
    mint_token,
    write_kubeconfig,
)
from .operator_harness import children, product, running_operator, wait_for

pytestmark = pytest.mark.integration
runner = CliRunner()
READ_ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "product-reader"},
             "rules": [{"apiGroups": ["provisioner.dev"], "resources": ["dataproducts"], "verbs": ["get", "list"]}]}


@pytest.fixture
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    name = f"auth-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": name}})
    yield name
    client.CoreV1Api(kube_api).delete_namespace(name)


def _bound_secret(api: client.ApiClient, name: str) -> dict[str, Any]:
    """A Secret a token is bound to: deleting it revokes the token, as deleting a Pod does."""
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque"}
    return apply(api, OPERATOR_NAMESPACE, body)


def _users(audit_log: Path, since: float, agent: str) -> dict[str, int]:
    """How many requests each user made with `agent`, and how many were refused as 401."""
    counts: dict[str, int] = {}
    for entry in audited_requests(audit_log, since, ("get", "list", "watch", "create", "update", "patch", "delete")):
        if entry.get("userAgent", "").startswith(agent):
            user = entry.get("user", {}).get("username", "")
            if entry.get("responseStatus", {}).get("code") == 401:
                user = f"401 {user}"
            counts[user] = counts.get(user, 0) + 1
    return counts


def _write_atomically(path: Path, text: str) -> None:
    """Replace the file as the kubelet replaces a projected token: a new file renamed over it."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def test_the_operator_runs_in_cluster_as_its_service_account_through_a_token_rotation(
        kube_api: client.ApiClient, kube: KubeClient, kubeconfig: Path, namespace: str, kafka_bootstrap: str,  # noqa: F811
        audit_log: Path | None, tmp_path: Path) -> None:
    install_operator_rbac(kube_api)
    first = _bound_secret(kube_api, f"token-{uuid.uuid4().hex[:6]}")
    second = _bound_secret(kube_api, f"token-{uuid.uuid4().hex[:6]}")
    token = mint_token(kube_api, OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, seconds=3600, bound_secret=first)
    folder = tmp_path / "serviceaccount"
    environment = in_cluster_files(folder, cluster_entry(kubeconfig), token, OPERATOR_NAMESPACE)
    environment["HOME"] = str(tmp_path)  # no ~/.kube/config: the Pod's files are all there is
    started = time.time()
    with running_operator(None, namespace, kafka_bootstrap, tmp_path, env=environment) as operator:
        kube.apply(product("before", namespace, "orders.v1"))
        wait_for("the first product's objects", lambda: len(children(kube, namespace, "before")) == 3)

        # The kubelet rotates the token; the old one is revoked (its bound object is gone).
        _write_atomically(folder / "token", mint_token(kube_api, OPERATOR_NAMESPACE, OPERATOR_ACCOUNT,
                                                       seconds=3600, bound_secret=second))
        rotated = time.time()
        kube.delete("Secret", OPERATOR_NAMESPACE, first["metadata"]["name"])
        stale = KubeClient(client.ApiClient(_bare(kube)), credentials=_Fixed(token))
        wait_for("the old token refused", lambda: _refused(stale, namespace))  # the server's caches catch up

        kube.apply(product("after", namespace, "orders.v1"))
        wait_for("the second product's objects", lambda: len(children(kube, namespace, "after")) == 3)
        kube.delete("ConfigMap", namespace, "after-spec")  # drift repair after the rotation too
        wait_for("the ConfigMap restored", lambda: kube.get("ConfigMap", namespace, "after-spec"))
        assert operator.proc.poll() is None, operator.text()[-3000:]
        log = operator.text()
    assert token not in log
    if audit_log is not None:
        users = _users(audit_log, started, OPERATOR_USER_AGENT)
        assert users.get(OPERATOR_USER, 0) > 0, users
        assert not any("anonymous" in user for user in users), users
        after = _users(audit_log, rotated + 1, OPERATOR_USER_AGENT)
        assert after.get(OPERATOR_USER, 0) > 0, after  # the new token works without a restart


def _refused(kube: KubeClient, namespace: str) -> bool:
    try:
        kube.list("DataProduct", namespace)
    except ConfigurationError as error:
        assert "401" in str(error)
        return True
    return False


class _Fixed:
    """One token as it is, never fetched again: what a client that ignores rotation would send."""

    def __init__(self, token: str) -> None:
        self.token = token

    def authorization(self) -> str:
        return f"Bearer {self.token}"

    def expires(self) -> None:
        return None

    def expire(self) -> None:
        return None


def _bare(kube: KubeClient) -> Any:
    """The admin client's TLS settings without its client certificate."""
    configuration = client.Configuration()
    configuration.host = kube.configuration.host
    configuration.ssl_ca_cert = kube.configuration.ssl_ca_cert
    return configuration


def _reader(kube_api: client.ApiClient, namespace: str) -> str:
    """A ServiceAccount of `namespace` that may read its DataProducts, and a token for it."""
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    apply(kube_api, namespace, READ_ROLE)
    apply(kube_api, namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "product-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "product-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]})
    return mint_token(kube_api, namespace, "reader", seconds=600)


def _status(config: Path, namespace: str) -> Any:
    return runner.invoke(app, ["status", "--target", "k8s", "--kubeconfig", str(config), "-n", namespace,
                               "-o", "json"], env={"COLUMNS": "200"})


def test_the_cli_authenticates_with_token_token_file_and_exec_plugin_kubeconfigs(
        kube_api: client.ApiClient, kube: KubeClient, kubeconfig: Path, namespace: str, audit_log: Path | None,
        tmp_path: Path) -> None:
    token = _reader(kube_api, namespace)
    kube.apply(product("orders", namespace, "orders.v1"))
    cluster = cluster_entry(kubeconfig)
    reader = f"system:serviceaccount:{namespace}:reader"
    started = time.time()

    with_token = write_kubeconfig(tmp_path / "token.kubeconfig", cluster, {"token": token})
    (tmp_path / "token").write_text(token)
    with_file = write_kubeconfig(tmp_path / "file.kubeconfig", cluster, {"tokenFile": "token"})  # relative
    script, runs = exec_plugin(tmp_path, token, expires="2099-01-01T00:00:00Z")
    with_plugin = write_kubeconfig(tmp_path / "exec.kubeconfig", cluster, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": f"./{script.name}", "interactiveMode": "Never"}})
    for config in (with_token, with_file, with_plugin):
        answer = _status(config, namespace)
        assert answer.exit_code == 0, (config.name, answer.output)
        assert [p["name"] for p in json.loads(answer.output)["products"]] == ["orders"], answer.output
    infos = [json.loads(line) for line in runs.read_text().splitlines()]
    assert infos and all(i["kind"] == "ExecCredential" and i["spec"]["interactive"] is False for i in infos)

    # A revoked identity: a one-line error naming the cause, never the token.
    client.CoreV1Api(kube_api).delete_namespaced_service_account("reader", namespace)
    refused = wait_for("the revoked token refused",  # once the server's caches catch up
                       lambda: (answer := _status(with_token, namespace)).exit_code and answer)
    assert "401" in refused.output and "credentials" in refused.output, refused.output
    assert token not in refused.output and "Traceback" not in refused.output

    if audit_log is not None:
        users = _users(audit_log, started, DEFAULT_USER_AGENT)
        assert users.get(reader, 0) >= 3, users
        assert not any("anonymous" in user for user in users), users


def test_a_forbidden_request_names_the_rbac_not_the_credentials(
        kube_api: client.ApiClient, kubeconfig: Path, namespace: str, tmp_path: Path) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = mint_token(kube_api, namespace, "nobody", seconds=600)
    config = write_kubeconfig(tmp_path / "nobody.kubeconfig", cluster_entry(kubeconfig), {"token": token})
    answer = _status(config, namespace)
    assert answer.exit_code != 0
    assert "403" in answer.output and "RBAC" in answer.output, answer.output
    assert token not in answer.output
    # The same request as the admin works: the refusal was the identity's, not the request's.
    assert request(kube_api, "GET", f"/apis/provisioner.dev/v1alpha1/namespaces/{namespace}/dataproducts")
