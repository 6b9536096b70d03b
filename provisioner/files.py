"""Files several processes share: written atomically, and guarded by an advisory lock.

The consumer's status file, the local state directory's registry, the embedded servers' records
and the caches of downloaded or built tools are read by other processes while they change; these
helpers are the only way the package writes or guards them, and `cache_root` the one place the
cache lives. Imports nothing from the package,
so every layer may use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root", "file_lock", "write_atomically"]

CACHE_ENV = "PROVISIONER_CACHE"


def cache_root() -> Path:
    """Downloads and builds shared by every checkout (Kafka jars, Go-built binaries, the CEL
    conformance suite): $PROVISIONER_CACHE or ~/.cache/provisioner."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "provisioner"


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created if missing) across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
