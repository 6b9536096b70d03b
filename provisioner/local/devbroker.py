"""A real single-node Kafka broker for laptops and CI, started from Maven Central jars.

Called by `provisioner dev kafka up|down|status`, by `provisioner up` when no Kafka is configured,
and by the integration tests' fixtures. The broker is Apache Kafka in KRaft mode (one process,
broker and controller combined), run by the local JVM; no Docker, no Kafka distribution.

Files:
    <cache>/kafka/<version>/libs/       the broker's jars, fetched once by Maven (shared by all
                                        state directories; <cache> is $PROVISIONER_CACHE or
                                        ~/.cache/provisioner)
    <state_dir>/kafka/                  one broker's state:
        server.properties, log4j2.properties
        data/                           its log dirs (topics survive `down`, not `down --purge`)
        state.json                      pid, ports and bootstrap of the running broker
        broker.log                      its output

The broker runs detached (its own session), so it outlives the command that started it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from provisioner.errors import SetupError
from provisioner.files import cache_root, file_lock, write_atomically
from provisioner.local.processes import accepts_connections, free_port, live_process, port_free, terminate

__all__ = [
    "BOOTSTRAP_ENV",
    "DEFAULT_PORT",
    "KAFKA_VERSION",
    "BrokerStatus",
    "DevBrokerError",
    "broker_dir",
    "down",
    "ensure_libs",
    "resolve_bootstrap",
    "status",
    "up",
    "wait_ready",
]

KAFKA_VERSION = "4.1.2"
LOG4J_VERSION = "2.24.3"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
DEFAULT_PORT = 9092
BOOTSTRAP_ENV = "PROVISIONER_KAFKA_BOOTSTRAP"
HEAP = "-Xmx512m"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


class DevBrokerError(SetupError):
    """The dev broker cannot be fetched, started, found or stopped; the message says what to do."""


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """A dev broker process found alive in a state directory."""

    pid: int
    bootstrap: str
    port: int
    running: bool  # answers Kafka requests (a live process may still be starting)
    state_dir: str
    log_file: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- where things live ------------------------------------------------------------------------


def broker_dir(state_dir: Path) -> Path:
    """The dev broker's own folder inside a provisioner state directory."""
    return Path(state_dir) / "kafka"


def _libs_dir() -> Path:
    return cache_root() / "kafka" / KAFKA_VERSION / "libs"


# -- fetching the jars ------------------------------------------------------------------------

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.provisioner</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.apache.logging.log4j</groupId>
        <artifactId>log4j-bom</artifactId>
        <version>{log4j}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <!-- kafka_2.13's POM has no SLF4J binding; Kafka 4.1 uses SLF4J 1.x, hence this one -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
    </dependency>
  </dependencies>
