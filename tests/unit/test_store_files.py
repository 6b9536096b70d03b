"""The certificate files a store URL names in a cluster: resolved against the mounted Secret,
checked against the Secret's keys by the operator, mounted by render, and the StoresReady reasons."""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from provisioner.kube.client import KubeClient
from provisioner.kube.names import name_clashes
from provisioner.kube.observe import Observer
from provisioner.kube.reconcile import parse_product
from provisioner.kube.render import STORE_FILES_DIR, RenderOptions, RenderRefused, render
from provisioner.kube.status import Observation, compute_status
from provisioner.spec.loader import load_text
from provisioner.spec.models import DataProduct
from provisioner.stores.url_files import files_named, problem, resolve

CANARY = "canary-Store-Pa55-4e2b"
MOUNT = f"{STORE_FILES_DIR}/shop-db"


# -- resolving relative paths against the mounted Secret --------------------------------------------

def test_a_relative_postgres_file_resolves_into_the_mount_and_the_rest_of_the_url_stays_as_written() -> None:
    url = (f"postgresql://app:{CANARY}%2F@db.shop:5432/orders?sslmode=verify-full&sslrootcert=ca.pem"
           "&sslcert=./client.pem&sslkey=%2Fetc%2Fkeys%2Fclient.key&options=-c%20search_path%3Dx")
    resolved = resolve("postgres", url, MOUNT)
    assert resolved == (f"postgresql://app:{CANARY}%2F@db.shop:5432/orders?sslmode=verify-full"
                        f"&sslrootcert={MOUNT}/ca.pem&sslcert={MOUNT}/client.pem"
                        "&sslkey=%2Fetc%2Fkeys%2Fclient.key&options=-c%20search_path%3Dx")
    assert files_named("postgres", resolved) == {"sslrootcert": f"{MOUNT}/ca.pem", "sslcert": f"{MOUNT}/client.pem",
                                                 "sslkey": "/etc/keys/client.key"}


def test_libpq_key_value_pairs_resolve_too_and_system_names_no_file() -> None:
    resolved = resolve("postgres", f"host=db password='{CANARY} x' sslmode=verify-full sslrootcert=ca.pem", MOUNT)
    assert f"sslrootcert={MOUNT}/ca.pem" in resolved and f"password='{CANARY} x'" in resolved
    system = "postgresql://db/orders?sslmode=verify-full&sslrootcert=system"
    assert resolve("postgres", system, MOUNT) == system
    assert files_named("postgres", system) == {}


def test_a_redis_url_resolves_its_ca_and_client_files() -> None:
    url = f"rediss://app:{CANARY}@cache.shop:6380/0?ssl_ca_certs=ca.pem&ssl_certfile=client.pem&ssl_keyfile=client.key"
    assert resolve("redis", url, MOUNT) == (f"rediss://app:{CANARY}@cache.shop:6380/0?ssl_ca_certs={MOUNT}/ca.pem"
                                            f"&ssl_certfile={MOUNT}/client.pem&ssl_keyfile={MOUNT}/client.key")
    plain = "rediss://cache.shop:6380/0"  # the system's CAs
    assert resolve("redis", plain, MOUNT) == plain


# -- the cluster's rule: a file is a key of the same Secret ------------------------------------------

@pytest.mark.parametrize(("kind", "url", "expected"), [
    ("postgres", "postgresql://app:{pw}@db/x?sslrootcert=ca.pem&sslcert=client.pem", None),
    ("postgres", "postgresql://app:{pw}@db/x?sslrootcert=system", None),
    ("postgres", "postgresql://app:{pw}@db/x?sslrootcert=ca.pem&sslkey=client.key",
     "the URL's sslkey names 'client.key', which is not a key of the Secret: add the file as that key"),
    ("postgres", "postgresql://app:{pw}@db/x?sslrootcert=/etc/ssl/ca.pem",
     "the URL's sslrootcert is '/etc/ssl/ca.pem'; in a cluster a certificate file is a key of the same Secret, "
     "named by that key alone (e.g. sslrootcert=ca.pem)"),
    ("postgres", "postgresql://app:{pw}@db/x?sslrootcert=../ca.pem", "the URL's sslrootcert is '../ca.pem'"),
    ("postgres", "host=db password={pw} sslcrldir=crl", "the URL's sslcrldir names a folder"),
    ("redis", "rediss://app:{pw}@cache:6380/0?ssl_ca_certs=ca.pem", None),
    ("redis", "rediss://app:{pw}@cache:6380/0?ssl_ca_certs=root.pem",
     "the URL's ssl_ca_certs names 'root.pem', which is not a key of the Secret"),
    ("redis", "rediss://app:{pw}@cache:6380/0?ssl_ca_path=certs", "the URL's ssl_ca_path names a folder"),
])
def test_each_file_must_be_a_key_of_the_secret_and_the_password_is_never_quoted(
        kind: str, url: str, expected: str | None) -> None:
    found = problem(kind, url.format(pw=CANARY), {"url", "ca.pem", "client.pem"}, "Secret shop/shop-db key 'url'")
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.startswith(f"Secret shop/shop-db key 'url': {expected}")
        assert CANARY not in found


