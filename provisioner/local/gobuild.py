"""Building tools from Go modules, the one way the project gets kube-apiserver, etcd,
kube-controller-manager and the Flux controllers: no prebuilt binary is downloaded.

Used by `tests.support.kubeapi` and `tests.support.flux`. Everything Go writes lives under
`<cache>/go/` (GOPATH, module and build caches, and the scratch modules the binaries are built
from), shared by every build; only the finished binaries are needed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from provisioner.errors import SetupError
from provisioner.files import cache_root

__all__ = ["GoBuildError", "build_binary", "go_binary", "go_env", "run_go", "scratch_module"]

TAIL_LINES = 30


class GoBuildError(SetupError):
    """A Go build step failed; the message names the step and ends with Go's output."""


def go_binary() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    if found is None:
        raise GoBuildError("building from Go modules needs Go (`go` is not on PATH): install Go 1.26 or newer")
    return found


def go_env() -> dict[str, str]:
    gopath = cache_root() / "go"
    env = dict(os.environ)
    env.update(
        GOPATH=str(gopath),
        GOMODCACHE=str(gopath / "pkg" / "mod"),
        GOCACHE=str(gopath / "cache"),
        GOTOOLCHAIN="local",  # never download another toolchain
        CGO_ENABLED="0",
        GOFLAGS="-modcacherw",  # so the cache can be deleted with rm -rf
        GO111MODULE="on",
    )
    env.pop("GOWORK", None)
    return env


def run_go(go: str, env: dict[str, str], step: str, args: list[str], cwd: Path, say: Callable[[str], None]) -> str:
    say(step)
    try:
        done = subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise GoBuildError(f"{step}: cannot run {go}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-TAIL_LINES:])
        raise GoBuildError(f"{step} failed (go exit {done.returncode}):\n{tail}")
    return done.stdout


def scratch_module(go: str, env: dict[str, str], name: str, imports: list[str], say: Callable[[str], None]) -> Path:
    """A fresh module directory with a tools.go that pins `imports` (main packages) for go mod tidy."""
    module = cache_root() / "go" / "build" / name
    if module.exists():
        shutil.rmtree(module)
    module.mkdir(parents=True)
    run_go(go, env, f"go mod init ({name})", ["mod", "init", f"provisioner.local/{name}"], module, say)
    lines = "\n".join(f'\t_ "{path}"' for path in imports)
    (module / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{lines}\n)\n")
    return module


def build_binary(go: str, env: dict[str, str], module: Path, package: str, target: Path,
           say: Callable[[str], None], ldflags: str) -> None:
    """go build into a temporary name next to `target`, then rename: a killed build leaves no
    half-written binary that a later run would take for a finished one."""
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    started = time.monotonic()
    try:
        run_go(go, env, f"go build {package}",
            ["build", "-trimpath", "-ldflags", ldflags, "-o", str(temp), package], module, say)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    say(f"built {target.name} ({time.monotonic() - started:.0f} s)")
