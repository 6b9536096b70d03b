"""Where the cluster is and who we are in it: a kubeconfig (files merged as kubectl merges them) or
the Pod's in-cluster configuration, read into a `Connection`.

Read here rather than by the `kubernetes` package's loaders, which run an exec plugin once at load
and read a `tokenFile` once: the credentials must be fetched again while the process lives (see
`provisioner.kube.auth`). The TLS files (CA, client certificate and key) are paths the connection
pool opens; inline `-data` values are written to private temporary files for it.

The rules are kubectl's: `KUBECONFIG` may list several files (missing ones skipped), the first file
to name a context, cluster or user wins, and relative paths are relative to the file that holds
them. In a Pod (no kubeconfig, `KUBERNETES_SERVICE_HOST` set) the ServiceAccount's token, CA and
namespace are read from /var/run/secrets/kubernetes.io/serviceaccount
(`PROVISIONER_SERVICE_ACCOUNT_DIR` names another folder, for a token projected elsewhere).
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import ConfigurationError
from provisioner.kube.auth import Credentials, ExecPlugin, NoToken, StaticToken, TokenFile

__all__ = ["SERVICE_ACCOUNT_DIR", "Connection", "load"]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_DIR_ENV = "PROVISIONER_SERVICE_ACCOUNT_DIR"
DEFAULT_KUBECONFIG = Path("~/.kube/config")


@dataclass
class Connection:
    """An API server's address, the TLS to reach it, and the credentials to present."""

    host: str
    credentials: Credentials
    namespace: str = "default"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    tls_server_name: str | None = None
    proxy: str | None = None
    source: str = ""  # for messages: the kubeconfig's context, or "in-cluster"
    cluster: dict[str, Any] = field(default_factory=dict, repr=False)

    def configuration(self, pool_size: int = 16) -> Any:
        """A `kubernetes.client.Configuration` for the connection pool (no credentials: see KubeClient)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.host
        configuration.ssl_ca_cert = self.ca_file
        configuration.cert_file = self.cert_file
        configuration.key_file = self.key_file
        configuration.verify_ssl = self.verify
        if self.tls_server_name:
            configuration.tls_server_name = self.tls_server_name
        if self.proxy:
            configuration.proxy = self.proxy
        configuration.connection_pool_maxsize = pool_size
        return configuration


def load(kubeconfig: Path | str | None = None, context: str | None = None) -> Connection:
    """The connection of `kubeconfig` (a path or a KUBECONFIG-style list; default $KUBECONFIG, else
    ~/.kube/config) and `context`, or the Pod's when none exists and the process runs in a cluster."""
    explicit = kubeconfig is not None and str(kubeconfig).strip() != ""
    listed = str(kubeconfig) if explicit else os.environ.get("KUBECONFIG", "")
    files = [Path(p).expanduser() for p in listed.split(os.pathsep) if p.strip()] if listed.strip() else \
        [DEFAULT_KUBECONFIG.expanduser()]
    present = [f for f in files if f.is_file()]
    if present:
        return _from_kubeconfig(present, context)
    if explicit and len(files) == 1:
        raise ConfigurationError(f"cannot use the kubeconfig: no file {files[0]}")
    if context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return _in_cluster()
    if context is not None:
        raise ConfigurationError(f"cannot use the context {context!r}: no kubeconfig found at {listed or files[0]}")
    raise ConfigurationError(f"no kubeconfig at {listed or files[0]} and not in a cluster")


def _in_cluster() -> Connection:
    folder = Path(os.environ.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT_DIR)
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"  # IPv6
    token, ca = folder / "token", folder / "ca.crt"
    if not token.is_file():
        raise ConfigurationError(f"in a cluster but no ServiceAccount token at {token} "
                                 "(is automountServiceAccountToken off?)")
    try:
        namespace = (folder / "namespace").read_text(encoding="utf-8").strip() or "default"
    except OSError:
        namespace = "default"
    credentials = TokenFile(token)
    credentials.authorization()  # an unreadable token is a setup error now, not at the first request
    return Connection(host=f"https://{host}:{port}", credentials=credentials, namespace=namespace,
                      ca_file=str(ca) if ca.is_file() else None, source="in-cluster")


