"""What `validate` refuses because it would break later, and what it skips: other kinds, empty
documents, label rules the API server applies, store URLs of the other kind, strict integers,
durations out of range, and tables, key prefixes and dead-letter topics two products would share."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from psycopg import pq
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.kube.reconcile import parse_product
from provisioner.operator.webhook import validation_message
from provisioner.spec.findings import Finding, SpecError
from provisioner.spec.loader import load_text, scan_paths
from provisioner.spec.models import StoreSpec
from provisioner.spec.overlaps import store_identity
from provisioner.spec.store_urls import POSTGRES_URL_PARAMETERS

ROOT = Path(__file__).resolve().parents[2]


def product(name: str, *, namespace: str = "default", topic: str = "orders.v1", store: str = "redis: {}",
            extra: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: provisioner.dev/v1alpha1
        kind: DataProduct
        metadata:
          name: {name}
          namespace: {namespace}
        spec:
          source:
            topic: {topic}
          fields:
            order_id: event.order_id
          key: order_id
          stores:
            - name: s
              {store}
        """) + extra


def findings_of(text: str) -> list[Finding]:
    return load_text(text, "spec.yaml")[1]


def messages(text: str) -> list[str]:
    return [f"{f.path}: {f.message}" for f in findings_of(text)]


def test_a_trailing_document_separator_and_null_documents_are_skipped() -> None:
    base = (ROOT / "specs" / "vip-orders.yaml").read_text()
    for text in (base + "---\n", base + "---\n...\n", "---\n" + base + "--- ~\n---\n# only a comment\n"):
        specs, findings = load_text(text, "spec.yaml")
        assert findings == [] and len(specs) == 1


def test_kustomize_files_and_other_kinds_are_skipped_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(product("a") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "Kustomization").write_text("resources: []\n")
    scan = scan_paths([tmp_path])
    assert scan.findings == []
    assert [s.product.name for s in scan.specs] == ["a"]
    assert sorted(str(n) for n in scan.notes) == [
        f"{tmp_path}/a.yaml:16:1: skipped: a ConfigMap, not a DataProduct",
        f"{tmp_path}/kustomization.yaml:1:1: skipped: a Kustomize file, not a DataProduct",
        f"{tmp_path}/sub/Kustomization:1:1: skipped: a Kustomize file, not a DataProduct",
    ]
    result = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "skipped: a ConfigMap" in result.output
    as_json = json.loads(CliRunner().invoke(app, ["validate", str(tmp_path), "-o", "json"]).output)
    assert as_json["valid"] and len(as_json["notes"]) == 3 and as_json["findings"] == []


@pytest.mark.parametrize("header", [
    "apiVersion: provisioner.dev/v1alpha1\nkind: DataProdcut\n",  # our group: a typo, not another kind
    "apiVersion: v1\nkind: DataProduct\n",
    "kind: DataProduct\n",
])
def test_a_document_that_means_to_be_a_spec_is_checked_not_skipped(header: str) -> None:
    text = header + product("a").split("metadata:", 1)[1].join(["metadata:", ""])
    assert findings_of(text), text


@pytest.mark.parametrize(("labels", "ok"), [
    ("{team: sales}", True),
    ("{app.kubernetes.io/name: orders, example.com/x_y.z: v-1.2_3}", True),
    ("{team: ''}", True),
    ("{'bad key!': x}", False),
    ("{-team: x}", False),
    ("{Example.com/x: y}", False),
    ("{'/x': y}", False),
    ("{a/b/c: y}", False),
    (f"{{{'k' * 64}: v}}", False),
    (f"{{{'p' * 254}/k: v}}", False),
    ("{team: 'has space'}", False),
    (f"{{team: {'v' * 64}}}", False),
    ("{team: -x}", False),
])
def test_label_keys_and_values_follow_kubernetes(labels: str, ok: bool) -> None:
    text = product("a").replace("  namespace: default\n", f"  namespace: default\n  labels: {labels}\n")
    found = messages(text)
    assert (found == []) == ok, found
    if not ok:
        assert found[0].startswith("metadata.labels")


