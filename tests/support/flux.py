"""Real Flux controllers for laptops and tests: source-controller and kustomize-controller, built
from Go modules and started as local processes against a kube-apiserver (see kubeapi.py).

Together with a git server (gitserver.py) they close a GitOps loop without a cluster image or a
downloaded binary: a commit pushed to a local repository is fetched by source-controller and
server-side applied by kustomize-controller. Called by the GitOps test fixtures
(tests/k8s/gitops/conftest.py), by `scripts/test` (which builds the binaries up front) and by hand:
`python -m tests.support.flux build|crds`.

Files:
    <cache>/flux/<versions>/bin/        source-controller, kustomize-controller (built once;
                                        <cache> is $PROVISIONER_CACHE or ~/.cache/provisioner)
    <cache>/kube/build/flux-*/          scratch Go modules the binaries are built from
    <cache>/go/                         GOPATH, module and build caches, shared with kubeapi.py
                                        (the Flux CRDs are read from its module cache)
    <work_dir>/                         one pair of controllers: storage/ (artifacts), *.log

The controllers read the kubeconfig from the KUBECONFIG environment variable only, run without
leader election or metrics, and serve artifacts on a free loopback port. Install the CRDs that
`crd_paths()` lists before starting them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from provisioner.errors import SetupError
from provisioner.files import cache_root, file_lock
from provisioner.local import gobuild
from provisioner.local.processes import free_ports
from tests.support.daemons import stop_process_group

__all__ = [
    "CONTROLLERS",
    "FluxControllers",
    "FluxError",
    "bin_dir",
    "crd_documents",
    "crd_paths",
    "ensure_binaries",
    "start",
]


@dataclass(frozen=True)
class Controller:
    """One Flux controller: the Go module whose root package is its main package."""

    name: str
    module: str
    version: str
    kind: str  # the kind whose reconciler must be running before the controller counts as started

    @property
    def api_module(self) -> str:
        return f"{self.module}/api"


# source-controller v1.9.4+ need fluxcd/pkg versions the module proxy does not serve, v1.10+ need
# a newer Go; kustomize-controller v1.9.6 works with this source-controller's API.
SOURCE_CONTROLLER = Controller("source-controller", "github.com/fluxcd/source-controller", "v1.9.3",
                               "GitRepository")
KUSTOMIZE_CONTROLLER = Controller("kustomize-controller", "github.com/fluxcd/kustomize-controller", "v1.9.6",
                                  "Kustomization")
CONTROLLERS = (SOURCE_CONTROLLER, KUSTOMIZE_CONTROLLER)
STARTED_MESSAGE = "Starting workers"
_TAIL_LINES = 30


class FluxError(SetupError):
    """The controllers cannot be built, started or stopped; the message says which step failed."""


# ---------------------------------------------------------------------------------------------
# Building the binaries


def bin_dir() -> Path:
    """Where the binaries of the pinned versions live (they may not be built yet)."""
    versions = "+".join(f"{c.name}-{c.version}" for c in CONTROLLERS)
    return cache_root() / "flux" / versions / "bin"


def _missing(bins: Path) -> list[Controller]:
    return [c for c in CONTROLLERS if not os.access(bins / c.name, os.X_OK)]


def ensure_binaries(log: Callable[[str], None] | None = None) -> Path:
    """Build source-controller and kustomize-controller once and return their directory.

    The controllers' go.mod replace their `api` submodule with `./api`, which a dependency's
    replace cannot express, so each is built from a scratch module that points it at the published
    api module. Returns at once when the binaries exist; otherwise builds under an exclusive lock so
    parallel runs build once (about 7.5 min cold on 2 cores, 1.7 GB of memory at peak).
    """
    say = log or (lambda _line: None)

    def progress(line: str) -> None:
        say(f"flux: {line.removeprefix('kube: ')}")  # the shared Go helpers prefix their lines

    bins = bin_dir()
    if not _missing(bins):
        return bins
    bins.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_root() / "flux" / "build.lock"):
        missing = _missing(bins)  # another process may have built them while we waited
        if not missing:
            return bins
        started = time.monotonic()
        go = gobuild.go_binary()
        env = gobuild.go_env()
        for controller in missing:
            module = _controller_module(go, env, controller, progress)
            gobuild.build_binary(go, env, module, controller.module, bins / controller.name, progress, "-s -w")
        progress(f"binaries ready in {bins} ({time.monotonic() - started:.0f} s)")
    return bins


def _controller_module(go: str, env: dict[str, str], controller: Controller, say: Callable[[str], None]) -> Path:
    """A scratch module requiring `controller` with its replaces, `./api` pointed at the release."""
    module = gobuild.scratch_module(go, env, f"flux-{controller.name}-{controller.version}", [controller.module], say)
    target = f"{controller.module}@{controller.version}"
    info = json.loads(gobuild.run_go(go, env, f"download {target}", ["mod", "download", "-json", target], module, say))
    upstream = json.loads(gobuild.run_go(go, env, f"read {controller.name} go.mod",
                                         ["mod", "edit", "-json", info["GoMod"]], module, say))
    edits = [f"-require={target}"]
    for replace in upstream.get("Replace") or []:
        old, new = replace["Old"], replace["New"]
        old_spec = f"{old['Path']}@{old['Version']}" if old.get("Version") else old["Path"]
        if new.get("Version"):
            new_spec = f"{new['Path']}@{new['Version']}"
        elif old["Path"] == controller.api_module:
            new_spec = f"{controller.api_module}@{controller.version}"
        else:
            raise FluxError(f"{controller.name} go.mod replaces {old['Path']} with the local path {new['Path']}, "
                            "which a scratch module cannot follow")
        edits.append(f"-replace={old_spec}={new_spec}")
    gobuild.run_go(go, env, f"pin {target} and its {len(edits) - 1} replaces", ["mod", "edit", *edits], module, say)
    gobuild.run_go(go, env, f"go mod tidy ({controller.name})", ["mod", "tidy", "-e"], module, say)
    return module


# ---------------------------------------------------------------------------------------------
# CRDs


def _escape(module_path: str) -> str:
    """The module cache's spelling of a module path (upper case letters become !lower)."""
    return "".join(f"!{ch.lower()}" if ch.isupper() else ch for ch in module_path)