</project>
"""



def _has_jars(libs: Path) -> bool:
    return libs.is_dir() and any(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar"))


def ensure_libs() -> Path:
    """The broker's jars, fetched from Maven Central into the cache on first use."""
    libs = _libs_dir()
    if _has_jars(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevBrokerError("Maven (`mvn`) is needed once to fetch the Kafka broker's jars; install it")
    with file_lock(libs.parent / ".fetch.lock"):
        if _has_jars(libs):  # another process fetched them while we waited for the lock
            return libs
        # Fetch into a scratch folder and rename, so a half-finished download is never used.
        scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=libs.parent))
        try:
            pom = scratch / "pom.xml"
            pom.write_text(_POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
            command = [
                mvn, "-B", "-q", "-f", str(pom),
                # Maven's own download cache also lives under ours, so a CI cache of one folder suffices.
                f"-Dmaven.repo.local={cache_root() / 'maven'}",
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={scratch / 'libs'}",
            ]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0 or not _has_jars(scratch / "libs"):
                tail = (result.stdout + result.stderr).strip()[-2000:]
                raise DevBrokerError(f"fetching the Kafka {KAFKA_VERSION} jars with Maven failed:\n{tail}")
            (scratch / "libs").rename(libs)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return libs


# -- processes and ports ----------------------------------------------------------------------


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise DevBrokerError("Java 17+ is needed to run the Kafka broker; install a JDK or set JAVA_HOME")
    return found


def process_matches(pid: int, marker: str) -> bool:
    """Whether `pid` is a live (not zombie) process whose command line contains `marker`.

    The marker (this broker's config path) guards against a recycled pid of another process."""
    process = live_process(pid)
    return process is not None and marker in process[1]


def _split_bootstrap(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",", maxsplit=1)[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise DevBrokerError(f"bad bootstrap address {bootstrap!r}: expected host:port[,host:port…]")
    return host, int(port)


# -- configuration ----------------------------------------------------------------------------

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = STDERR
"""


def server_settings(folder: Path, port: int, controller_port: int) -> dict[str, str]:
    """The plain dev broker's settings (the secured mode starts from them)."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(folder / "data"),
        "num.partitions": "3",
        # Topics are created explicitly (`dev produce`, `up`, dead-letter producers), so a typo or
        # a consumer subscribing early never silently creates a topic with the wrong partitions.
        "auto.create.topics.enable": "false",
        # One node: every internal topic has one replica; few partitions keep the first group
        # join (which creates __consumer_offsets) fast.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # Tests join, leave and rebalance groups constantly: no initial delay, and allow the short
        # session timeouts that zombie and rebalance tests use.
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        "num.network.threads": "2",
        "num.io.threads": "4",
    }


def _server_properties(folder: Path, port: int, controller_port: int) -> str:
    return "".join(f"{key}={value}\n" for key, value in server_settings(folder, port, controller_port).items())


# -- state ------------------------------------------------------------------------------------


def read_state(folder: Path) -> dict[str, Any] | None:
    """A broker folder's state.json, or None when absent or unreadable."""
    try:
        data = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    write_atomically(folder / "state.json", json.dumps(state, indent=2) + "\n")


def _live_pid(folder: Path, state: dict[str, Any] | None) -> int | None:
    if not state or not isinstance(state.get("pid"), int):
        return None
    pid: int = state["pid"]
    return pid if process_matches(pid, str(folder / "server.properties")) else None


# -- public API -------------------------------------------------------------------------------


def status(state_dir: Path) -> BrokerStatus | None:
    """The dev broker of `state_dir` if its process is alive, else None."""
    folder = broker_dir(state_dir).resolve()
    state = read_state(folder)
    pid = _live_pid(folder, state)
    if pid is None or state is None:
        return None
    bootstrap = str(state["bootstrap"])
    return BrokerStatus(
        pid=pid,
        bootstrap=bootstrap,
        port=int(state["port"]),
        running=_is_ready(bootstrap),
        state_dir=str(folder),
        log_file=str(folder / "broker.log"),
    )


def up(state_dir: Path, port: int | None = None, timeout: float = START_TIMEOUT_S) -> str:
    """Start the dev broker of `state_dir` (or find it running) and return its bootstrap address.

    `port` None means 9092 if free, else the port of the previous run if free, else any free port;
    0 means any free port (tests: a developer's own broker may hold 9092)."""
    folder = broker_dir(state_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    libs = ensure_libs()
    with file_lock(folder / ".lock"):
        state = read_state(folder)
        pid = _live_pid(folder, state)
        if pid is not None and state is not None:
            bootstrap = str(state["bootstrap"])
            if port and int(state["port"]) != port:
                raise DevBrokerError(
                    f"the dev broker in {folder} already runs on {bootstrap}; "
                    "stop it first (`provisioner dev kafka down`) to change its port")
            marker = str(folder / "server.properties")
            _wait_started(bootstrap, lambda: not process_matches(pid, marker), folder, timeout)
            return bootstrap
        # Machine-wide: a starting broker binds its client port only seconds after launch, so two
        # concurrent starts (other state directories) would otherwise both pick the same free port.
        with file_lock(cache_root() / "kafka" / ".start.lock"):
            return _start(folder, libs, state or {}, port, timeout)


def _choose_ports(previous: dict[str, Any], port: int | None) -> tuple[int, int]:
    if port == 0:
        chosen = free_port()
    elif port is not None:
        if not port_free(port):
            raise DevBrokerError(f"port {port} is in use; choose another --port or leave it out")
        chosen = port
    elif port_free(DEFAULT_PORT):
        chosen = DEFAULT_PORT
    elif isinstance(previous.get("port"), int) and port_free(previous["port"]):
        chosen = previous["port"]
    else:
        chosen = free_port()
    # The controller port is internal; keep the previous one when possible so a restarted broker
    # sees the same quorum address it recorded.
    old_controller = previous.get("controller_port")
    if isinstance(old_controller, int) and old_controller != chosen and port_free(old_controller):
        controller = old_controller
    else:
        controller = free_port()
        while controller == chosen:
            controller = free_port()
    return chosen, controller


def jvm_command(libs: Path, folder: Path, java: str | None = None) -> list[str]:
    """The JVM and its flags to run a Kafka class from `libs` for the broker in `folder`."""
    java = java or _java()
    log4j = folder / "log4j2.properties"
    log4j.write_text(_LOG4J2)
    return [java, HEAP, "-XX:+UseSerialGC", "-Djava.awt.headless=true", *_class_archive_flags(java, folder),
            f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]


def _start(folder: Path, libs: Path, previous: dict[str, Any], port: int | None, timeout: float) -> str:
    java = _java()
    chosen, controller = _choose_ports(previous, port)
    properties = folder / "server.properties"
    properties.write_text(_server_properties(folder, chosen, controller))
    jvm = jvm_command(libs, folder, java)

    if not (folder / "data" / "meta.properties").is_file():
        # 16 random bytes, base64url without padding: the format Kafka's own random-uuid prints.
        cluster_id = new_cluster_id()
        result = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise DevBrokerError(f"formatting the broker's storage failed:\n{result.stderr.strip()[-2000:]}")

    pid = spawn_detached([*jvm, "kafka.Kafka", str(properties)], folder / "broker.log")
    bootstrap = f"127.0.0.1:{chosen}"
    _write_state(folder, {
        "pid": pid, "port": chosen, "controller_port": controller,
        "bootstrap": bootstrap, "version": KAFKA_VERSION, "started_at": time.time(),
    })
    _wait_started(bootstrap, lambda: child_exited(pid), folder, timeout)
    return bootstrap


def spawn_detached(command: list[str], log_file: Path) -> int:
    """Start `command` in its own session with output appended to `log_file`; its pid.

    posix_spawn rather than Popen: a Popen object dropped while its process runs warns, and this
    process is meant to outlive us. Every descriptor above stderr is closed in the child: the broker
    outlives whoever launched it, and must not keep a lock or a pipe of theirs open meanwhile."""
    actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
        # A descriptor closed meanwhile by another thread is fine: glibc ignores EBADF here.
        *((os.POSIX_SPAWN_CLOSE, fd) for fd in _open_descriptors() if fd > 2),
    ]
    return os.posix_spawn(command[0], command, dict(os.environ), file_actions=actions, setsid=True)


def _open_descriptors() -> list[int]:
    """This process's open file descriptors (those inherited from its own launcher included)."""
    return sorted(int(name) for name in os.listdir("/proc/self/fd") if name.isdigit())


def child_exited(pid: int) -> bool:
    """Whether our child `pid` has exited (reaping it); exact, unlike /proc during exec."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done != 0


def _class_archive(java: str) -> Path:
    """The shared archive of the broker's loaded classes, per JDK (an archive only fits its JDK)."""
    jdk = hashlib.sha256(os.path.realpath(java).encode()).hexdigest()[:12]
    return _libs_dir().parent / f"classes-{jdk}.jsa"


def _class_archive_flags(java: str, folder: Path) -> list[str]:
    """JVM flags for class data sharing: it more than halves the broker's startup on 2 cores.

    The first broker records the classes it loaded into its own folder when it exits (`down`),
    which then moves the archive into the cache; later brokers map it instead of loading classes."""
    archive = _class_archive(java)
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto", "-Xlog:cds*=off"]
    # -Xlog: the dump lists every class it cannot archive, noise in the broker's log.
    return [f"-XX:ArchiveClassesAtExit={folder / 'classes.jsa'}", "-Xlog:cds*=off"]


def _keep_class_archive(folder: Path) -> None:
    recorded = folder / "classes.jsa"
    if not recorded.is_file():
        return
    with contextlib.suppress(DevBrokerError, OSError):
        target = _class_archive(_java())
        if target.is_file():
            recorded.unlink()
        else:
            os.replace(recorded, target)  # atomic: a concurrent start maps a whole archive or none


def new_cluster_id() -> str:
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _log_tail(folder: Path, chars: int = 2000) -> str:
    try:
        return (folder / "broker.log").read_text(errors="replace")[-chars:].strip()
    except OSError:
        return ""


def _wait_started(bootstrap: str, exited: Callable[[], bool], folder: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _is_ready(bootstrap):
            return
        if exited():
            raise DevBrokerError(f"the Kafka broker exited during startup; its log ends with:\n{_log_tail(folder)}")
        time.sleep(0.2)
    raise DevBrokerError(f"the Kafka broker did not become ready within {timeout:.0f}s; see {folder / 'broker.log'}")


def _is_ready(bootstrap: str) -> bool:
    """Whether a broker at `bootstrap` answers a metadata request and is unfenced."""
    host, port = _split_bootstrap(bootstrap)
    # A plain TCP probe first: a Kafka client logs connection errors loudly while a port is closed.
    if not accepts_connections(host, port):
        return False
    from provisioner.stream.kafka import broker_ready

    return broker_ready(bootstrap)


def wait_ready(bootstrap: str, timeout: float = START_TIMEOUT_S) -> None:
    """Block until a Kafka broker at `bootstrap` answers metadata requests; DevBrokerError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _is_ready(bootstrap):
            return
        time.sleep(0.2)
    raise DevBrokerError(f"no Kafka broker answered at {bootstrap} within {timeout:.0f}s")


def down(state_dir: Path, purge: bool = False) -> bool:
    """Stop the dev broker of `state_dir` (SIGTERM, then SIGKILL after 30 s); whether one ran.

    `purge` also deletes its data (all topics). Without it, the next `up` finds them again."""
    folder = broker_dir(state_dir).resolve()
    if not folder.exists():
        return False
    with file_lock(folder / ".lock"):
        state = read_state(folder)
        pid = _live_pid(folder, state)
        if pid is not None:
            marker = str(folder / "server.properties")
            terminate(pid, lambda: process_matches(pid, marker), timeout=STOP_TIMEOUT_S)
            _keep_class_archive(folder)
        if state is not None:
            (folder / "state.json").unlink(missing_ok=True)
    if purge:
        shutil.rmtree(folder, ignore_errors=True)
    return pid is not None


def resolve_bootstrap(explicit: str | None, state_dir: Path) -> str:
    """Kafka's address: the explicit flag, else $PROVISIONER_KAFKA_BOOTSTRAP, else the dev broker
    running for `state_dir`; DevBrokerError saying how to get one otherwise."""
    if explicit:
        return explicit
    configured = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if configured:
        return configured
    running = status(state_dir)
    if running is not None:
        return running.bootstrap
    raise DevBrokerError(
        f"no Kafka: pass --bootstrap, set {BOOTSTRAP_ENV} or run `provisioner dev kafka up`")


def resolve_or_start(explicit: str | None, state_dir: Path, say: Callable[[str], None]) -> tuple[str, bool]:
    """Like `resolve_bootstrap`, but starts the dev broker when no Kafka is configured or running;
    also says whether it had to."""
    try:
        return resolve_bootstrap(explicit, state_dir), False
    except DevBrokerError:
        pass
    say(f"No Kafka configured (--bootstrap, {BOOTSTRAP_ENV}) and no dev broker runs: starting the dev broker…")
    bootstrap = up(state_dir)
    say(f"dev broker up at {bootstrap}")
    return bootstrap, True