def test_annotation_keys_follow_kubernetes_and_their_size_is_bounded() -> None:
    bad_key = product("a").replace("  namespace: default\n", "  namespace: default\n  annotations: {'a b': x}\n")
    assert messages(bad_key)[0].startswith("metadata.annotations.a b: key 'a b' is not a Kubernetes qualified name")
    huge = product("a").replace("  namespace: default\n", f"  namespace: default\n  annotations: {{a: {'x' * 270_000}}}\n")
    assert "more than Kubernetes' 256 KiB" in messages(huge)[0]


@pytest.mark.parametrize(("store", "expected"), [
    ("redis: {connection: {url: 'postgresql://u:secret@h/db'}}",
     "spec.stores[0].redis.connection.url: a redis store needs a redis://, rediss:// or unix:// URL, "
     "got a postgresql:// URL"),
    ("postgres: {connection: {url: 'redis://h:6379/0'}}",
     "spec.stores[0].postgres.connection.url: a postgres store needs a postgresql:// or postgres:// URL, "
     "got a redis:// URL"),
    ("redis: {connection: {url: 'h:6379'}}",
     "spec.stores[0].redis.connection.url: a redis store needs a redis://, rediss:// or unix:// URL, "
     "got a value without a scheme"),
])
def test_a_store_url_must_be_of_the_stores_kind_and_is_never_echoed(store: str, expected: str) -> None:
    found = messages(product("a", store=store))
    assert found == [expected]
    assert "secret" not in found[0]


@pytest.mark.parametrize("store", [
    "redis: {connection: {url: 'rediss://h:6380/1'}}",
    "redis: {connection: {url: 'unix:///run/redis.sock'}}",
    "redis: {connection: {url: '${REDIS_URL}'}}",
    "postgres: {connection: {url: 'postgres://h/db'}}",
    "postgres: {connection: {url: 'host=h dbname=db'}}",
    "postgres: {connection: {url: '${PG_URL}'}}",
])
def test_urls_of_the_right_kind_or_known_only_at_run_time_pass(store: str) -> None:
    assert messages(product("a", store=store)) == []


@pytest.mark.parametrize(("store", "expected"), [
    ("redis: {connection: {url: 'rediss://:s3cret@h:6380/0?ssl_ca_cert=/ca.pem'}}",
     "spec.stores[0].redis.connection.url: unknown URL parameter 'ssl_ca_cert' (known: client_name, db, "
     "health_check_interval, protocol, ssl_ca_certs, ssl_ca_path, ssl_cert_reqs, ssl_certfile, "
     "ssl_check_hostname, ssl_keyfile, ssl_min_version, ssl_password)"),
    ("redis: {connection: {url: 'redis://:s3cret@h:6379/0?ssl_ca_certs=/ca.pem'}}",
     "spec.stores[0].redis.connection.url: ssl_ca_certs needs TLS: write the URL as rediss://"),
    ("postgres: {connection: {url: 'postgresql://u:s3cret@h/db?sslmod=verify-full'}}",
     "spec.stores[0].postgres.connection.url: unknown URL parameter 'sslmod': not a libpq connection parameter "
     "(did you mean 'sslmode'?)"),
    ("postgres: {connection: {url: 'postgres://h/db?password'}}",
     "spec.stores[0].postgres.connection.url: URL parameter 'password' has no value (write password=...)"),
    ("postgres: {connection: {url: 'postgres://h/db?ssl=1'}}",
     "spec.stores[0].postgres.connection.url: URL parameter 'ssl' takes only true (libpq's sslmode=require): "
     "use sslmode"),
])
def test_a_store_url_parameter_its_client_would_refuse_is_found_at_the_url(store: str, expected: str) -> None:
    found = findings_of(product("a", store=store))
    assert [f"{f.path}: {f.message}" for f in found] == [expected]
    url_line = product("a", store=store).splitlines().index(f"      {store}") + 1
    assert (found[0].line, found[0].column) == (url_line, 7 + store.index("'"))
    assert "s3cret" not in found[0].message