def _module_dir(controller: Controller) -> Path:
    """The controller's module in the shared module cache, downloaded if it is not there."""
    env = gobuild.go_env()
    cached = Path(env["GOMODCACHE"]) / f"{_escape(controller.module)}@{controller.version}"
    if cached.is_dir():
        return cached
    target = f"{controller.module}@{controller.version}"
    work = cache_root() / "flux"
    work.mkdir(parents=True, exist_ok=True)
    out = gobuild.run_go(gobuild.go_binary(), env, f"download {target}", ["mod", "download", "-json", target],
                         work, lambda _line: None)
    return Path(json.loads(out)["Dir"])


def crd_paths() -> list[Path]:
    """The Flux CRD manifests (config/crd/bases/*.yaml of both controllers' modules), sorted.

    They are read from the Go module cache (downloaded there by the build, or now if missing)."""
    paths: list[Path] = []
    for controller in CONTROLLERS:
        bases = _module_dir(controller) / "config" / "crd" / "bases"
        found = sorted(bases.glob("*.yaml"))
        if not found:
            raise FluxError(f"no CRDs in {bases}")
        paths += found
    return paths


def crd_documents() -> list[dict[str, Any]]:
    """The Flux CRDs as objects, ready for a server-side apply."""
    documents: list[dict[str, Any]] = []
    for path in crd_paths():
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
    return documents


# ---------------------------------------------------------------------------------------------
# Running the controllers

STOP_TIMEOUT_S = 15.0


