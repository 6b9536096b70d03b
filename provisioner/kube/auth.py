"""Who a Kubernetes client is, as a bearer token read fresh for every request.

The `kubernetes` package adds the Authorization header only in its generated methods, and its
loaders read a kubeconfig's `tokenFile` once; `KubeClient` calls the REST layer itself, so it asks
its `Credentials` for the header on each request and calls `expire()` after a 401, then retries
once. The sources are client-go's:

- `TokenFile`: a Pod's ServiceAccount token, or a kubeconfig user's `tokenFile`. The kubelet
  rotates projected tokens (bound tokens expire within the hour), so the file is read again when its
  modification time changes, at least every minute, and after a 401.
- `ExecPlugin`: a kubeconfig user's `exec` (EKS, GKE, AKS, OIDC plugins print an ExecCredential).
  Its token is kept until its `expirationTimestamp` (less a margin) or a 401, then the plugin runs
  again.
- `StaticToken`: a kubeconfig user's `token`.
- `NoToken`: client certificates, which live in the TLS layer, or no credentials at all.

No token is ever part of a message or a log line.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from provisioner.errors import ConfigurationError

__all__ = ["Credentials", "ExecPlugin", "NoToken", "StaticToken", "TokenFile"]

TOKEN_FILE_MAX_AGE_S = 60.0  # re-read a token file at least this often, as client-go does
EXEC_TIMEOUT_S = 60.0
_EXPIRY_MARGIN = timedelta(seconds=30)


class Credentials(Protocol):
    def authorization(self) -> str | None:
        """The Authorization header's value now (None: the TLS layer or nothing authenticates)."""

    def expires(self) -> datetime | None:
        """When the current token should be fetched again (None: not known)."""

    def expire(self) -> None:
        """The API server refused the current token (401): fetch a new one next time."""


class NoToken:
    def authorization(self) -> str | None:
        return None

    def expires(self) -> datetime | None:
        return None

    def expire(self) -> None:
        return None


@dataclass
class StaticToken:
    token: str = field(repr=False)

    def authorization(self) -> str | None:
        return f"Bearer {self.token}"

    def expires(self) -> datetime | None:
        return None

    def expire(self) -> None:
        return None  # nothing to fetch again: the kubeconfig holds this token


class TokenFile:
    """A token read from `path` again when the file changes, every minute, or after a 401."""

    def __init__(self, path: Path, *, max_age: float = TOKEN_FILE_MAX_AGE_S) -> None:
        self.path = path
        self._max_age = max_age
        self._lock = threading.Lock()
        self._token = ""
        self._stamp: tuple[int, int] | None = None
        self._read_at = 0.0

    def authorization(self) -> str | None:
        with self._lock:
            try:
                stat = self.path.stat()
            except OSError as error:
                raise ConfigurationError(f"cannot read the token file {self.path}: "
                                         f"{error.strerror or error}") from None
            stamp = (stat.st_mtime_ns, stat.st_ino)
            if stamp != self._stamp or time.monotonic() - self._read_at > self._max_age:
                self._read(stamp)
            return f"Bearer {self._token}"

    def _read(self, stamp: tuple[int, int]) -> None:
        try:
            token = self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"cannot read the token file {self.path}: "
                                     f"{getattr(error, 'strerror', None) or type(error).__name__}") from None
        if not token:
            raise ConfigurationError(f"the token file {self.path} is empty")
        self._token, self._stamp, self._read_at = token, stamp, time.monotonic()

    def expires(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(seconds=self._max_age)

    def expire(self) -> None:
        with self._lock:
            self._stamp = None


class ExecPlugin:
    """A kubeconfig user's `exec` plugin (client.authentication.k8s.io ExecCredential)."""

    def __init__(self, spec: dict[str, Any], base_dir: Path, cluster: dict[str, Any] | None = None) -> None:
        command = spec.get("command")
        api_version = spec.get("apiVersion")
        if not isinstance(command, str) or not command or not isinstance(api_version, str):
            raise ConfigurationError("the kubeconfig user's exec needs `command` and `apiVersion`")
        if os.sep in command and not os.path.isabs(command):
            command = str(base_dir / command)  # relative to the kubeconfig file, as kubectl resolves it
        self.argv = [command, *(str(a) for a in spec.get("args") or [])]
        self.api_version = api_version
        self.env = {str(e["name"]): str(e["value"]) for e in spec.get("env") or [] if isinstance(e, dict)}
        self.cluster = cluster if spec.get("provideClusterInfo") else None
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires: datetime | None = None

    def authorization(self) -> str | None:
        with self._lock:
            now = datetime.now(UTC)
            if self._token is None or (self._expires is not None and now >= self._expires - _EXPIRY_MARGIN):
                self._run()
            return f"Bearer {self._token}"

    def expires(self) -> datetime | None:
        with self._lock:
            return self._expires

    def expire(self) -> None:
        with self._lock:
            self._token = None

    def _run(self) -> None:
        spec: dict[str, Any] = {"interactive": False}
        if self.cluster is not None:
            spec["cluster"] = self.cluster
        info = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec}
        name = Path(self.argv[0]).name
        try:
            done = subprocess.run(self.argv, env={**os.environ, **self.env, "KUBERNETES_EXEC_INFO": json.dumps(info)},
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=EXEC_TIMEOUT_S, check=False)
        except FileNotFoundError:
            raise ConfigurationError(f"the kubeconfig's credential plugin {name!r} is not installed") from None
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ConfigurationError(f"the kubeconfig's credential plugin {name!r} failed ({type(error).__name__})"
                                     ) from None
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            raise ConfigurationError(f"the kubeconfig's credential plugin {name!r} exited with {done.returncode}"
                                     + (f": {said[-1][:200]}" if said else ""))
        try:
            status = json.loads(done.stdout)["status"]
            if "token" not in status and "clientCertificateData" in status:
                raise ConfigurationError(f"the kubeconfig's credential plugin {name!r} printed a client "
                                         "certificate; provisioner takes tokens from exec plugins only")
            token = status["token"]
        except (ValueError, KeyError, TypeError):
            raise ConfigurationError(f"the kubeconfig's credential plugin {name!r} printed no ExecCredential "
                                     "with a status.token") from None
        if not isinstance(token, str) or not token:
            raise ConfigurationError(f"the kubeconfig's credential plugin {name!r} printed an empty token")
        self._token, self._expires = token, _timestamp(status.get("expirationTimestamp"))


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