@pytest.mark.parametrize("store", [
    "redis: {connection: {url: 'rediss://h:6380/0?ssl_ca_certs=/ca.pem&db=2&protocol=3'}}",
    "redis: {connection: {url: 'redis://h:6379/0?${REDIS_OPTIONS}'}}",
    "redis: {connection: {url: '${SCHEME}://h:6379/0?ssl_ca_certs=/ca.pem'}}",
    "redis: {connection: {secretRef: {name: cache, key: url}}}",  # read at run time: nothing to check offline
    "postgres: {connection: {url: 'postgresql://h/db?sslmode=verify-full&sslrootcert=/ca.pem&%73slcert=/c.pem&'}}",
    "postgres: {connection: {url: 'postgresql://h/db?ssl=true&application_name=x'}}",
    "postgres: {connection: {url: 'postgresql://h/db?${PG_OPTIONS}=x'}}",
    "postgres: {connection: {url: 'host=h dbname=db sslmode=require'}}",
])
def test_url_parameters_the_clients_take_or_known_only_at_run_time_pass(store: str) -> None:
    assert messages(product("a", store=store)) == []


def test_the_postgres_parameters_are_libpqs_own() -> None:
    libpq = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    assert libpq == POSTGRES_URL_PARAMETERS, (
        f"libpq {pq.version()} takes {sorted(libpq - POSTGRES_URL_PARAMETERS)} too "
        f"and not {sorted(POSTGRES_URL_PARAMETERS - libpq)}")


@pytest.mark.parametrize(("setting", "value"), [
    ("replicas", "true"), ("replicas", "1.0"), ("replicas", "'2'"), ("batchSize", "false"), ("batchSize", "'10'"),
])
def test_integers_are_strict(setting: str, value: str) -> None:
    found = messages(product("a", extra=f"  consumer: {{{setting}: {value}}}\n"))
    assert found == [f"spec.consumer.{setting}: expected an integer, got {value.replace(chr(34), chr(39))}"]


def test_a_test_records_partition_is_a_strict_integer_too() -> None:
    extra = "  tests:\n    - name: t\n      given: [{value: 1, partition: true}]\n      expect: [skip: {}]\n"
    assert messages(product("a", extra=extra)) == ["spec.tests[0].given[0].partition: expected an integer, got true"]


@pytest.mark.parametrize(("where", "text"), [
    ("store", "redis: {ttl: 1000000000d}"),
    ("store", "redis: {ttl: 99999999999999999999d}"),
    ("extra", "  freshness: 1000000000d\n"),
    ("extra", f"  consumer: {{batchLatency: {'9' * 400}d}}\n"),
])
def test_durations_past_the_longest_are_a_finding(where: str, text: str) -> None:
    spec = product("a", store=text) if where == "store" else product("a", extra=text)
    found = findings_of(spec)
    assert len(found) == 1 and "is too long: at most 999999999 days" in found[0].message
    assert len(found[0].message) < 120
    assert messages(product("a", store="redis: {ttl: 999999999d}")) == []


def test_the_operator_gets_a_message_not_an_overflow_for_a_huge_duration() -> None:
    import yaml

    body = yaml.safe_load(product("a", extra="  freshness: 99999999999999999999d\n"))
    message = validation_message(body)
    assert message is not None and message.startswith("spec.freshness: duration")
    with pytest.raises(SpecError):
        parse_product(body)


# Cross-product checks: every pair of products validated together.

def scan_folder(tmp_path: Path, *texts: str) -> list[str]:
    for index, text in enumerate(texts):
        (tmp_path / f"p{index}.yaml").write_text(text)
    return [str(f) for f in scan_paths([tmp_path]).findings]


def test_two_products_may_not_write_one_managed_table_in_a_namespace(tmp_path: Path) -> None:
    found = scan_folder(tmp_path, product("a", store="postgres: {table: t}"), product("b", store="postgres: {table: t}"))
    assert found == [f"{tmp_path}/p1.yaml:14:25: spec.stores[0].postgres.table: table public.t is also written by "
                     f"store 's' of product 'a' ({tmp_path}/p0.yaml:14:25), in the same managed store"]


def test_managed_stores_in_different_namespaces_are_separate(tmp_path: Path) -> None:
    assert scan_folder(tmp_path, product("a", store="postgres: {table: t}"),
                       product("b", namespace="other", store="postgres: {table: t}")) == []


def test_a_default_table_collides_with_an_explicit_one(tmp_path: Path) -> None:
    found = scan_folder(tmp_path, product("a-b", store="postgres: {}"), product("c", store="postgres: {table: a_b}"))
    assert len(found) == 1 and "table public.a_b is also written by store 's' of product 'a-b'" in found[0]


