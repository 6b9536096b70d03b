"""The operator at scale against a real API server, and the floor a plain client sets.

One run, one fresh control plane (etcd, kube-apiserver with an audit log, kube-controller-manager)
under a temporary directory, the dev Kafka broker and an embedded Redis:

  1. N DataProducts (default 1000) in M namespaces (default N/100, at least 4, at most 100),
     each with one Redis store whose `connection.secretRef` names a Secret holding the embedded
     Redis's URL, so each product has three children (ConfigMap, Deployment, its egress
     NetworkPolicy) and no StatefulSet: without a kubelet a managed store's StatefulSet never
     runs, and its status would only say so. The store is real, so the status observes real
     positions and Kafka real end offsets (one topic per namespace, created up front).
  2. The operator (`provisioner operator`, default workers and resync) started as a process once
     the products exist; converged = every product has its four children and a status whose
     `observedGeneration` is the product's generation. Timed from the process start (Python
     start-up, the priming lists and the watches included). The benchmark sees it through one
     watch per kind (bench/kube_watch.py), not polled lists, which would load the API server the
     operator shares (the floor is not polled), and confirms it with one listing.
  3. API requests per product: audit-log entries (Metadata level) sent by the operator up to
     convergence, divided by N; the benchmark's own client and the controller manager are told
     apart by their user agent. Those naming a product or one of its objects are counted apart
     from those that do not grow with N (Lease renewals, discovery, a namespace's shared Secret,
     the priming listings); the goal is on the first.
  4. 60 s idle after convergence (resyncs included): the operator's writes
     (create/update/patch/delete), the Lease renewals counted apart, its CPU as a share of one
     core, and its peak RSS (VmHWM).
  5. The floor: the same N products' `render` output (the same objects, without the owner
     reference) server-side applied into fresh namespaces by a plain client, one PATCH per object,
     with as many threads as the operator has workers. Ratios operator/floor for time and requests.

The machine is shared: compare the ratios of one run. The goals: convergence within 2x the
floor's time, at most 4 requests per product, no idle writes but the Lease, idle CPU under 5% of
a core, peak RSS under 1 GB.

Run: .venv/bin/python bench/operator.py [--products N] [--namespaces M] [--idle SECONDS]
With `--profile DIR` the operator runs under yappi (installed anywhere on PYTHONPATH, a development
tool only) and its CPU profiles of the convergence and of the idle time land in DIR; with
BENCH_TRACEMALLOC=1 as well, what holds its memory instead (see bench/profiled_operator.py).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

from kube_watch import Convergence  # noqa: E402

from provisioner.errors import UnavailableError  # noqa: E402
from provisioner.kube.client import KubeClient  # noqa: E402
from provisioner.kube.reconcile import parse_product  # noqa: E402
from provisioner.kube.render import RenderOptions, render  # noqa: E402
from provisioner.local import devbroker, embedded  # noqa: E402
from tests.k8s.conftest import install_crds  # noqa: E402
from tests.support import kubeapi  # noqa: E402

WORKERS = 8  # the operator's default --workers
CHILD_KINDS = ("ConfigMap", "Deployment", "NetworkPolicy")  # one of each per product (one store with a secretRef)
KEY = "bench-operator-credentials-key-0123456789"
BENCH_AGENT = "provisioner-bench"
FLOOR_AGENT = "provisioner-bench-floor"
LEASE_NAMESPACE = "provisioner-system"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
AUDIT_POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                "rules": [{"level": "Metadata"}]}


def client(kubeconfig: Path, agent: str, pool: int = 16) -> KubeClient:
    return KubeClient.from_kubeconfig(kubeconfig, pool_size=pool, user_agent=agent)


def product(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"topic": f"bench.{namespace}"},
            "fields": {"order_id": "event.order_id", "amount": "event.amount"},
            "key": "order_id",
            "stores": [{"name": "cache", "redis": {"connection": {"secretRef": {"name": "store-url", "key": "url"}}}}],
        },
    }


def names(count: int, prefix: str, namespaces: int) -> list[tuple[str, str]]:
    return [(f"{prefix}-{i % namespaces}", f"p-{i:05d}") for i in range(count)]


def prepare_namespaces(kube: KubeClient, prefix: str, redis_url: str, namespaces: int) -> None:
    def prepare(i: int) -> None:
        namespace = f"{prefix}-{i}"
        kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
        kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "store-url", "namespace": namespace},
                    "data": {"url": base64.b64encode(redis_url.encode()).decode()}})

    in_parallel(prepare, list(range(namespaces)))


def retried(call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`call`, tried again when the API server does not answer in time (a loaded, shared machine)."""
    def again(item: Any) -> Any:
        for attempt in range(5):
            try:
                return call(item)
            except UnavailableError:
                if attempt == 4:
                    raise
                time.sleep(2 ** attempt)
        return None

    return again