class FluxControllers:
    """source-controller and kustomize-controller running under `work_dir` against `kubeconfig`.

    `storage_addr` is where source-controller serves artifacts. `stop()` (or leaving the `with`
    block) terminates both; the work directory is left for its logs. Stop them only after deleting
    the Flux objects they manage: those carry finalizers that only the controllers remove.
    """

    def __init__(self, work_dir: Path, kubeconfig: Path, storage_addr: str, bins: Path) -> None:
        self.work_dir = work_dir
        self.kubeconfig = kubeconfig
        self.storage_addr = storage_addr
        self._bins = bins
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the controllers still running, by name."""
        return {name: proc.pid for name, proc in self._procs.items() if proc.poll() is None}

    def log_path(self, name: str) -> Path:
        return self.work_dir / f"{name}.log"

    def stop(self) -> None:
        """SIGTERM each controller (last started first), SIGKILL what is still alive after a while."""
        for name in reversed(list(self._procs)):
            stop_process_group(self._procs.pop(name))

    def __enter__(self) -> FluxControllers:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FluxControllers(storage_addr={self.storage_addr!r}, work_dir={str(self.work_dir)!r}, pids={self.pids})"

    def _spawn(self, name: str, args: list[str]) -> None:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        with self.log_path(name).open("ab") as out:
            # Own session, no inherited stdin/stdout: see KubeCluster._spawn.
            self._procs[name] = subprocess.Popen(
                [str(self._bins / name), *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.work_dir, env=env,
            )

    def _wait_started(self, timeout: float) -> None:
        """Wait until each controller's main reconciler runs: /readyz answers about a second
        earlier, so the log line is the signal."""
        deadline = time.monotonic() + timeout
        waiting = {c.name: c.kind for c in CONTROLLERS}
        while waiting:
            for name, kind in list(waiting.items()):
                proc = self._procs[name]
                if proc.poll() is not None:
                    raise FluxError(f"{name} exited with code {proc.returncode}:\n{self._log_tail(name)}")
                if self._started(name, kind):
                    del waiting[name]
            if not waiting:
                return
            if time.monotonic() > deadline:
                name = next(iter(waiting))
                raise FluxError(f"{name} not started after {timeout:.0f} s:\n{self._log_tail(name)}")
            time.sleep(0.1)

    def _started(self, name: str, kind: str) -> bool:
        with contextlib.suppress(OSError):
            for line in self.log_path(name).read_text(errors="replace").splitlines():
                if STARTED_MESSAGE in line and f'"controllerKind":"{kind}"' in line:
                    return True
        return False

    def _log_tail(self, name: str) -> str:
        try:
            lines = self.log_path(name).read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-_TAIL_LINES:])


def start(work_dir: Path, kubeconfig: Path, *, timeout: float = 60) -> FluxControllers:
    """Start source-controller and kustomize-controller in `work_dir` against `kubeconfig`.

    Builds nothing (call `ensure_binaries()` first) and installs nothing (apply the CRDs of
    `crd_paths()` first). Returns once both reconcile; on failure both are stopped and FluxError
    carries the failing log.
    """
    bins = bin_dir()
    missing = _missing(bins)
    if missing:
        raise FluxError(f"{', '.join(c.name for c in missing)} not built in {bins}: call ensure_binaries() "
                        "or run `python -m tests.support.flux build`")
    work_dir = Path(work_dir).resolve()
    storage = work_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    storage_port, source_health, kustomize_health = free_ports(3)
    storage_addr = f"127.0.0.1:{storage_port}"
    controllers = FluxControllers(work_dir, Path(kubeconfig).resolve(), storage_addr, bins)
    common = ["--metrics-addr=0", "--enable-leader-election=false"]
    try:
        controllers._spawn(SOURCE_CONTROLLER.name, [
            f"--storage-path={storage}",
            f"--storage-addr={storage_addr}",
            f"--storage-adv-addr={storage_addr}",
            f"--health-addr=127.0.0.1:{source_health}",
            *common,
        ])
        controllers._spawn(KUSTOMIZE_CONTROLLER.name, [f"--health-addr=127.0.0.1:{kustomize_health}", *common])
        controllers._wait_started(timeout)
    except BaseException:
        controllers.stop()
        raise
    return controllers


# ---------------------------------------------------------------------------------------------
# Command line


def _main(argv: list[str]) -> int:
    if argv == ["build"]:
        try:
            print(ensure_binaries(lambda line: print(line, file=sys.stderr, flush=True)))
        except FluxError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if argv == ["crds"]:
        print("\n".join(str(path) for path in crd_paths()))
        return 0
    print("usage: python -m tests.support.flux build | crds", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
