"""The Kafka client Secret of a product's consumers: which one, where it is mounted, and whether it
is usable.

Layout (spec.md, "Connections"): a Secret with the key `client.properties` (the client properties
file a user runs Kafka's own tools with) and the PEM files it names, as further keys of the same
Secret (by convention `ca.pem`, `client.pem`, `client.key`). Consumer pods mount the whole Secret
read-only at `MOUNT_DIR` and get `PROVISIONER_KAFKA_CONFIG` pointing at the file there; a PEM path
in the file is relative to the file's folder (as `provisioner.stream.settings` reads it), so
`ssl.ca.location=ca.pem` is the Secret's key `ca.pem`.

Which Secret: the product's own (`source.credentials.secretRef`, a Kafka user per product) or else
the platform's (the operator's `--kafka-secret NAME`). Both are read in the product's namespace: a
Pod mounts only Secrets of its own namespace, and the operator does not copy the platform's Secret
there. Placing it in a namespace is the platform team's decision: copying it automatically would
hand the platform's Kafka user to whoever may create a DataProduct anywhere.

`credentials_problem` checks a Secret as the operator read it, without ever quoting a value: the
key is there, the file parses and reads as the consumer will read it (a SASL protocol needs
credentials, a certificate its key, ...), and every PEM file it names inside the mount (a
relative path) is a key of the Secret; an absolute path elsewhere is a file of the image (the
system's CA bundle). The operator renders the consumers at 0 replicas while their Secret is not
usable, so a bad file is a condition, not a crash loop.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from provisioner.spec.models import DataProduct
from provisioner.stream.settings import KafkaConfigError, kafka_settings_from, parse_kafka_properties

__all__ = [
    "MOUNT_DIR",
    "PROPERTIES_FILE",
    "PROPERTIES_KEY",
    "credentials_problem",
    "kafka_secret_of",
]

PROPERTIES_KEY: Final = "client.properties"
MOUNT_DIR: Final = "/etc/provisioner-kafka"  # not under the spec's /etc/provisioner: a ConfigMap volume
PROPERTIES_FILE: Final = f"{MOUNT_DIR}/{PROPERTIES_KEY}"
# The settings naming a file: each must be a key of the same Secret once mounted.
_FILE_SETTINGS: Final = ("ssl.ca.location", "ssl.truststore.location", "ssl.certificate.location",
                         "ssl.key.location", "ssl.keystore.location", "schema.registry.ssl.ca.location")


def kafka_secret_of(product: DataProduct, platform: str | None) -> str | None:
    """The Secret (in the product's namespace) its consumers mount: its own, else the platform's;
    None when neither is configured (a plaintext bootstrap address only)."""
    credentials = product.spec.source.credentials
    return credentials.secret_ref.name if credentials is not None else platform


def _whose(product: DataProduct) -> str:
    return "named by source.credentials.secretRef" if product.spec.source.credentials else \
        "the platform's Kafka client Secret (operator --kafka-secret)"


def credentials_problem(product: DataProduct, namespace: str, name: str,
                        secret: Mapping[str, Any] | None) -> str | None:
    """Why Secret `namespace/name` (None: it does not exist) cannot give the product's consumers
    their Kafka settings, or None when it can. Names keys and lines, never a value."""
    where = f"Secret {namespace}/{name} ({_whose(product)})"
    if secret is None:
        return (f"{where} does not exist: create it with the key {PROPERTIES_KEY!r} (the Kafka client properties) "
                "and the PEM files it names")
    data = secret.get("data") or {}
    raw = data.get(PROPERTIES_KEY)
    if raw is None:
        return f"{where} has no key {PROPERTIES_KEY!r}: add the Kafka client properties under that key"
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return f"{where}: key {PROPERTIES_KEY!r} is not UTF-8 text"
    try:
        # The consumer's environment has no variables of the user's: a ${NAME} cannot be expanded there.
        values = parse_kafka_properties(text, f"{where} key {PROPERTIES_KEY}", {})
    except KafkaConfigError as error:
        return str(error)
    for setting in _FILE_SETTINGS:
        line, path = values.get(setting, (0, ""))
        if not path:
            continue
        if posixpath.isabs(path) and not path.startswith(f"{MOUNT_DIR}/"):
            continue  # a file of the image, e.g. the system's CA bundle for a public certificate
        key = posixpath.relpath(posixpath.normpath(posixpath.join(MOUNT_DIR, path)), MOUNT_DIR)
        if key.startswith("..") or "/" in key or key not in data:
            return (f"{where} key {PROPERTIES_KEY}:{line}: {setting} names {path!r}, which is not a key of the "
                    f"Secret: add the file as a key and name it relative to {PROPERTIES_KEY} (e.g. ca.pem)")
    return _settings_problem(values, where, data)


def _settings_problem(values: dict[str, tuple[int, str]], where: str, data: Mapping[str, Any]) -> str | None:
    """What the consumer would refuse in the file when it starts (a SASL protocol without
    credentials, a certificate without its key, ...), checked as it checks them: against a folder
    holding an empty file per key of the Secret (names only: never a value written anywhere)."""
    with tempfile.TemporaryDirectory(prefix="kafka-secret-check-") as folder:
        for key in data:  # a Secret's keys are [-._a-zA-Z0-9]+: file names, never paths
            (Path(folder) / key).touch()
        mounted = {key: (line, folder + value[len(MOUNT_DIR):] if key in _FILE_SETTINGS
                         and value.startswith(f"{MOUNT_DIR}/") else value)
                   for key, (line, value) in values.items()}
        try:
            kafka_settings_from(mounted, f"{where} key {PROPERTIES_KEY}", Path(folder))
        except KafkaConfigError as error:
            return str(error)
    return None