# -- render: the Secret holding the URL, mounted read-only -------------------------------------------

SPEC = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {{name: {name}, namespace: shop}}
spec:
  source: {{topic: orders.v1}}
  fields: {{order_id: event.order_id}}
  key: order_id
  stores:
    - name: db
      postgres: {{connection: {{secretRef: {{name: shop-db, key: url}}}}}}
    - name: cache
      redis: {{connection: {{url: "{url}"}}}}
    - name: local
      redis: {{}}
"""


def product(url: str = "redis://cache.shop:6379/0", name: str = "orders") -> DataProduct:
    loaded, findings = load_text(SPEC.format(url=url, name=name), "p.yaml")
    assert findings == []
    return loaded[0].product


def pods(objects: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["labels"]["provisioner.dev/store"]: o["spec"]["template"]["spec"]
            for o in objects if o["kind"] == "Deployment"}


def test_each_unmanaged_store_mounts_the_secret_holding_its_url_read_only() -> None:
    [rendered] = render([product()], RenderOptions(kafka_bootstrap="kafka:9092", with_secrets=True,
                                                   credentials_key=b"k" * 32))
    for store, secret in (("db", "shop-db"), ("cache", "orders-cache-store-url")):
        pod = pods(rendered.objects)[store]
        [container] = pod["containers"]
        [volume] = [v for v in pod["volumes"] if v["name"] == "store-files"]
        assert volume == {"name": "store-files", "secret": {"secretName": secret, "defaultMode": 0o440}}
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "store-files"]
        assert mount == {"name": "store-files", "mountPath": f"{STORE_FILES_DIR}/{secret}", "readOnly": True}
        env = {e["name"]: e for e in container["env"]}
        assert env["PROVISIONER_STORE_FILES"] == {"name": "PROVISIONER_STORE_FILES",
                                                  "value": f"{STORE_FILES_DIR}/{secret}"}
        assert env["PROVISIONER_STORE_URL"]["valueFrom"]["secretKeyRef"]["name"] == secret
        # Pod Security "restricted": still non-root, no escalation, read-only root, all capabilities dropped.
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["fsGroup"] == 10001
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
    managed = pods(rendered.objects)["local"]
    assert [v["name"] for v in managed["volumes"]] == ["spec", "tmp"]  # its credentials stay an env value only
    assert "PROVISIONER_STORE_FILES" not in {e["name"] for e in managed["containers"][0]["env"]}


def test_render_lists_the_keys_the_urls_need() -> None:
    url = "rediss://cache.shop:6380/0?ssl_ca_certs=ca.pem&ssl_certfile=./client.pem&ssl_keyfile=${KEY_FILE}"
    [rendered] = render([product(url)], RenderOptions(kafka_bootstrap="kafka:9092"))
    listed = {s.name: s for s in rendered.secrets_to_create}
    assert listed["orders-cache-store-url"].keys == ("url", "ca.pem", "client.pem")
    assert listed["shop-db"].keys == ("url",) and "sslrootcert=ca.pem" in listed["shop-db"].hint
    header = rendered.yaml().split("---")[0]
    assert "shop/orders-cache-store-url (keys: url, ca.pem, client.pem)" in header


@pytest.mark.parametrize("path", ["/etc/ssl/ca.pem", "../ca.pem", "certs/ca.pem"])
def test_a_spec_url_naming_a_file_outside_its_secret_is_refused(path: str) -> None:
    with pytest.raises(RenderRefused) as refused:
        render([product(f"rediss://cache.shop:6380/0?ssl_ca_certs={path}")], RenderOptions(kafka_bootstrap="k:9092"))
    assert refused.value.path == "spec.stores[1].redis.connection.url"
    assert f"ssl_ca_certs is '{path}'" in str(refused.value)


def test_a_rendered_url_secret_cannot_hold_files_so_the_operator_asks_for_a_secret_ref() -> None:
    with pytest.raises(RenderRefused) as refused:
        render([product(f"rediss://:{CANARY}@cache.shop:6380/0?ssl_ca_certs=ca.pem")],
               RenderOptions(kafka_bootstrap="k:9092", with_secrets=True, credentials_key=b"k" * 32))
    assert refused.value.path == "spec.stores[1].redis.connection.url"
    assert "connection.secretRef" in str(refused.value) and CANARY not in str(refused.value)


def test_products_sharing_a_store_secret_do_not_clash() -> None:
    assert name_clashes([product(name="orders"), product(name="returns")]) == []


# -- the operator: a file missing from the Secret is a condition; refusals keep their class ----------

def _observe(url: str, data: dict[str, str]) -> tuple[dict[str, Any], str]:
    body = {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {"source": {"topic": "orders.v1"}, "fields": {"order_id": "event.order_id"}, "key": "order_id",
                     "stores": [{"name": "cache",
                                 "redis": {"connection": {"secretRef": {"name": "cache-url", "key": "url"}}}}]}}
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in {"url": url, **data}.items()}
    secrets = [{"kind": "Secret", "metadata": {"name": "cache-url"}, "data": encoded}]
    observer = Observer(cast(KubeClient, object()), None, store_timeout=2.0)
    stores = observer.observe(parse_product(body), "shop", secrets)
    status = compute_status(Observation(1, stores), None, datetime(2026, 1, 1, tzinfo=UTC))
    condition = next(c for c in status["conditions"] if c["type"] == "StoresReady")
    assert condition["status"] == "False"
    assert CANARY not in yaml.safe_dump(status)
    return condition, status["stores"][0]["lastError"]


@pytest.fixture
def not_tls() -> Iterator[int]:
    """A port that answers a TLS handshake with plain text, as a server without TLS would."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def answer() -> None:
        for _ in range(4):  # the positions read, and the version record's
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                connection.sendall(b"-ERR plain text here, no TLS\r\n" * 20)
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    server.shutdown(socket.SHUT_RDWR)  # ends a waiting accept
    server.close()
    thread.join()


