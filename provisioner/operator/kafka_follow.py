"""The operator's own Kafka settings follow their file (`--kafka-config`).

In the bundle that file is the platform's Kafka client Secret, mounted: when the Secret is
rotated, the kubelet swaps the mounted files, and the operator's status reads must use the new
password or certificate without a restart. A thread looks at the file and the PEM files it names
every few seconds; when one changed, the file is read again and the `KafkaObserver` switched to it.
A file that no longer reads (a half-made Secret) is logged once, as one line, and the previous
settings stay in use until it reads again.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from provisioner.stream.observe import KafkaObserver
from provisioner.stream.settings import KafkaConfigError, KafkaSettings, load_kafka_settings

__all__ = ["follow", "stamp"]

log = logging.getLogger("provisioner.operator")

Stamp = tuple[tuple[object, ...], ...]


def stamp(path: Path, settings: KafkaSettings) -> Stamp:
    """What identifies the current content of the file at `path` and the PEM files it names: each
    one's real path (a mounted Secret's files are links into a folder swapped as a whole), change
    time and size."""
    found: list[tuple[object, ...]] = []
    for name in (str(path), settings.ssl_ca_location, settings.ssl_certificate_location, settings.ssl_key_location):
        if not name:
            continue
        try:
            info = os.stat(name)
        except OSError:
            found.append((name,))
            continue
        found.append((name, os.path.realpath(name), info.st_mtime_ns, info.st_size))
    return tuple(found)


def follow(path: Path, bootstrap: str | None, settings: KafkaSettings, observer: KafkaObserver,
           stop: threading.Event, every: float = 5.0) -> threading.Thread:
    """Start a daemon thread that switches `observer` to the file's settings whenever its files
    change, until `stop` is set."""
    first = stamp(path, settings)

    def run() -> None:
        seen, current, failed = first, settings, False
        while not stop.wait(every):
            now = stamp(path, current)
            if now == seen:
                continue
            seen = now
            try:
                loaded = load_kafka_settings(path, bootstrap)
            except KafkaConfigError as error:
                if not failed:
                    log.warning("operator: %s (the previous Kafka settings stay in use)", error)
                failed = True
                continue
            if loaded is None:
                continue
            failed = False
            current, seen = loaded, stamp(path, loaded)
            observer.use(loaded)
            log.info("operator: the Kafka settings in %s changed; status reads use them now", path)

    thread = threading.Thread(target=run, name="kafka-settings", daemon=True)
    thread.start()
    return thread
