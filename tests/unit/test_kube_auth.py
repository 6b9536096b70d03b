"""Kubernetes credentials and kubeconfig loading: token files re-read as they rotate, exec plugins
run again when their token expires or is refused, kubeconfigs merged as kubectl merges them, and a
Pod's in-cluster files."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.errors import ConfigurationError
from provisioner.kube.auth import ExecPlugin, NoToken, StaticToken, TokenFile
from provisioner.kube.kubeconfig import load

CLUSTER = {"server": "https://127.0.0.1:6443", "certificate-authority": "pki/ca.crt"}


def _plugin(folder: Path, token: str, expires: str | None = None, exit_code: int = 0) -> dict[str, Any]:
    status: dict[str, Any] = {"token": token}
    if expires:
        status["expirationTimestamp"] = expires
    runs = folder / "runs"
    script = folder / "plugin"
    script.write_text(f"#!/bin/sh\necho \"$KUBERNETES_EXEC_INFO $EXTRA\" >> '{runs}'\n"
                      + ("echo 'token refused by the provider' >&2\n" if exit_code else "")
                      + f"cat <<'EOF'\n{json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'status': status})}"
                      f"\nEOF\nexit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"apiVersion": "client.authentication.k8s.io/v1", "command": "./plugin",
            "env": [{"name": "EXTRA", "value": "from-kubeconfig"}]}


def _runs(folder: Path) -> list[str]:
    path = folder / "runs"
    return path.read_text().splitlines() if path.exists() else []


def test_a_token_file_is_read_again_when_the_kubelet_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    source = TokenFile(path)
    assert source.authorization() == "Bearer first"
    fresh = tmp_path / "token.new"
    fresh.write_text("second")
    os.replace(fresh, path)  # what the kubelet does: a new file renamed over the old
    assert source.authorization() == "Bearer second"


def test_a_token_file_is_read_again_after_a_refusal_and_after_its_max_age(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first")
    source = TokenFile(path, max_age=3600)
    assert source.authorization() == "Bearer first"
    stamp = path.stat()
    path.write_text("other")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # same mtime and inode: not seen as a change
    assert source.authorization() == "Bearer first"
    source.expire()  # a 401
    assert source.authorization() == "Bearer other"
    aged = TokenFile(path, max_age=0)
    assert aged.authorization() == "Bearer other"
    path.write_text("third")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert aged.authorization() == "Bearer third"


def test_a_missing_or_empty_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the token file"):
        TokenFile(tmp_path / "nope").authorization()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigurationError, match="is empty"):
        TokenFile(tmp_path / "empty").authorization()


def test_an_exec_plugin_is_run_once_until_its_token_expires(tmp_path: Path) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    source = ExecPlugin(_plugin(tmp_path, "tok-1", later), tmp_path)
    assert source.authorization() == "Bearer tok-1"
    assert source.authorization() == "Bearer tok-1"
    runs = _runs(tmp_path)
    assert len(runs) == 1
    info = json.loads(runs[0].rsplit(" ", 1)[0])
    assert info == {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                    "spec": {"interactive": False}}
    assert runs[0].endswith("from-kubeconfig")  # the kubeconfig's env reaches the plugin
    expires = source.expires()
    assert expires is not None and expires > datetime.now(UTC)
    source.expire()  # a 401: run it again
    source.authorization()
    assert len(_runs(tmp_path)) == 2


def test_an_expired_exec_token_is_fetched_again(tmp_path: Path) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()  # within the refresh margin
    source = ExecPlugin(_plugin(tmp_path, "tok", soon), tmp_path)
    source.authorization()
    source.authorization()
    assert len(_runs(tmp_path)) == 2


def test_a_failing_exec_plugin_says_so_in_one_line_without_the_token(tmp_path: Path) -> None:
    source = ExecPlugin(_plugin(tmp_path, "secret-token", exit_code=3), tmp_path)
    with pytest.raises(ConfigurationError) as error:
        source.authorization()
    message = str(error.value)
    assert "'plugin' exited with 3: token refused by the provider" in message
    assert "secret-token" not in message
    missing = ExecPlugin({"apiVersion": "client.authentication.k8s.io/v1", "command": "no-such-plugin-x"}, tmp_path)
    with pytest.raises(ConfigurationError, match="'no-such-plugin-x' is not installed"):
        missing.authorization()
    (tmp_path / "garbage").write_text("#!/bin/sh\necho not json\n")
    (tmp_path / "garbage").chmod(0o700)
    with pytest.raises(ConfigurationError, match="no ExecCredential"):
        ExecPlugin({"apiVersion": "v1", "command": "./garbage"}, tmp_path).authorization()
    (tmp_path / "cert").write_text("#!/bin/sh\necho '{\"status\": {\"clientCertificateData\": \"x\"}}'\n")
    (tmp_path / "cert").chmod(0o700)
    with pytest.raises(ConfigurationError, match="printed a client certificate"):
        ExecPlugin({"apiVersion": "v1", "command": "./cert"}, tmp_path).authorization()


def _kubeconfig(path: Path, user: dict[str, Any], *, context: str = "main", namespace: str | None = "team",
                cluster: dict[str, Any] | None = None) -> Path:
    entry: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        entry["namespace"] = namespace
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": cluster or CLUSTER}], "users": [{"name": "u", "user": user}],
        "contexts": [{"name": context, "context": entry}]}))
    return path


def test_a_kubeconfig_gives_server_tls_namespace_and_the_token_source(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    connection = load(_kubeconfig(tmp_path / "sub" / "config", {"tokenFile": "tok"}))
    assert connection.host == "https://127.0.0.1:6443"
    assert connection.ca_file == str(tmp_path / "sub" / "pki" / "ca.crt")  # relative to its file
    assert connection.namespace == "team"
    assert isinstance(connection.credentials, TokenFile)
    assert connection.credentials.path == tmp_path / "sub" / "tok"
    assert isinstance(load(_kubeconfig(tmp_path / "a", {"token": "t"})).credentials, StaticToken)
    assert isinstance(load(_kubeconfig(tmp_path / "b", {"exec": _plugin(tmp_path, "x")})).credentials, ExecPlugin)
    plain = load(_kubeconfig(tmp_path / "c", {"client-certificate": "/etc/c.crt", "client-key": "k.key"},
                             namespace=None))
    assert isinstance(plain.credentials, NoToken)
    assert (plain.cert_file, plain.key_file, plain.namespace) == ("/etc/c.crt", str(tmp_path / "k.key"), "default")


def test_inline_certificates_are_written_to_private_files(tmp_path: Path) -> None:
    import base64

    data = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    cluster = {"server": "https://k:443", "certificate-authority-data": data, "tls-server-name": "kube"}
    connection = load(_kubeconfig(tmp_path / "config", {"client-certificate-data": data, "client-key-data": data},
                                  cluster=cluster))
    for name in (connection.ca_file, connection.cert_file, connection.key_file):
        assert name is not None
        assert Path(name).read_bytes() == b"-----BEGIN CERTIFICATE-----\n"
        assert stat.S_IMODE(Path(name).stat().st_mode) == 0o600
    assert len({connection.ca_file, connection.cert_file, connection.key_file}) == 3
    configuration = connection.configuration(pool_size=4)
    assert configuration.tls_server_name == "kube" and configuration.connection_pool_maxsize == 4


def test_kubeconfig_files_merge_as_kubectl_merges_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _kubeconfig(tmp_path / "first", {"token": "from-first"}, context="one")
    second = _kubeconfig(tmp_path / "second", {"token": "from-second"}, context="two")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)]))
    connection = load()
    assert connection.credentials.authorization() == "Bearer from-first"  # the first file's user wins
    assert connection.source == "context 'one'"
    chosen = load(context="two")
    assert chosen.source == "context 'two'"
    assert chosen.credentials.authorization() == "Bearer from-first"  # user "u": still the first file's
    with pytest.raises(ConfigurationError, match="no context 'three'"):
        load(context="three")


def test_in_cluster_the_pod_files_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sa"
    folder.mkdir()
    (folder / "token").write_text("pod-token")
    (folder / "ca.crt").write_text("ca")
    (folder / "namespace").write_text("provisioner-system\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "8443")
    monkeypatch.setenv("PROVISIONER_SERVICE_ACCOUNT_DIR", str(folder))
    connection = load()
    assert connection.host == "https://[fd00::1]:8443"
    assert connection.namespace == "provisioner-system"
    assert connection.ca_file == str(folder / "ca.crt")
    assert connection.credentials.authorization() == "Bearer pod-token"
    (folder / "token").unlink()
    with pytest.raises(ConfigurationError, match="no ServiceAccount token"):
        load()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConfigurationError, match="not in a cluster"):
        load()


def test_unusable_kubeconfigs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no file"):
        load(tmp_path / "nope")
    with pytest.raises(ConfigurationError, match="auth-provider 'oidc' is not supported"):
        load(_kubeconfig(tmp_path / "a", {"auth-provider": {"name": "oidc"}}))
    with pytest.raises(ConfigurationError, match="basic auth"):
        load(_kubeconfig(tmp_path / "b", {"username": "u", "password": "p"}))
    (tmp_path / "c").write_text("- not\n- a mapping\n")
    with pytest.raises(ConfigurationError, match="not a mapping"):
        load(tmp_path / "c")
    (tmp_path / "d").write_text("clusters: [\n")
    with pytest.raises(ConfigurationError, match="cannot read the kubeconfig"):
        load(tmp_path / "d")