def in_parallel(call: Callable[[Any], Any], items: list[Any], threads: int = WORKERS) -> None:
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(call, items):
            pass


# -- the audit log ------------------------------------------------------------------------------------


class Audit:
    """Reads the API server's audit log from where it was last read; one entry per request (auditID)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        seen: dict[str, dict[str, Any]] = {}
        for line in data[:end].splitlines():
            if line.strip():
                entry = json.loads(line)
                seen.setdefault(entry["auditID"], entry)
        return list(seen.values())


def who(entry: dict[str, Any]) -> str:
    agent = entry.get("userAgent", "")
    user = entry.get("user", {}).get("username", "")
    if agent.startswith(FLOOR_AGENT):
        return "floor"
    if agent.startswith(BENCH_AGENT):
        return "bench"
    if user == "admin" and not agent.startswith("kube-"):
        return "operator"  # the operator's REST client and kopf's watches
    return "others"


def resource(entry: dict[str, Any]) -> str:
    ref = entry.get("objectRef") or {}
    return ref.get("resource", "?") + ("/" + ref["subresource"] if ref.get("subresource") else "")


def of_a_product(entry: dict[str, Any], keys: set[tuple[str, str]]) -> bool:
    """Whether the request names a product or one of its objects (named `<product>-...`), as
    opposed to what the operator reads or writes once whatever the number of products: its
    Lease, API discovery, a namespace's shared Secret, the priming listings."""
    ref = entry.get("objectRef") or {}
    namespace, name = ref.get("namespace"), ref.get("name") or ""
    if not namespace or not name:
        return False
    return (namespace, name) in keys or any(
        (namespace, name[:i]) in keys for i, char in enumerate(name) if char == "-")


def breakdown(entries: list[dict[str, Any]]) -> str:
    counts = Counter(f"{e['verb']} {resource(e)}" for e in entries)
    return ", ".join(f"{what} {n}" for what, n in counts.most_common(8))


