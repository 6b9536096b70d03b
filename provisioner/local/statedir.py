"""The local state directory's layout and the registry of what `provisioner up` started.

Layout (default `.provisioner/`, next to the dev broker's and the embedded servers' own folders):

    registry.json                          what the last `up` started: specs, stores, bootstrap
    consumers/<ns>.<product>.<store>/      one folder per store consumer:
        status.json                        written by the consumer every second
        consumer.log                       its output
        pid                                its process id, written by the supervisor
        status-N.json, consumer-N.log, pid-N   the same of replica N > 0 (`consumer.replicas`)
        paused                             marker: `replay` holds the consumer, do not restart it

`up` writes the registry; `status`, `inspect`, `down` and `replay` read it, so they work without
the spec paths. It holds no secrets: every store URL in it is masked (a managed store's real URL
is built from the embedded server's password file, a store with its own `connection` re-reads it
from the spec).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from provisioner.errors import ConfigurationError
from provisioner.files import write_atomically

REGISTRY_FILE = "registry.json"
CONSUMERS_DIR = "consumers"


@dataclass(frozen=True, slots=True)
class StoreEntry:
    """One (product, store) pair run by `up`."""

    namespace: str
    product: str
    store: str
    kind: str
    spec_file: str
    managed: bool
    store_url: str | None = None  # masked; for a managed store, its product's space on the embedded server
    replicas: int = 1  # consumer processes, one consumer group (`consumer.replicas`, at least one)

    @property
    def folder_name(self) -> str:
        return f"{self.namespace}.{self.product}.{self.store}"

    def matches(self, name: str) -> bool:
        """Whether `name` designates this entry's product: `product` or `namespace/product`."""
        return name in (self.product, f"{self.namespace}/{self.product}")


@dataclass(frozen=True, slots=True)
class Registry:
    bootstrap: str
    spec_paths: list[str]
    stores: list[StoreEntry]
    started_broker: bool = False
    embedded: dict[str, str] = field(default_factory=dict)  # kind ("redis", "postgres") -> masked URL
    supervisor_pid: int | None = None
    kafka_config: str | None = None  # the Kafka client properties file `up` was given (a path, never its content)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Registry:
        stores = [StoreEntry(**entry) for entry in data.get("stores", [])]
        return cls(
            bootstrap=str(data["bootstrap"]),
            spec_paths=[str(p) for p in data.get("spec_paths", [])],
            stores=stores,
            started_broker=bool(data.get("started_broker", False)),
            embedded={str(k): str(v) for k, v in data.get("embedded", {}).items()},
            supervisor_pid=data.get("supervisor_pid"),
            kafka_config=data.get("kafka_config"),
        )

    def with_supervisor(self, pid: int | None) -> Registry:
        return replace(self, supervisor_pid=pid)


class StateDir:
    """Paths under one state directory; creating folders is explicit (`prepare`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def registry_file(self) -> Path:
        return self.root / REGISTRY_FILE

    def consumer_dir(self, entry: StoreEntry) -> Path:
        return self.root / CONSUMERS_DIR / entry.folder_name

    def status_file(self, entry: StoreEntry, replica: int = 0) -> Path:
        return self.consumer_dir(entry) / (f"status-{replica}.json" if replica else "status.json")

    def status_files(self, entry: StoreEntry) -> list[Path]:
        """Every replica's status file, whether written or not."""
        return [self.status_file(entry, replica) for replica in range(entry.replicas)]

    def log_file(self, entry: StoreEntry, replica: int = 0) -> Path:
        return self.consumer_dir(entry) / (f"consumer-{replica}.log" if replica else "consumer.log")

    def pid_file(self, entry: StoreEntry, replica: int = 0) -> Path:
        return self.consumer_dir(entry) / (f"pid-{replica}" if replica else "pid")

    def pause_marker(self, entry: StoreEntry) -> Path:
        return self.consumer_dir(entry) / "paused"

    def prepare(self, entry: StoreEntry) -> Path:
        folder = self.consumer_dir(entry)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def read_pid(self, entry: StoreEntry, replica: int = 0) -> int | None:
        try:
            return int(self.pid_file(entry, replica).read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None

    def read_registry(self) -> Registry | None:
        try:
            data = json.loads(self.registry_file.read_text(encoding="utf-8"))
            return Registry.from_dict(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            message = f"{self.registry_file} is unreadable ({error}): remove it and run `provisioner up`"
            raise StateDirError(message) from error

    def write_registry(self, registry: Registry) -> None:
        write_atomically(self.registry_file, json.dumps(registry.to_dict(), indent=2))


class StateDirError(ConfigurationError):
    """The state directory holds something unusable (a message for the user, no traceback)."""


def write_pid(path: Path, pid: int) -> None:
    write_atomically(path, f"{pid}\n")
