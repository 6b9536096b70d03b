"""A schema registry for laptops and tests: franz-go's `srfake` (an in-memory,
Confluent-compatible registry) in a small `main` of our own (devregistry.go beside this file),
built from the Go module proxy into the cache like kube-apiserver, started as a local process.

`provisioner dev registry up|down|status` drives it, and `provisioner up` starts it when a spec
reads avro, protobuf or jsonschema records and the Kafka settings name no registry. The schemas
registered are journalled under the state directory and registered again on the next start, so a
restarted registry serves the same ids at the same address. Its compatibility checks always pass.

Files:
    <cache>/registry/<version>-<source hash>/dev-registry   the binary (built once)
    <cache>/go/build/registry-<version>/                    the scratch module it is built from
    <state_dir>/registry/                                   state.json, registry.log, schemas.jsonl
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from provisioner.errors import ConfigurationError, SetupError
from provisioner.files import cache_root, file_lock, write_atomically
from provisioner.formats import BINARY_FORMATS
from provisioner.local.gobuild import build_binary, go_binary, go_env, run_go
from provisioner.local.processes import accepts_connections, free_port, live_process, port_free, terminate
from provisioner.stream.settings import KafkaTarget, load_kafka_settings, settings_of

__all__ = ["DevRegistryError", "RegistryStatus", "down", "ensure_binary", "registry_dir", "resolve_or_start",
           "start_process", "status", "up", "with_registry"]

SR_MODULE: Final = "github.com/twmb/franz-go/pkg/sr"
SR_VERSION: Final = "v1.8.0"
SOURCE: Final = Path(__file__).with_name("devregistry.go")
BINARY_NAME: Final = "dev-registry"
START_TIMEOUT_S: Final = 15.0
AUTH_ENV: Final = "SRFAKE_BASIC_AUTH"  # user:password for basic auth, read by the binary


class DevRegistryError(SetupError):
    """The dev registry cannot be built, started or stopped; the message says which step failed."""


@dataclass(frozen=True, slots=True)
class RegistryStatus:
    pid: int
    url: str
    log_file: str

    def to_dict(self) -> dict[str, Any]:
        return {"running": True, "pid": self.pid, "url": self.url, "log_file": self.log_file}


def _source_hash() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]


def binary_path() -> Path:
    return cache_root() / "registry" / f"{SR_VERSION}-{_source_hash()}" / BINARY_NAME


def ensure_binary(log: Callable[[str], None] | None = None) -> Path:
    """Build the dev registry once (a few seconds once Go has the module) and return its path."""
    say = log or (lambda _line: None)
    target = binary_path()
    if os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_root() / "registry" / "build.lock"):
        if os.access(target, os.X_OK):
            return target
        env = go_env()
        go = go_binary()
        module = cache_root() / "go" / "build" / f"registry-{SR_VERSION}"
        module.mkdir(parents=True, exist_ok=True)
        for stale in ("go.mod", "go.sum"):
            (module / stale).unlink(missing_ok=True)
        (module / "main.go").write_bytes(SOURCE.read_bytes())
        run_go(go, env, "go mod init (dev registry)", ["mod", "init", "provisioner.local/registry"], module, say)
        run_go(go, env, f"require {SR_MODULE}@{SR_VERSION}", ["mod", "edit", f"-require={SR_MODULE}@{SR_VERSION}"],
               module, say)
        run_go(go, env, "go mod tidy (dev registry)", ["mod", "tidy"], module, say)
        build_binary(go, env, module, ".", target, say, "-s -w")
    return target


# -- one registry process ---------------------------------------------------------------------


def start_process(binary: Path, port: int, journal: Path, log_file: Path,
                  environ: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start the registry on 127.0.0.1:`port` (journal in `journal`), detached from our terminal;
    returns once it accepts connections. `environ` may carry SRFAKE_BASIC_AUTH."""
    env = dict(os.environ if environ is None else environ)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [str(binary), "-listen", f"127.0.0.1:{port}", "-journal", str(journal)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not accepts_connections("127.0.0.1", port):
        if process.poll() is not None:
            raise DevRegistryError(f"the dev registry exited during startup; see {log_file}: {_tail(log_file)}")
        if time.monotonic() > deadline:
            process.kill()
            raise DevRegistryError(f"the dev registry did not listen within {START_TIMEOUT_S:.0f}s; see {log_file}")
        time.sleep(0.05)
    return process


def _tail(path: Path, chars: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return ""


# -- the state directory's registry -------------------------------------------------------------


def registry_dir(state_dir: Path) -> Path:
    return state_dir / "registry"


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _live_pid(state: dict[str, Any] | None) -> int | None:
    if not state or not isinstance(state.get("pid"), int):
        return None
    pid: int = state["pid"]
    found = live_process(pid)
    return pid if found is not None and BINARY_NAME in found[0] else None


def status(state_dir: Path) -> RegistryStatus | None:
    """The dev registry of `state_dir` if its process is alive, else None."""
    folder = registry_dir(state_dir).resolve()
    state = _read_state(folder)
    pid = _live_pid(state)
    if pid is None or state is None:
        return None
    return RegistryStatus(pid=pid, url=str(state["url"]), log_file=str(folder / "registry.log"))


def up(state_dir: Path, port: int | None = None, log: Callable[[str], None] | None = None) -> str:
    """Start the dev registry of `state_dir` (or find it running); its URL. It keeps the port of
    its previous run when that is free, so a restart keeps its address as well as its ids."""
    folder = registry_dir(state_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    binary = ensure_binary(log)
    with file_lock(folder / ".lock"):
        state = _read_state(folder)
        if _live_pid(state) is not None and state is not None:
            return str(state["url"])
        previous = int(state["port"]) if state and isinstance(state.get("port"), int) else None
        chosen = port or (previous if previous and port_free(previous) else free_port())
        process = start_process(binary, chosen, folder / "schemas.jsonl", folder / "registry.log")
        url = f"http://127.0.0.1:{chosen}"
        write_atomically(folder / "state.json", json.dumps({"pid": process.pid, "port": chosen, "url": url}) + "\n")
        process.returncode = 0  # detached: it outlives us, and Popen must not warn that it still runs
        return url


def down(state_dir: Path, purge: bool = False) -> bool:
    """Stop the dev registry of `state_dir`; whether one ran. `purge` also forgets its schemas."""
    folder = registry_dir(state_dir).resolve()
    if not folder.exists():
        return False
    with file_lock(folder / ".lock"):
        state = _read_state(folder)
        pid = _live_pid(state)
        if pid is not None:
            terminate(pid, lambda: _live_pid(state) is not None)
        if purge:
            (folder / "schemas.jsonl").unlink(missing_ok=True)
    return pid is not None


def resolve_or_start(state_dir: Path, say: Callable[[str], None]) -> str:
    """The running dev registry's URL, started first when none runs."""
    running = status(state_dir)
    if running is not None:
        return running.url
    say("a spec reads schema'd records and no schema registry is configured: starting the dev registry…")
    url = up(state_dir, log=say)
    say(f"dev registry up at {url}")
    return url


def with_registry(formats: set[str], kafka: KafkaTarget, state_dir: Path, say: Callable[[str], None]) -> KafkaTarget:
    """`kafka`, or (when records of `formats` need a schema registry and none is configured) a
    client properties file under `state_dir` naming the same Kafka and the dev registry, started
    if need be: every consumer and command of the session then finds both in one place."""
    settings = settings_of(kafka)
    needed = sorted(formats & BINARY_FORMATS)
    if not needed or settings.schema_registry is not None:
        return kafka
    if settings.config_file is not None:
        raise ConfigurationError(f"source format {needed[0]} needs a schema registry: set schema.registry.url in "
                                 f"{settings.source or settings.config_file}")
    url = resolve_or_start(state_dir, say)
    path = state_dir / "kafka.properties"
    write_atomically(path, f"bootstrap.servers={settings.bootstrap}\nschema.registry.url={url}\n")
    loaded = load_kafka_settings(path, None)
    assert loaded is not None
    return loaded


if __name__ == "__main__":  # `python -m provisioner.local.devregistry build`: what the test command runs
    import sys

    if sys.argv[1:] != ["build"]:
        print("usage: python -m provisioner.local.devregistry build", file=sys.stderr)
        sys.exit(2)
    print(ensure_binary(lambda line: print(line, file=sys.stderr, flush=True)))
