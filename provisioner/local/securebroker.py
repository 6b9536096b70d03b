"""The dev broker's secured mode: the same single-node KRaft Kafka, locked down like a managed one.

Called by `provisioner dev kafka up|down --secure` and the integration tests' fixtures, to try a
client properties file (TLS, SASL, ACLs) before pointing provisioner at a company's Kafka.

Two client listeners on 127.0.0.1: SASL_SSL with SCRAM-SHA-512 users (created in KRaft when the
storage is formatted; more can be added with the admin API later) and SSL with mutual TLS (client
certificates signed by the dev CA; the principal is the certificate's DN). Certificates are made
with the openssl CLI: a CA, a broker certificate for `localhost` and `127.0.0.1`, and one client
certificate. ACLs are enforced by Kafka's StandardAuthorizer: nothing is allowed that no ACL
allows, except to the `admin` user (a super user; the controller listener's anonymous principal is
one too, since a combined node talks to its own controller over it).

Files, in <state_dir>/kafka-secure/:
    ca.pem, ca.key, broker.pem (key and chain), client.pem, client.key   the PEM files
    admin.properties      a client properties file for the admin user (SCRAM over TLS)
    mtls.properties       one for the client certificate (mutual TLS)
    server.properties, data/, state.json, broker.log                     as the plain dev broker's

Passwords are random, written only to files readable by their owner.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.files import cache_root, file_lock, write_atomically
from provisioner.local import devbroker
from provisioner.local.devbroker import DevBrokerError
from provisioner.local.processes import accepts_connections, free_ports, terminate
from provisioner.stream.kafka import broker_ready
from provisioner.stream.settings import KafkaSettings, load_kafka_settings

__all__ = ["ADMIN_USER", "SecureBroker", "down", "make_ca", "make_certificate", "secure_dir", "status", "up"]

ADMIN_USER = "admin"
MECHANISM = "SCRAM-SHA-512"
CLIENT_CN = "provisioner-mtls"


@dataclass(frozen=True, slots=True)
class SecureBroker:
    """A running secured dev broker: its two addresses and the files a client needs."""

    folder: Path
    pid: int
    scram_bootstrap: str  # SASL_SSL, SCRAM-SHA-512
    mtls_bootstrap: str  # SSL, client certificate required
    ca: Path

    @property
    def admin_properties(self) -> Path:
        return self.folder / "admin.properties"

    @property
    def mtls_properties(self) -> Path:
        return self.folder / "mtls.properties"

    def admin(self) -> KafkaSettings:
        settings = load_kafka_settings(self.admin_properties, None)
        assert settings is not None
        return settings

    def scram_properties(self, user: str, password: str, *, ca: Path | None = None) -> str:
        """A client properties file's text for `user` over SASL_SSL (trusting `ca`, or the dev CA)."""
        return (f"bootstrap.servers={self.scram_bootstrap}\nsecurity.protocol=SASL_SSL\n"
                f"sasl.mechanism={MECHANISM}\nsasl.username={user}\nsasl.password={password}\n"
                f"ssl.ca.location={ca or self.ca}\n")

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "scram_bootstrap": self.scram_bootstrap, "mtls_bootstrap": self.mtls_bootstrap,
                "ca": str(self.ca), "admin_properties": str(self.admin_properties),
                "mtls_properties": str(self.mtls_properties), "log_file": str(self.folder / "broker.log")}


def secure_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "kafka-secure"


# -- certificates ---------------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DevBrokerError("the openssl CLI is needed to make the secured dev broker's certificates; install it")
    result = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DevBrokerError(f"openssl {args[0]} failed: {result.stderr.strip()[-500:]}")


def make_ca(folder: Path, name: str = "ca", subject: str = "provisioner dev CA") -> tuple[Path, Path]:
    """A self-signed CA in `folder`: (certificate, key)."""
    certificate, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(certificate),
             "-days", "3650", "-subj", f"/CN={subject}")
    key.chmod(0o600)
    return certificate, key


def make_certificate(folder: Path, name: str, common_name: str, ca: tuple[Path, Path],
                     alt_names: str | None = None) -> tuple[Path, Path]:
    """A key and a certificate for `common_name` signed by `ca` (PKCS#8 key, PEM): (certificate, key)."""
    certificate, key, request = folder / f"{name}.pem", folder / f"{name}.key", folder / f"{name}.csr"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(request),
             "-subj", f"/CN={common_name}")
    key.chmod(0o600)
    extensions = folder / f"{name}.ext"
    extensions.write_text(f"subjectAltName={alt_names}\n" if alt_names else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(certificate), "-days", "3650", "-extfile", str(extensions))
    request.unlink()
    extensions.unlink()
    return certificate, key


def _private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (it holds a password or a key)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def _prepare(folder: Path) -> str:
    """The CA, the broker's and the client's certificates and the admin's password, made once."""
    password_file = folder / "admin.password"
    if password_file.is_file() and (folder / "broker-keystore.pem").is_file():
        return password_file.read_text().strip()
    ca = make_ca(folder)
    broker = make_certificate(folder, "broker", "localhost", ca, "DNS:localhost,IP:127.0.0.1")
    # Kafka's PEM key store: the private key, then the certificate chain, in one file.
    _private(folder / "broker-keystore.pem", broker[1].read_text() + broker[0].read_text() + ca[0].read_text())
    make_certificate(folder, "client", CLIENT_CN, ca)
    password = secrets.token_urlsafe(18)
    _private(password_file, password + "\n")
    return password