def test_different_schemas_do_not_collide(tmp_path: Path) -> None:
    assert scan_folder(tmp_path, product("a", store="postgres: {table: t}"),
                       product("b", store="postgres: {table: t, schema: other}")) == []


@pytest.mark.parametrize(("first", "second", "collide"), [
    ("postgresql://u:p@db.example:5432/app", "postgresql://other@DB.example/app?sslmode=require", True),
    ("postgresql://u@db.example/app", "postgresql://u@db.example/app2", False),
    ("postgresql://u@db.example/app", "postgresql://u@db2.example/app", False),
    ("${PG_URL}", "${PG_URL}", True),
    ("${PG_URL}", "${OTHER_URL}", False),
])
def test_connections_to_the_same_database_collide_across_namespaces(
        tmp_path: Path, first: str, second: str, collide: bool) -> None:
    found = scan_folder(tmp_path, product("a", store=f"postgres: {{table: t, connection: {{url: '{first}'}}}}"),
                        product("b", namespace="other",
                                store=f"postgres: {{table: t, connection: {{url: '{second}'}}}}"))
    assert bool(found) == collide, found
    if collide:
        assert "in the same store" in found[0] and "p:" not in found[0]


def test_secret_refs_collide_only_for_the_same_secret_key_in_one_namespace(tmp_path: Path) -> None:
    ref = "postgres: {table: t, connection: {secretRef: {name: pg, key: url}}}"
    assert len(scan_folder(tmp_path, product("a", store=ref), product("b", store=ref))) == 1
    for path in tmp_path.iterdir():
        path.unlink()
    assert scan_folder(tmp_path, product("a", store=ref), product("b", namespace="o", store=ref)) == []


@pytest.mark.parametrize(("first", "second", "relation"), [
    ('""', '"b:"', "overlaps"),
    ('"orders:"', '"orders:vip:"', "overlaps"),
    ('"x:"', '"x:"', "is"),
])
def test_redis_key_prefixes_may_not_overlap(tmp_path: Path, first: str, second: str, relation: str) -> None:
    found = scan_folder(tmp_path, product("a", store=f"redis: {{keyPrefix: {first}}}"),
                        product("b", store=f"redis: {{keyPrefix: {second}}}"))
    assert len(found) == 1, found
    assert f"{relation} " in found[0] and f"of store 's' of product 'a' ({tmp_path}/p0.yaml:14:26)" in found[0]
    assert found[0].startswith(f"{tmp_path}/p1.yaml:14:26: spec.stores[0].redis.keyPrefix: key prefix")


def test_default_redis_prefixes_never_overlap(tmp_path: Path) -> None:
    assert scan_folder(tmp_path, product("a"), product("a-b"), product("ab")) == []


def test_an_empty_prefix_overlaps_a_default_one_on_one_server(tmp_path: Path) -> None:
    url = "redis: {keyPrefix: '', connection: {url: 'redis://cache:6379/0'}}"
    found = scan_folder(tmp_path, product("a", store="redis: {connection: {url: 'redis://cache/0'}}"),
                        product("b", namespace="other", store=url))
    assert len(found) == 1 and "key prefix '' overlaps 'a:'" in found[0]
    other_database = url.replace("6379/0", "6379/1")
    (tmp_path / "p1.yaml").write_text(product("b", namespace="other", store=other_database))
    assert scan_paths([tmp_path]).findings == []


def test_two_products_may_not_share_a_dead_letter_topic(tmp_path: Path) -> None:
    dlt = "  errors: {deadLetterTopic: shared.dlq}\n"
    found = scan_folder(tmp_path, product("a", extra=dlt), product("b", namespace="other", extra=dlt))
    assert found == [f"{tmp_path}/p1.yaml:15:29: spec.errors.deadLetterTopic: dead-letter topic 'shared.dlq' is "
                     f"also the dead-letter topic of product 'a' ({tmp_path}/p0.yaml:15:29)"]


def test_a_product_that_sends_no_dead_letters_claims_no_topic(tmp_path: Path) -> None:
    dlt = "  errors: {deadLetterTopic: shared.dlq, mode: %s}\n"
    assert scan_folder(tmp_path, product("a", extra=dlt % "deadLetter"), product("b", extra=dlt % "skip"),
                       product("c", extra=dlt % "stop")) == []


