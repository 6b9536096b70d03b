"""`provisioner doctor` against real parts: a healthy plaintext setup passes every check; on the
secured dev broker (SASL_SSL, SCRAM, ACLs) a wrong password and a missing ACL each fail the check
they concern with a hint, skip what cannot be asked after, exit 1 and never print the password."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType  # type: ignore[attr-defined]

from provisioner.local import embedded, securebroker
from provisioner.stream.kafka import ensure_topic
from tests.integration import harness as h
from tests.integration.secured import CANARY, USERS, grant, properties
from tests.integration.test_consumer_stores import STORES

pytestmark = pytest.mark.integration


def doctor(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
           state_dir: Path | None = None) -> tuple[int, dict[str, Any], str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_KAFKA", "PROVISIONER_STORE"))}
    result = subprocess.run([sys.executable, "-m", "provisioner", "doctor", *args, "--state-dir",
                             str(state_dir or tmp_path / "state"), "-o", "json"],
                            capture_output=True, text=True, env={**base, **(env or {})}, cwd=str(h.ROOT),
                            timeout=300, check=False)
    assert CANARY not in result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout), result.stdout + result.stderr


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def spec_with_stores(tmp_path: Path, name: str, topic: str) -> Path:
    stores = [{**STORES["redis-hash"], "redis": {**STORES["redis-hash"]["redis"],
                                                 "connection": {"url": "${CACHE_URL}"}}},
              {**STORES["postgres-upsert"], "postgres": {**STORES["postgres-upsert"]["postgres"],
                                                         "connection": {"url": "${DB_URL}"}}}]
    return h.order_spec(tmp_path, name=name, topic=topic, stores=stores)


def test_a_healthy_plaintext_setup_passes_every_check(kafka_bootstrap: str, redis_server: Any,
                                                      postgres_server: Any, topic: str, tmp_path: Path) -> None:
    path = spec_with_stores(tmp_path, "doctor-healthy", topic)
    h.create_topic(kafka_bootstrap, topic)
    code, report, text = doctor(tmp_path, str(path), "--bootstrap", kafka_bootstrap,
                                env={"CACHE_URL": redis_server.url, "DB_URL": postgres_server.url})
    assert code == 0, text
    checks = by_name(report)
    assert checks["kafka broker answers"]["status"] == "ok"
    assert checks["kafka authentication"]["status"] == "ok"
    assert checks[f"kafka topic {topic} readable"]["detail"] == "3 partitions, READ allowed"
    assert checks["kafka dead-letter topic doctor-healthy.dlq writable"]["status"] == "ok"
    assert checks["kafka group provisioner.itest.doctor-healthy.cache joinable"]["status"] == "ok"
    for store in ("cache", "db"):
        check = checks[f"store itest/doctor-healthy/{store}"]
        # Plain connections work but are not verified: a warning, not a failure.
        assert check["status"] == "warn" and "written and undone" in check["detail"], check
        assert ":***@" in check["detail"]
    assert report["ok"] is True


def test_a_missing_topic_and_an_unset_store_variable_fail_with_hints(kafka_bootstrap: str, tmp_path: Path) -> None:
    path = spec_with_stores(tmp_path, "doctor-missing", "doctor.missing.topic")
    code, report, text = doctor(tmp_path, str(path), "--bootstrap", kafka_bootstrap, "--store", "db")
    assert code == 1, text
    checks = by_name(report)
    assert checks["kafka topic doctor.missing.topic readable"] == {
        "name": "kafka topic doctor.missing.topic readable", "status": "fail",
        "detail": "topic 'doctor.missing.topic' does not exist",
        "hint": "create it, or correct source.topic in the spec"}
    store = checks["store itest/doctor-missing/db"]
    assert store["status"] == "fail" and "DB_URL is not set" in store["detail"]
    assert "store itest/doctor-missing/cache" not in checks  # --store chose one
    assert "kafka group provisioner.itest.doctor-missing.cache joinable" not in checks
    assert checks["kafka group provisioner.itest.doctor-missing.db joinable"]["status"] == "ok"


def test_a_managed_store_is_checked_in_its_products_space_on_the_embedded_server(
    kafka_bootstrap: str, redis_server: Any, topic: str, tmp_path: Path,
) -> None:
    path = h.order_spec(tmp_path, name="doctor-managed", topic=topic, stores=[STORES["redis-hash"]])
    h.create_topic(kafka_bootstrap, topic)
    # The state directory `up` would have used: its embedded Redis runs there.
    code, report, text = doctor(tmp_path, str(path), "--bootstrap", kafka_bootstrap, state_dir=redis_server.state_dir)
    assert code == 0, text
    check = by_name(report)["store itest/doctor-managed/cache"]
    assert check["status"] == "warn" and "written and undone" in check["detail"]
    # Nothing is left behind in the product's space: the probe's keys were deleted by the script that wrote them.
    server = embedded.find("redis", redis_server.state_dir)
    assert server is not None
    client = redis.Redis.from_url(embedded.space_url(server, "itest", "doctor-managed"))
    try:
        assert client.dbsize() == 0
    finally:
        client.close()
    code, report, _ = doctor(tmp_path, str(path), "--bootstrap", kafka_bootstrap)
    assert code == 0 and by_name(report)["store itest/doctor-managed/cache"]["status"] == "skip"


def secured_spec(tmp_path: Path, name: str, topic: str, redis_server: Any) -> tuple[Path, Any]:
    path = h.order_spec(tmp_path, name=name, topic=topic, stores=[
        {**STORES["redis-hash"], "redis": {**STORES["redis-hash"]["redis"], "connection": {"url": redis_server.url}}}])
    return path, h.load_product(path)


@pytest.mark.parametrize("failure", ["wrong password", "untrusted CA"])
def test_a_refused_login_fails_authentication_and_skips_the_rest(
    secure_broker: securebroker.SecureBroker, redis_server: Any, tmp_path: Path, failure: str,
) -> None:
    path, _ = secured_spec(tmp_path, "doctor-login", "doctor.login", redis_server)
    if failure == "wrong password":
        text = secure_broker.scram_properties("orders", "not-" + CANARY)
        detail, hint = "refused user 'orders' (SCRAM-SHA-512): wrong user name or password", "sasl.password"
    else:
        other_ca, _ = securebroker.make_ca(tmp_path, "other-ca", "some other CA")
        text = secure_broker.scram_properties("orders", CANARY, ca=other_ca)
        detail, hint = "the broker's certificate is not trusted for host 127.0.0.1", "ssl.ca.location"
    code, report, output = doctor(tmp_path, str(path), "--kafka-config", str(properties(tmp_path, text)))
    assert code == 1, output
    checks = by_name(report)
    assert checks["kafka broker answers"]["status"] == "ok"
    authentication = checks["kafka authentication"]
    assert authentication["status"] == "fail"
    assert detail in authentication["detail"] and hint in authentication["hint"]
    assert checks["kafka topic doctor.login readable"]["status"] == "skip"
    assert checks["store itest/doctor-login/cache"]["status"] == "warn"  # the store is checked regardless


def test_missing_acls_are_named_with_the_grant_that_fixes_them(
    secure_broker: securebroker.SecureBroker, redis_server: Any, tmp_path: Path,
) -> None:
    path, product = secured_spec(tmp_path, "doctor-acl", "doctor.acl", redis_server)
    ensure_topic(secure_broker.admin(), "doctor.acl")
    ensure_topic(secure_broker.admin(), product.dead_letter_topic)
    # DESCRIBE but not READ on the topic; READ on the group; nothing on the dead-letter topic.
    grant(secure_broker, "stranger", ResourceType.TOPIC, "doctor.acl", AclOperation.DESCRIBE)
    grant(secure_broker, "stranger", ResourceType.GROUP, "provisioner.itest.doctor-acl", AclOperation.READ,
          pattern=ResourcePatternType.PREFIXED)
    config = properties(tmp_path, secure_broker.scram_properties("stranger", USERS["stranger"]))
    code, report, text = doctor(tmp_path, str(path), "--kafka-config", str(config))
    assert code == 1, text
    checks = by_name(report)
    assert checks["kafka authentication"]["status"] == "ok"
    assert checks["kafka topic doctor.acl readable"] == {
        "name": "kafka topic doctor.acl readable", "status": "fail",
        "detail": "user 'stranger' may not READ topic 'doctor.acl'",
        "hint": "grant READ on topic doctor.acl to User:stranger"}
    dead = checks["kafka dead-letter topic doctor-acl.dlq writable"]
    assert dead["status"] == "fail" and "User:stranger" in dead["hint"]
    assert checks["kafka group provisioner.itest.doctor-acl.cache joinable"]["status"] == "ok"
    # Granted, the same checks pass: nothing was cached or written meanwhile.
    grant(secure_broker, "stranger", ResourceType.TOPIC, "doctor.acl", AclOperation.READ)
    grant(secure_broker, "stranger", ResourceType.TOPIC, product.dead_letter_topic, AclOperation.WRITE)
    code, report, text = doctor(tmp_path, str(path), "--kafka-config", str(config))
    assert code == 0, text
    assert by_name(report)["kafka dead-letter topic doctor-acl.dlq writable"]["detail"] == \
        "WRITE allowed (no record was written)"