def _server_properties(folder: Path, ports: Mapping[str, int], admin_password: str) -> str:
    jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN_USER}" '
            f'password="{admin_password}";')
    settings = devbroker.server_settings(folder, ports["scram"], ports["controller"])
    settings.update({
        "listeners": (f"SASL_SSL://127.0.0.1:{ports['scram']},SSL://127.0.0.1:{ports['mtls']},"
                      f"CONTROLLER://127.0.0.1:{ports['controller']}"),
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{ports['scram']},SSL://127.0.0.1:{ports['mtls']}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(folder / "broker-keystore.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(folder / "ca.pem"),
        "listener.name.ssl.ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN_USER};User:ANONYMOUS",
    })
    return "".join(f"{key}={value}\n" for key, value in settings.items())


# -- state ----------------------------------------------------------------------------------------


def _live(folder: Path) -> SecureBroker | None:
    state = devbroker.read_state(folder)
    if not state or not isinstance(state.get("pid"), int):
        return None
    if not devbroker.process_matches(state["pid"], str(folder / "server.properties")):
        return None
    return SecureBroker(folder=folder, pid=state["pid"], scram_bootstrap=state["scram_bootstrap"],
                        mtls_bootstrap=state["mtls_bootstrap"], ca=folder / "ca.pem")


def status(state_dir: Path) -> SecureBroker | None:
    """The secured dev broker of `state_dir` if its process is alive, else None."""
    return _live(secure_dir(state_dir).resolve())


def up(state_dir: Path, users: Mapping[str, str] | None = None,
       timeout: float = devbroker.START_TIMEOUT_S) -> SecureBroker:
    """Start the secured dev broker of `state_dir` (or find it running), on free ports. `users`
    (name -> password) become SCRAM users when its storage is first formatted, besides `admin`."""
    folder = secure_dir(state_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    libs = devbroker.ensure_libs()
    with file_lock(folder / ".lock"):
        running = _live(folder)
        if running is not None:
            _wait_ready(running, timeout)
            return running
        with file_lock(cache_root() / "kafka" / ".start.lock"):
            return _start(folder, libs, dict(users or {}), timeout)


def _start(folder: Path, libs: Path, users: dict[str, str], timeout: float) -> SecureBroker:
    password = _prepare(folder)
    ports = dict(zip(("scram", "mtls", "controller"), free_ports(3), strict=True))
    properties = folder / "server.properties"
    _private(properties, _server_properties(folder, ports, password))
    jvm = devbroker.jvm_command(libs, folder)
    if not (folder / "data" / "meta.properties").is_file():
        scram = [f"{MECHANISM}=[name={name},password={secret}]" for name, secret in {**users,
                                                                                    ADMIN_USER: password}.items()]
        command = [*jvm, "kafka.tools.StorageTool", "format", "-t", devbroker.new_cluster_id(), "-c", str(properties)]
        for credential in scram:
            command += ["--add-scram", credential]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            # The command line holds passwords: report the tool's own words only, which do not.
            raise DevBrokerError(f"formatting the secured broker's storage failed:\n{result.stderr.strip()[-2000:]}")
    pid = devbroker.spawn_detached([*jvm, "kafka.Kafka", str(properties)], folder / "broker.log")
    broker = SecureBroker(folder=folder, pid=pid, scram_bootstrap=f"127.0.0.1:{ports['scram']}",
                          mtls_bootstrap=f"127.0.0.1:{ports['mtls']}", ca=folder / "ca.pem")
    _private(broker.admin_properties, broker.scram_properties(ADMIN_USER, password))
    _private(broker.mtls_properties, f"bootstrap.servers={broker.mtls_bootstrap}\nsecurity.protocol=SSL\n"
                                     f"ssl.ca.location={broker.ca}\nssl.certificate.location={folder / 'client.pem'}\n"
                                     f"ssl.key.location={folder / 'client.key'}\n")
    write_atomically(folder / "state.json", json.dumps({
        "pid": pid, "scram_bootstrap": broker.scram_bootstrap, "mtls_bootstrap": broker.mtls_bootstrap,
        "ports": ports, "version": devbroker.KAFKA_VERSION, "started_at": time.time()}, indent=2) + "\n")
    deadline = time.monotonic() + timeout
    admin = broker.admin()
    while not _ready(admin):
        if devbroker.child_exited(pid):
            raise DevBrokerError(f"the secured Kafka broker exited during startup; see {folder / 'broker.log'}")
        if time.monotonic() > deadline:
            raise DevBrokerError(f"the secured Kafka broker did not become ready within {timeout:.0f}s; "
                                 f"see {folder / 'broker.log'}")
        time.sleep(0.3)
    return broker


def _ready(admin: KafkaSettings) -> bool:
    # A plain TCP probe first: a Kafka client leaves sockets behind and logs loudly while the port is closed.
    host, _, port = admin.bootstrap.rpartition(":")
    return accepts_connections(host, int(port)) and broker_ready(admin)


def _wait_ready(broker: SecureBroker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    admin = broker.admin()
    while not _ready(admin):
        if time.monotonic() > deadline:
            raise DevBrokerError(f"the secured Kafka broker did not become ready within {timeout:.0f}s")
        time.sleep(0.3)


def down(state_dir: Path, purge: bool = False) -> bool:
    """Stop the secured dev broker of `state_dir`; whether one ran. `purge` deletes its data,
    certificates and passwords too."""
    folder = secure_dir(state_dir).resolve()
    if not folder.exists():
        return False
    with file_lock(folder / ".lock"):
        running = _live(folder)
        if running is not None:
            marker = str(folder / "server.properties")
            terminate(running.pid, lambda: devbroker.process_matches(running.pid, marker),
                      timeout=devbroker.STOP_TIMEOUT_S)
        (folder / "state.json").unlink(missing_ok=True)
    if purge:
        shutil.rmtree(folder, ignore_errors=True)
    return running is not None