def test_a_file_missing_from_the_secret_is_a_condition_naming_the_key() -> None:
    condition, error = _observe(f"rediss://app:{CANARY}@127.0.0.1:1/0?ssl_ca_certs=ca.pem", {})
    assert condition["reason"] == "StoreCredentialsMissing"
    assert "Secret cache-url key 'url': the URL's ssl_ca_certs names 'ca.pem', which is not a key" in error


def test_a_file_that_holds_no_certificate_is_a_tls_condition_shown_at_the_consumers_path(not_tls: int) -> None:
    condition, error = _observe(f"rediss://app:{CANARY}@127.0.0.1:{not_tls}/0?ssl_ca_certs=ca.pem",
                                {"ca.pem": "no PEM"})
    assert condition["reason"] == "StoreTLS", error
    assert "holds no PEM certificate" in error
    assert f"ssl_ca_certs={STORE_FILES_DIR}/cache-url/ca.pem" in error  # not the operator's temporary folder


def test_the_secrets_ca_reaches_the_driver_and_a_server_without_tls_is_a_tls_condition(
        not_tls: int, tmp_path: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=test-ca", "-days", "1", "-keyout", str(tmp_path / "ca.key"),
                    "-out", str(tmp_path / "ca.pem")], check=True, capture_output=True)
    ca = (tmp_path / "ca.pem").read_text(encoding="ascii")
    condition, error = _observe(f"rediss://app:{CANARY}@127.0.0.1:{not_tls}/0?ssl_ca_certs=ca.pem", {"ca.pem": ca})
    assert condition["reason"] == "StoreTLS", error
    assert "does not speak TLS" in error or "TLS handshake" in error
