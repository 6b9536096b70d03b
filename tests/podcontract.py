"""Run a rendered consumer Deployment's container as a local process, the way a kubelet would.

No kubelet runs in the tests, so this stands in for one: it takes the container's command, args and
environment from the rendered Deployment, materializes the volumes it mounts (a ConfigMap's or a
Secret's keys as files, an emptyDir as an empty folder) under a scratch directory, resolves
`secretKeyRef` and `configMapKeyRef` environment variables from the rendered (or given) Secrets and
ConfigMaps, and
starts the result. That proves what the cluster would run is runnable as written.

Deviations, each standing in for something only a cluster has: mount paths are rewritten to the
scratch directory (no container file system), `provisioner` runs as this interpreter's module,
Kafka's address and the stores' URLs are the local ones (no cluster DNS), and the metrics port is
0 (pods have a network namespace each; local processes share one). A Secret's files are 0600 and
this user's, where a kubelet makes them root's with the volume's mode (libpq accepts a key either way).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class PodProcess:
    """One consumer container run locally."""

    deployment: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _secret_value(secret: Mapping[str, Any], key: str) -> str:
    if key in secret.get("stringData", {}):
        return str(secret["stringData"][key])
    return base64.b64decode(secret["data"][key]).decode()


def consumer_deployments(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "Deployment"
            and o["metadata"]["labels"].get("app.kubernetes.io/component") == "consumer"]


def container_command(deployment: dict[str, Any], objects: list[dict[str, Any]], scratch: Path, *,
                      secret_overrides: Mapping[tuple[str, str], str] = {},
                      env_overrides: Mapping[str, str] = {},
                      cluster_secrets: Mapping[str, Mapping[str, str]] = {}) -> tuple[list[str], dict[str, str]]:
    """The (argv, environment) the container would run with, materialized under `scratch`.
    `cluster_secrets`: Secrets the cluster holds that render does not make (name -> key -> text)."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config_maps = _by_kind(objects, "ConfigMap")
    secrets = {**_by_kind(objects, "Secret"), **{name: {"stringData": dict(data)}
                                                 for name, data in cluster_secrets.items()}}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        local = scratch / mount["mountPath"].lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            data = config_maps[volume["configMap"]["name"]]["data"]
            items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                (local / item["path"]).write_text(data[item["key"]], encoding="utf-8")
        elif "secret" in volume:
            secret = secrets[volume["secret"]["secretName"]]
            for key in [*secret.get("stringData", {}), *secret.get("data", {})]:
                (local / key).write_text(_secret_value(secret, key), encoding="utf-8")
                (local / key).chmod(0o600)
        elif "emptyDir" not in volume:
            raise AssertionError(f"{deployment['metadata']['name']} mounts a volume the runner cannot make: {volume}")
        mounts[mount["mountPath"]] = local

    def local_path(text: str) -> str:
        for mount_path, local in mounts.items():
            if text == mount_path or text.startswith(mount_path.rstrip("/") + "/"):
                return str(local) + text[len(mount_path.rstrip("/")):]
        return text

    env: dict[str, str] = {}
    for variable in container.get("env", []):
        source = variable.get("valueFrom")
        if source is None:
            env[variable["name"]] = local_path(str(variable.get("value", "")))
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            override = secret_overrides.get((ref["name"], ref["key"]))
            env[variable["name"]] = override if override is not None else _secret_value(secrets[ref["name"]], ref["key"])
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[variable["name"]] = config_maps[ref["name"]]["data"][ref["key"]]
        else:
            raise AssertionError(f"an env source the runner cannot resolve: {variable}")
    env.update(env_overrides)

    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[0] == "provisioner", f"the image's entry point is `provisioner`, not {argv[0]!r}"
    argv = [sys.executable, "-m", "provisioner", *(local_path(a) for a in argv[1:])]
    if "--metrics-port" in argv:
        argv[argv.index("--metrics-port") + 1] = "0"
    return argv, env


def start(deployment: dict[str, Any], objects: list[dict[str, Any]], scratch: Path, **overrides: Any) -> PodProcess:
    """Start the deployment's container locally (one replica), its output in a log under `scratch`."""
    name = deployment["metadata"]["name"]
    folder = scratch / name
    argv, env = container_command(deployment, objects, folder, **overrides)
    # Only what a container would have: its own environment plus what Python needs to run here.
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV") if k in os.environ}
    log_path = folder / "container.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, env={**base, **env}, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return PodProcess(name, argv, env, process, log_path)