# -- the operator --------------------------------------------------------------------------------------


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def converged(kube: KubeClient, expected: set[tuple[str, str]]) -> bool:
    done = set()
    for body in kube.list("DataProduct"):
        metadata = body["metadata"]
        if (body.get("status") or {}).get("observedGeneration") == metadata.get("generation"):
            done.add((metadata["namespace"], metadata["name"]))
    if not expected <= done:
        return False
    counts: Counter[tuple[str, str]] = Counter()
    for kind in CHILD_KINDS:
        for body in kube.list(kind, None, {"app.kubernetes.io/managed-by": "provisioner"}):
            metadata = body["metadata"]
            counts[(metadata["namespace"], metadata["labels"]["app.kubernetes.io/part-of"])] += 1
    return all(counts[key] == len(CHILD_KINDS) for key in expected)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=None,
                        help="namespaces the products are spread over (default: products/100, 4 to 100)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measured after convergence")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep", action="store_true", help="keep the operator's log and the cluster's work dir")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the operator under yappi (bench/profiled_operator.py): CPU profiles of the "
                             "convergence and of the idle time, written to this folder")
    args = parser.parse_args()
    count = args.products
    spaces = args.namespaces or min(100, max(4, count // 100))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what we started on the way out
    kubeapi.ensure_binaries(lambda line: print(line, file=sys.stderr, flush=True))
    work = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    policy = work / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    audit_log = work / "audit.log"
    audit = Audit(audit_log)
    state = work / "state"
    print(f"control plane, Kafka and Redis under {work} ...", flush=True)
    cluster = kubeapi.start(work / "kube", controller_manager=False, extra_args=[
        f"--audit-policy-file={policy}", f"--audit-log-path={audit_log}", "--audit-log-maxsize=0",
    ])
    operator: subprocess.Popen[bytes] | None = None
    succeeded = False
    try:
        crd = yaml.safe_load((ROOT / "operators" / "crd" / "dataproducts.provisioner.dev.yaml").read_text())
        install_crds(cluster.kubeconfig, [crd])
        cluster.start_controller_manager()
        bootstrap = devbroker.up(state, port=0)
        redis_url = embedded.start_redis(state).url
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(f"bench.bench-{i}", 1, 1) for i in range(spaces)])
        admin.close()

        kube = client(cluster.kubeconfig, BENCH_AGENT)
        kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": LEASE_NAMESPACE}})
        prepare_namespaces(kube, "bench", redis_url, spaces)
        keys = names(count, "bench", spaces)
        started = time.monotonic()
        in_parallel(retried(lambda key: kube.apply(product(key[1], key[0]))), keys)
        print(f"{count} DataProducts in {spaces} namespaces created in {time.monotonic() - started:.1f} s", flush=True)

        # -- the operator: from its start to every product converged
        audit.read()  # what came before is the setup's
        log_path = work / "operator.log"
        env = {**os.environ, "PROVISIONER_CREDENTIALS_KEY": KEY}
        with log_path.open("ab") as out:
            started = time.monotonic()
            launcher = ["-m", "provisioner"] if args.profile is None else \
                [str(ROOT / "bench" / "profiled_operator.py"), str(args.profile)]
            operator = subprocess.Popen(
                [sys.executable, *launcher, "operator", "--kubeconfig", str(cluster.kubeconfig),
                 "--kafka-bootstrap", bootstrap, "--lease-namespace", LEASE_NAMESPACE],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        expected = set(keys)
        daemons = {**cluster.pids, "operator": operator.pid}
        cpu_before = {name: cpu_seconds(pid) for name, pid in daemons.items()}
        peak = 0.0
        watching = Convergence(kube, expected, CHILD_KINDS)
        try:
            while True:
                if operator.poll() is not None:
                    raise SystemExit(f"the operator exited ({operator.returncode}):\n{log_path.read_text()[-3000:]}")
                peak = max(peak, vm_hwm_mb(operator.pid))
                if watching.wait(0.5):
                    converge_s = time.monotonic() - started
                    break
                if time.monotonic() - started > args.timeout:
                    raise SystemExit(f"not converged after {args.timeout:.0f} s ({watching.failures[-3:]}); "
                                     f"log: {log_path}")
        finally:
            watching.close()
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in daemons.items()}
        if not converged(kube, expected):  # what the watches saw, checked once by listing
            raise SystemExit("the watches saw a convergence that a listing does not confirm")
        if args.profile is not None:
            operator.send_signal(signal.SIGUSR1)
        entries = audit.read()
        by_who = Counter(who(e) for e in entries)
        op_entries = [e for e in entries if who(e) == "operator"]
        op_requests = by_who["operator"]
        own = [e for e in op_entries if of_a_product(e, expected)]
        shared = [e for e in op_entries if not of_a_product(e, expected)]
        print(f"operator: {count} products converged in {converge_s:.1f} s; {op_requests} requests "
              f"({op_requests / count:.2f}/product): {breakdown(op_entries)}", flush=True)
        print(f"  of which {len(own)} name a product or its objects ({len(own) / count:.2f}/product), "
              f"{len(shared)} do not (the Lease, discovery, shared Secrets, listings: "
              f"{breakdown(shared)})", flush=True)
        print("  CPU seconds until then: " + ", ".join(f"{name} {cpu[name]:.1f}" for name in daemons), flush=True)
        print(f"  during that time, others: {by_who['others']}, the benchmark's polling: {by_who['bench']}",
              flush=True)

        # -- idle
        idle_cpu = cpu_seconds(operator.pid)
        time.sleep(args.idle)
        idle_cpu = (cpu_seconds(operator.pid) - idle_cpu) / args.idle
        idle = [e for e in audit.read() if who(e) == "operator"]
        peak = max(peak, vm_hwm_mb(operator.pid))
        if args.profile is not None:
            operator.send_signal(signal.SIGUSR1)
            time.sleep(5)  # the dump takes a moment
        writes = [e for e in idle if e["verb"] in WRITE_VERBS]
        lease = [e for e in writes if resource(e) == "leases"]
        other_writes = [e for e in writes if resource(e) != "leases"]
        per_minute = 60.0 / args.idle
        print(f"idle {args.idle:.0f} s: {len(other_writes) * per_minute:.1f} writes/min besides the Lease "
              f"({breakdown(other_writes) or 'none'}); Lease renewals {len(lease) * per_minute:.1f}/min; "
              f"all requests {len(idle) * per_minute:.0f}/min ({breakdown(idle)})", flush=True)
        print(f"idle CPU: {idle_cpu * 100:.1f}% of a core; operator peak RSS (VmHWM): {peak:.0f} MB", flush=True)
        operator.send_signal(signal.SIGTERM)
        operator.wait(30)
        operator = None

        # -- the floor: the same objects, applied by a plain client
        floor = client(cluster.kubeconfig, FLOOR_AGENT, pool=WORKERS + 4)
        prepare_namespaces(floor, "floor", redis_url, spaces)
        floor_keys = names(count, "floor", spaces)
        started = time.monotonic()
        objects: list[dict[str, Any]] = []
        for namespace, name in floor_keys:
            parsed = parse_product(product(name, namespace))
            options = RenderOptions(kafka_bootstrap=bootstrap, namespace=namespace, with_secrets=True,
                                    credentials_key=KEY.encode(), operator_namespace=LEASE_NAMESPACE)
            objects.extend(render([parsed], options)[0].objects)
        render_s = time.monotonic() - started
        audit.read()
        started = time.monotonic()
        in_parallel(retried(floor.apply), objects)
        floor_s = time.monotonic() - started
        floor_requests = sum(1 for e in audit.read() if who(e) == "floor")
        print(f"floor: {len(objects)} objects rendered in {render_s:.1f} s (not timed), applied in "
              f"{floor_s:.1f} s with {WORKERS} threads; {floor_requests} requests "
              f"({floor_requests / count:.2f}/product)", flush=True)
        print(f"ratios operator/floor: time {converge_s / floor_s:.1f}, requests "
              f"{op_requests / max(floor_requests, 1):.1f}", flush=True)
        goals = [("time <= 2x floor", converge_s <= 2 * floor_s), ("<= 4 requests/product", len(own) <= 4 * count),
                 ("no idle writes but the Lease", not other_writes), ("idle CPU < 5% of a core", idle_cpu < 0.05),
                 ("RSS < 1 GB", peak < 1024)]
        print("goals: " + ", ".join(f"{what}: {'met' if ok else 'MISSED'}" for what, ok in goals), flush=True)
        succeeded = True
        return 0
    finally:
        if operator is not None and operator.poll() is None:
            operator.send_signal(signal.SIGTERM)
            try:
                operator.wait(30)
            except subprocess.TimeoutExpired:
                operator.kill()
        cluster.stop()
        embedded.stop_all(state)
        devbroker.down(state, purge=True)
        if args.keep or not succeeded:
            print(f"kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