def _from_kubeconfig(files: list[Path], context: str | None) -> Connection:
    merged: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"contexts": {}, "clusters": {}, "users": {}}
    current = ""
    for path in files:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ConfigurationError(f"cannot read the kubeconfig {path}: {type(error).__name__}") from None
        if not isinstance(document, dict):
            raise ConfigurationError(f"the kubeconfig {path} is not a mapping")
        current = current or str(document.get("current-context") or "")
        for section, entry_key in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in document.get(section) or []:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    merged[section].setdefault(item["name"], (item.get(entry_key) or {}, path.parent))
    name = context or current
    if not name:
        raise ConfigurationError(f"the kubeconfig {files[0]} sets no current-context; pass --context")
    if name not in merged["contexts"]:
        raise ConfigurationError(f"the kubeconfig has no context {name!r}")
    ctx, _ = merged["contexts"][name]
    cluster, cluster_dir = merged["clusters"].get(str(ctx.get("cluster")), ({}, files[0].parent))
    user, user_dir = merged["users"].get(str(ctx.get("user")), ({}, files[0].parent))
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ConfigurationError(f"the kubeconfig's context {name!r} names no cluster with a server")
    return Connection(
        host=server, credentials=_credentials(user, user_dir, cluster),
        namespace=str(ctx.get("namespace") or "default"),
        ca_file=_file(cluster, "certificate-authority", cluster_dir),
        cert_file=_file(user, "client-certificate", user_dir), key_file=_file(user, "client-key", user_dir),
        verify=not cluster.get("insecure-skip-tls-verify", False), tls_server_name=cluster.get("tls-server-name"),
        proxy=cluster.get("proxy-url"), source=f"context {name!r}", cluster=cluster,
    )


def _credentials(user: dict[str, Any], base: Path, cluster: dict[str, Any]) -> Credentials:
    if user.get("exec"):
        if not isinstance(user["exec"], dict):
            raise ConfigurationError("the kubeconfig user's exec is not a mapping")
        return ExecPlugin(user["exec"], base, cluster)
    if user.get("tokenFile"):
        return TokenFile(_resolve(str(user["tokenFile"]), base))
    if user.get("token"):
        return StaticToken(str(user["token"]))
    if user.get("auth-provider"):
        provider = (user["auth-provider"] or {}).get("name", "?")
        raise ConfigurationError(f"the kubeconfig user's auth-provider {provider!r} is not supported (kubectl "
                                 "dropped them too): use its exec credential plugin instead")
    if user.get("username") or user.get("password"):
        raise ConfigurationError("the kubeconfig user's username/password (basic auth) is not supported by "
                                 "Kubernetes API servers since 1.19: use a token, a certificate or an exec plugin")
    return NoToken()


def _resolve(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _file(entry: dict[str, Any], key: str, base: Path) -> str | None:
    """The path of `key`, or of a private temporary file holding `key-data` (base64)."""
    if entry.get(f"{key}-data"):
        try:
            data = base64.b64decode(str(entry[f"{key}-data"]), validate=True)
        except ValueError:
            raise ConfigurationError(f"the kubeconfig's {key}-data is not base64") from None
        target = _private_dir() / f"{key}-{len(list(_private_dir().iterdir()))}.pem"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return str(target)
    if entry.get(key):
        return str(_resolve(str(entry[key]), base))
    return None


_PRIVATE: list[Path] = []


def _private_dir() -> Path:
    if not _PRIVATE:
        folder = Path(tempfile.mkdtemp(prefix="provisioner-kube-"))  # 0700
        atexit.register(shutil.rmtree, folder, True)
        _PRIVATE.append(folder)
    return _PRIVATE[0]