def test_equal_names_in_two_namespaces_share_the_default_dead_letter_topic(tmp_path: Path) -> None:
    found = scan_folder(tmp_path, product("a"), product("a", namespace="other", store="postgres: {}"))
    assert len(found) == 1
    assert "p1.yaml:4:9: metadata.name: dead-letter topic 'a.dlq' (the default, from metadata.name: set " \
           "spec.errors.deadLetterTopic) is also the dead-letter topic of product 'a'" in found[0]


def test_dead_letters_may_not_go_to_another_products_source(tmp_path: Path) -> None:
    found = scan_folder(tmp_path, product("a", topic="b.dlq"), product("b", store="postgres: {}"))
    assert len(found) == 1 and "dead-letter topic 'b.dlq' (the default" in found[0]
    assert f"is the source topic of product 'a' ({tmp_path}/p0.yaml:8:12)" in found[0]


def test_the_examples_validate_together(tmp_path: Path) -> None:
    scan = scan_paths([ROOT / "specs"])
    assert scan.findings == [] and len(scan.specs) == 5  # specs/avro/ and specs/protobuf/ included


def test_store_identity_ignores_credentials_and_parameters() -> None:
    def identity(url: str) -> tuple[str, ...]:
        return store_identity("ns", StoreSpec.model_validate({"name": "s", "redis": {"connection": {"url": url}}}))

    assert identity("redis://:pw@Cache:6379/0?ssl_cert_reqs=none") == identity("redis://cache")
    assert identity("redis://cache/2") != identity("redis://cache/0")
    assert identity("redis://cache:6380") != identity("redis://cache")
    assert identity("redis://cache:notaport") == ("text", "redis", "redis://cache:notaport")


@pytest.mark.parametrize(("start", "ok"), [
    ("1970-01-01T00:00:00Z", True), ("1969-12-31T23:59:59.999Z", False), ("0001-01-01T00:00:00+01:00", False),
])
def test_start_from_cannot_be_before_kafkas_first_timestamp(start: str, ok: bool) -> None:
    text = product("a").replace("    topic: orders.v1\n", f"    topic: orders.v1\n    startFrom: {start}\n")
    found = messages(text)
    assert (found == []) == ok, found
    if not ok:
        assert found == [f"spec.source.startFrom: '{start}' is before 1970-01-01T00:00:00Z, where Kafka's "
                         "timestamps start: use earliest"]


def test_validate_marks_only_the_files_without_findings_valid(tmp_path: Path) -> None:
    scan_folder(tmp_path, product("a", store="redis: {keyPrefix: ''}"), product("b"))
    result = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "p1.yaml:14:7: spec.stores[0].redis: key prefix 'b:' overlaps '' of store 's' of product 'a'" in result.output
    assert "✓" in result.output and "p0.yaml: a" in result.output and "p1.yaml: b" not in result.output


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    order_id: event.order_id\n", "    !!int order_id: event.order_id\n", "spec.yaml:10:5: invalid YAML: "
     "'order_id' cannot be read as !!int"),
    ("    topic: orders.v1\n", "    topic: !!float orders.v1\n", "spec.yaml:8:12: invalid YAML: "
     "'orders.v1' cannot be read as !!float"),
    ("    topic: orders.v1\n", "    topic: !!bool orders.v1\n", "spec.yaml:8:12: invalid YAML: "
     "'orders.v1' cannot be read as !!bool"),
    ("    topic: orders.v1\n", "    topic: !!timestamp orders.v1\n", "spec.yaml:8:12: invalid YAML: "
     "'orders.v1' cannot be read as !!timestamp"),
])
def test_a_value_its_tag_cannot_read_is_located(old: str, new: str, expected: str) -> None:
    assert [str(f) for f in findings_of(product("a").replace(old, new))] == [expected]


@pytest.mark.parametrize("table", ["_provisioner_order_markers", "_provisioner_order_horizon"])
def test_the_order_tables_of_a_schema_are_reserved(table: str) -> None:
    found = messages(product("reserved-order", store=f"postgres: {{table: {table}}}"))
    assert any(f"{table!r} is reserved for order markers" in message and "spec.stores[0].postgres.table" in message
               for message in found), found
