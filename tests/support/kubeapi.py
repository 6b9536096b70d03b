"""A real Kubernetes control plane for laptops and tests: etcd, kube-apiserver and
kube-controller-manager, built from Go modules and started as local processes.

Called by the k8s test fixtures (tests/k8s/conftest.py), by `scripts/test` (which builds the
binaries up front) and by hand: `python -m tests.support.kubeapi build|up DIR`.

No kubelet and no scheduler: objects are stored, validated, admitted (RBAC, Pod Security) and
reconciled by the controllers (garbage collection, Deployment -> ReplicaSet -> Pods, namespace
deletion), but Pods stay Pending. That is what an operator or a provisioning step talks to.

Files:
    <cache>/kube/<version>/bin/         kube-apiserver, kube-controller-manager, etcd (built once;
                                        <cache> is $PROVISIONER_CACHE or ~/.cache/provisioner)
    <cache>/kube/build/                 scratch Go modules the binaries are built from
    <cache>/go/                         GOPATH, module and build caches (about 5 GB; only bin/ is
                                        needed once built)
    <work_dir>/                         one cluster: pki/, etcd-data/, kubeconfig, *.log
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from provisioner.errors import SetupError
from provisioner.files import cache_root, file_lock
from provisioner.local.gobuild import build_binary, go_binary, go_env, run_go, scratch_module
from provisioner.local.processes import free_ports
from tests.support.daemons import stop_process_group

__all__ = [
    "ETCD_VERSION",
    "KUBE_VERSION",
    "KubeApiError",
    "KubeCluster",
    "bin_dir",
    "ensure_binaries",
    "start",
]

KUBE_VERSION = "v1.37.2"
STAGING_VERSION = "v0.37.2"  # k8s.io/api, k8s.io/apiserver, ... released with KUBE_VERSION
ETCD_VERSION = "v3.6.16"
KUBE_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager")
BINARIES = (*KUBE_COMMANDS, "etcd")
_TAIL_LINES = 30


class KubeApiError(SetupError):
    """The control plane cannot be built, started or stopped; the message says which step failed."""


# ---------------------------------------------------------------------------------------------
# Building the binaries


def bin_dir() -> Path:
    """Where the binaries of the pinned versions live (they may not be built yet)."""
    return cache_root() / "kube" / KUBE_VERSION / "bin"


def _missing(bins: Path) -> list[str]:
    return [name for name in BINARIES if not os.access(bins / name, os.X_OK)]


def ensure_binaries(log: Callable[[str], None] | None = None) -> Path:
    """Build etcd, kube-apiserver and kube-controller-manager once and return their directory.

    Upstream ships no `go install`-able kube-apiserver (its go.mod replaces the staging modules),
    so each is built from a scratch module. Returns at once when the binaries exist; otherwise
    builds under an exclusive lock so parallel test runs build once (5-7 min cold on 2 cores).
    """
    say = log or (lambda _line: None)
    bins = bin_dir()
    if not _missing(bins):
        return bins
    bins.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_root() / "kube" / "build.lock"):
        missing = _missing(bins)  # another process may have built them while we waited
        if not missing:
            return bins
        env = go_env()
        go = go_binary()
        started = time.monotonic()
        if any(name in missing for name in KUBE_COMMANDS):
            module = _kube_module(go, env, say)
            for name in KUBE_COMMANDS:
                if name in missing:
                    build_binary(go, env, module, f"{KUBE_MODULE}/cmd/{name}", bins / name, say, _kube_ldflags())
        if "etcd" in missing:
            module = _etcd_module(go, env, say)
            build_binary(go, env, module, ETCD_MODULE, bins / "etcd", say, "-s -w")
        say(f"kube: binaries ready in {bins} ({time.monotonic() - started:.0f} s)")
    return bins


def _kube_module(go: str, env: dict[str, str], say: Callable[[str], None]) -> Path:
    module = scratch_module(
        go, env, f"kubernetes-{KUBE_VERSION}", [f"{KUBE_MODULE}/cmd/{name}" for name in KUBE_COMMANDS], say
    )
    info = json.loads(run_go(go, env, f"download {KUBE_MODULE}@{KUBE_VERSION}",
                             ["mod", "download", "-json", f"{KUBE_MODULE}@{KUBE_VERSION}"], module, say))
    upstream = json.loads(run_go(go, env, "read kubernetes go.mod", ["mod", "edit", "-json", info["GoMod"]],
                                 module, say))
    # kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging/...;
    # replaces in a dependency are ignored, so point each at its published release instead.
    staging = [req["Path"] for req in upstream.get("Require") or []
               if req["Path"].startswith("k8s.io/") and req["Version"] == "v0.0.0"]
    if not staging:
        raise KubeApiError(f"read kubernetes go.mod: no k8s.io/* v0.0.0 requirements in {info['GoMod']}")
    edits = [f"-require={KUBE_MODULE}@{KUBE_VERSION}"]
    edits += [f"-replace={path}={path}@{STAGING_VERSION}" for path in staging]
    run_go(go, env, f"pin {len(staging)} staging modules at {STAGING_VERSION}", ["mod", "edit", *edits], module, say)
    run_go(go, env, "go mod tidy (kubernetes; downloads about 1 GB when cold)", ["mod", "tidy"], module, say)
    return module


def _etcd_module(go: str, env: dict[str, str], say: Callable[[str], None]) -> Path:
    module = scratch_module(go, env, f"etcd-{ETCD_VERSION}", [ETCD_MODULE], say)
    run_go(go, env, f"require {ETCD_MODULE}@{ETCD_VERSION}",
        ["mod", "edit", f"-require={ETCD_MODULE}@{ETCD_VERSION}"], module, say)
    run_go(go, env, "go mod tidy (etcd)", ["mod", "tidy"], module, say)
    return module


def _kube_ldflags() -> str:
    major, minor = KUBE_VERSION.lstrip("v").split(".")[:2]
    prefix = "k8s.io/component-base/version"
    # Without these the binaries report v0.0.0 and clients' version checks fail.
    return (f"-s -w -X {prefix}.gitVersion={KUBE_VERSION} -X {prefix}.gitMajor={major} "
            f"-X {prefix}.gitMinor={minor} -X {prefix}.gitTreeState=clean")


# ---------------------------------------------------------------------------------------------
# Running a cluster

SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class KubeCluster:
    """A running etcd + kube-apiserver (+ kube-controller-manager) under `work_dir`.

    `kubeconfig` authenticates as an admin (group system:masters). `stop()` (or leaving the
    `with` block) terminates every daemon; the work directory is left for its logs.
    """

    def __init__(self, work_dir: Path, server: str, bins: Path) -> None:
        self.work_dir = work_dir
        self.server = server
        self.kubeconfig = work_dir / "kubeconfig"
        self._bins = bins
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the daemons still running, by name (in start order)."""
        return {name: proc.pid for name, proc in self._procs.items() if proc.poll() is None}

    @property
    def ca_file(self) -> Path:
        """The cluster's CA certificate (it signed the serving and admin certificates)."""
        return self.work_dir / "pki" / "ca.crt"

    def start_controller_manager(self, timeout: float = 60) -> None:
        """Start kube-controller-manager (garbage collection, Deployments -> ReplicaSets -> Pods,
        namespace deletion) if it is not running yet.

        Its garbage collector reads API discovery only every 30 s, so GC of a custom kind whose
        CRD is installed after this call takes about 40 s: install CRDs first, then call this
        (that is why `start()` can leave it out).
        """
        if "kube-controller-manager" in self.pids:
            return
        pki = self.work_dir / "pki"
        self._spawn("kube-controller-manager", [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            "--controllers=*",
            "--use-service-account-credentials=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ])
        # Ready once its controllers run: the root-CA publisher writes this ConfigMap early.
        try:
            self._wait("kube-controller-manager", timeout,
                       lambda: self.request("GET", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt")[0] == 200)
        except BaseException:
            stop_process_group(self._procs.pop("kube-controller-manager"))
            raise

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, bytes]:
        """One HTTPS request to the API server as the admin: (status, body). For readiness checks
        and the CLI; tests use a real client."""
        host, port = self.server.removeprefix("https://").rsplit(":", 1)
        conn = http.client.HTTPSConnection(host, int(port), context=self._ssl_context(), timeout=10)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        """SIGTERM every daemon (last started first), SIGKILL what is still alive after a while."""
        for name in reversed(list(self._procs)):
            stop_process_group(self._procs.pop(name))

    def __enter__(self) -> KubeCluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"KubeCluster(server={self.server!r}, work_dir={str(self.work_dir)!r}, pids={self.pids})"

    def _ssl_context(self) -> ssl.SSLContext:
        pki = self.work_dir / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return context

    def _spawn(self, name: str, args: list[str]) -> None:
        log_file = self.work_dir / f"{name}.log"
        with log_file.open("ab") as out:
            # Own session and no inherited stdin/stdout: a caller reading our output gets EOF,
            # and a Ctrl-C in the terminal reaches us, not the daemons (stop() handles them).
            self._procs[name] = subprocess.Popen(
                [str(self._bins / name), *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.work_dir,
            )

    def _wait(self, name: str, timeout: float, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        proc = self._procs[name]
        while True:
            if proc.poll() is not None:
                raise KubeApiError(f"{name} exited with code {proc.returncode}:\n{self._log_tail(name)}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise KubeApiError(f"{name} not ready after {timeout:.0f} s:\n{self._log_tail(name)}")
            time.sleep(0.2)

    def _log_tail(self, name: str) -> str:
        try:
            lines = (self.work_dir / f"{name}.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-_TAIL_LINES:])


def start(work_dir: Path, *, controller_manager: bool = True, timeout: float = 60,
          extra_args: Sequence[str] = ()) -> KubeCluster:
    """Start a fresh cluster in `work_dir` (new certificates, empty etcd, free loopback ports).

    Builds nothing: call `ensure_binaries()` first. With `controller_manager=False`, call
    `KubeCluster.start_controller_manager()` after installing CRDs (see its docstring). On
    failure every daemon started so far is stopped and KubeApiError carries the failing log.
    `extra_args` are appended to kube-apiserver's flags (an audit log, for instance).
    """
    bins = bin_dir()
    if _missing(bins):
        raise KubeApiError(f"{', '.join(_missing(bins))} not built in {bins}: call ensure_binaries() "
                           "or run `python -m tests.support.kubeapi build`")
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work_dir / "etcd-data", ignore_errors=True)  # fresh: its member URLs name old ports
    pki = _make_certificates(work_dir / "pki")
    etcd_port, peer_port, api_port = free_ports(3)
    cluster = KubeCluster(work_dir, f"https://127.0.0.1:{api_port}", bins)
    try:
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        cluster._spawn("etcd", [
            "--name=default",
            f"--data-dir={work_dir / 'etcd-data'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync",  # test data: durability is not worth the fsync latency
            "--log-level=warn",
        ])
        cluster._wait("etcd", timeout, lambda: _etcd_healthy(etcd_port))
        cluster._spawn("kube-apiserver", [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            # 1.37 refuses a loopback advertise address with the default (lease) reconciler.
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            # No ServiceAccount admission: Pods need no token volume nor an existing account.
            "--disable-admission-plugins=ServiceAccount",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--cert-dir={work_dir / 'apiserver-certs'}",
            *extra_args,
        ])
        cluster._wait("kube-apiserver", timeout, lambda: cluster.request("GET", "/readyz")[0] == 200)
        _write_kubeconfig(cluster.kubeconfig, cluster.server, pki)
        if controller_manager:
            cluster.start_controller_manager(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _etcd_healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        return response.status == 200 and json.loads(response.read()).get("health") == "true"
    finally:
        conn.close()


def _openssl(pki: Path, step: str, *args: str) -> None:
    try:
        done = subprocess.run(["openssl", *args], cwd=pki, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise KubeApiError(f"certificates ({step}): cannot run openssl: {exc}") from exc
    if done.returncode != 0:
        raise KubeApiError(f"certificates ({step}) failed:\n{done.stderr.strip()}")


def _make_certificates(pki: Path) -> Path:
    """A throwaway CA, the API server's serving cert, an admin client cert and the
    service-account key pair: everything the daemons and the kubeconfig refer to."""
    pki.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")  # fast to generate
    _openssl(pki, "CA", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=provisioner-local-ca")
    leaves = {
        "serving": ("/CN=kube-apiserver", "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default\n"),
        "admin": ("/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth\n"),
    }
    for name, (subject, extensions) in leaves.items():
        (pki / f"{name}.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                                         + extensions)
        _openssl(pki, f"{name} key", "req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject)
        _openssl(pki, f"{name} cert", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "3650", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
    _openssl(pki, "service-account key", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", "sa.key")
    _openssl(pki, "service-account public key", "pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    return pki


def _write_kubeconfig(path: Path, server: str, pki: Path) -> None:
    """An admin kubeconfig with the certificates inlined, so it works from anywhere (JSON is YAML)."""

    def inline(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": inline("ca.crt")}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": inline("admin.crt"),
                                             "client-key-data": inline("admin.key")}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "local",
    }
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(config, indent=2) + "\n")
    temp.chmod(0o600)
    os.replace(temp, path)


# ---------------------------------------------------------------------------------------------
# Command line


def _main(argv: list[str]) -> int:
    usage = "usage: python -m tests.support.kubeapi build | up DIR"
    if argv == ["build"]:
        print(ensure_binaries(lambda line: print(line, file=sys.stderr, flush=True)))
        return 0
    if len(argv) != 2 or argv[0] != "up":
        print(usage, file=sys.stderr)
        return 2
    ensure_binaries(lambda line: print(line, file=sys.stderr, flush=True))

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        with start(Path(argv[1])) as cluster:
            print(cluster.kubeconfig, flush=True)
            print(f"kube: {cluster.server} up; Ctrl-C stops it", file=sys.stderr, flush=True)
            signal.pause()
    except KeyboardInterrupt:
        pass
    except KubeApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
