"""Day two against a real broker and real stores: `deadletters` reads what the consumers refused,
`test --dead-letters` tries a fix on them, `explain` tells the history of a key.

Each test runs `provisioner up --until-caught-up` into embedded Redis and Postgres, then the
commands as a user runs them (subprocesses, their output parsed).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, cast

import redis
import yaml

from provisioner.local.session import LocalSession
from provisioner.runtime.history import KeyedStore, explain_key
from tests.integration import harness as h
from tests.integration.test_local_runtime import _cli, _ok

# About 1 MB: the dead letter (this value, its key and headers) must stay under the producer's
# default message.max.bytes (1,000,000).
# Near a megabyte, but under what a dead letter carries whole (MAX_DEAD_LETTER_BYTES, headers included).
ONE_MB = 880_000


def _spec(path: Path, name: str, topic: str, *, fixed: bool = False) -> Path:
    """The orders product with two stores; `fixed` tolerates a missing qty (the filter's dead letters)."""
    fields = dict(h.ORDER_FIELDS)
    filter_ = "event.type == 'OrderCancelled' || (event.type == 'OrderPlaced' && event.qty >= 0)"
    if fixed:
        filter_ = "event.type == 'OrderCancelled' || (event.type == 'OrderPlaced' && (!has(event.qty) || event.qty >= 0))"
        fields["total"] = "event.amount * double(has(event.qty) ? event.qty : 1)"
        fields["qty"] = "has(event.qty) ? event.qty : 1"
    document = {
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": name, "namespace": "itest"},
        "spec": {
            "source": {"topic": topic, "schema": h.ORDER_SCHEMA},
            "filter": filter_, "delete": "event.type == 'OrderCancelled' && event.confirmed",
            "fields": fields, "key": "order_id",
            "stores": [{"name": "cache", "redis": {}}, {"name": "db", "postgres": {}},
                       {"name": "doc", "redis": {"structure": "json", "keyPrefix": f"doc-{name}:"}}],
            "errors": {"mode": "deadLetter", "deadLetterTopic": f"{name}.dlq"},
            "consumer": {"batchSize": 500, "batchLatency": "50ms"},
        },
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _placed(order: str, amount: float = 20.5, qty: int | None = 2, **extra: Any) -> h.Event:
    event: dict[str, Any] = {"type": "OrderPlaced", "amount": amount, "customer": {"id": "c1"}, **extra}
    if qty is not None:
        event["qty"] = qty
    return order.encode(), json.dumps(event).encode(), []


def _cancelled(order: str) -> h.Event:
    return order.encode(), json.dumps({"type": "OrderCancelled", "confirmed": True, "customer": {"id": "c1"}}).encode(), []


def _json(result: Any) -> Any:
    return json.loads(_ok(result))


def test_dead_letters_are_read_grouped_and_a_fix_is_tried_on_them(tmp_path: Path, kafka_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    name, topic = f"dl-{suffix}", f"it.dl.{suffix}"
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    poison = h.poison_events()
    events: list[h.Event] = [_placed(f"o-{n}") for n in range(30)]
    events += [poison["decode"], poison["schema"], poison["delete"], poison["key"], poison["store"]]
    events += [poison["fields"], (b"bad-fields-2", poison["fields"][1], [])]
    # A missing qty fails the filter: the records a fixed spec takes in.
    events += [_placed(f"nq-{n}", qty=None) for n in range(3)]
    binary = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 5
    huge = b"\x1b[31m\x1b]0;owned\x07" + b"y" * ONE_MB
    events += [(b"bin", binary, [("trace", b"\x1b[2J")]), (b"huge", huge, [])]
    h.produce(kafka_bootstrap, topic, events)
    spec = _spec(tmp_path / "orders.yaml", name, topic)
    state = tmp_path / "state"
    try:
        _ok(_cli(state, kafka_bootstrap, "up", str(spec), "--until-caught-up", "--timeout", "120"))
        records = h.read_topic(kafka_bootstrap, topic)
        product = h.load_product(spec)
        expected = {s.name: Counter(dl.stage for _, dl in h.expected_for(product, s, records).dead)
                    for s in product.spec.stores}
        status = {s["store"]: s["dead_letters"] for s in _json(_cli(state, kafka_bootstrap, "status", "-o", "json"))["stores"]}
        assert status == {store: sum(stages.values()) for store, stages in expected.items()}
        h.read_dead_letters(kafka_bootstrap, f"{name}.dlq", sum(status.values()))

        report = _json(_cli(state, kafka_bootstrap, "deadletters", name, "-o", "json", "--limit", "1000"))
        assert report["total"] == sum(status.values())
        by_store_stage: Counter[tuple[str, str]] = Counter()
        for group in report["groups"]:
            by_store_stage[(group["store"], group["stage"])] += group["count"]
            assert group["firstSeen"] <= group["lastSeen"]
            assert 1 <= len(group["samples"]) <= min(3, group["count"])
        assert by_store_stage == Counter({(store, stage): n for store, stages in expected.items()
                                          for stage, n in stages.items()})
        assert {stage for _, stage in by_store_stage} == {"decode", "schema", "filter", "delete", "fields", "key", "store"}
        filter_groups = [g for g in report["groups"] if g["store"] == "db" and g["stage"] == "filter"]
        assert sum(g["count"] for g in filter_groups) == 3, filter_groups
        assert all("qty" in g["message"] for g in filter_groups)

        # The binary and the 1 MB values, shown truncated; no escape character reaches the output.
        listed = _json(_cli(state, kafka_bootstrap, "deadletters", name, "--store", "cache", "--stage", "decode",
                            "--list", "-o", "json"))["deadLetters"]
        values = {item["key"]: item for item in listed}
        assert set(values) == {"bin", "huge", "bad-decode"}
        assert values["bin"]["value"].startswith("<binary 1.3 KB: 89504e470d0a1a0a")
        assert values["bin"]["headers"] == {"trace": "\\x1b[2J"}
        assert len(values["huge"]["value"]) < 400 and values["huge"]["value"].endswith(f"({(len(huge)) / 1024:.1f} KB in all)")
        assert values["huge"]["value"].startswith("\\x1b[31m\\x1b]0;owned\\x07yyy")
        for item in listed:
            source = item["source"]
            assert source["topic"] == topic and 0 <= source["partition"] < 3 and source["offset"] >= 0
        text = _cli(state, kafka_bootstrap, "deadletters", name)
        listing = _cli(state, kafka_bootstrap, "deadletters", name, "--list", "--limit", "5")
        for result in (text, listing):
            _ok(result)
            assert "\x1b" not in result.stdout and "\x07" not in result.stdout
        assert len(listing.stdout.strip().splitlines()) == 6  # five lines and the count

        # Try the fix: the filter's dead letters would now pass, the rest still fail.
        fixed = _spec(tmp_path / "fixed.yaml", name, topic, fixed=True)
        tried = _cli(state, kafka_bootstrap, "test", str(fixed), "--dead-letters", "--store", "db", "-o", "json")
        assert tried.returncode == 1, tried.stderr  # some still fail
        (result,) = json.loads(tried.stdout)
        passing = [item for item in result["deadLetters"] if item["passes"]]
        assert result["passing"] == len(passing) == 3 and result["failing"] == sum(expected["db"].values()) - 3
        assert all(item["store"] == "db" and item["was"]["stage"] == "filter" for item in passing)
        gained = {item["now"]["upsert"]["key"][0] for item in passing}
        assert gained == {"nq-0", "nq-1", "nq-2"}
        still = next(item for item in result["deadLetters"] if item["key"] == "bad-store")
        assert not still["passes"] and still["now"]["deadLetter"]["stage"] == "store"

        # Commit it: the store is rebuilt from the log and gains exactly those rows.
        session = LocalSession.open(state)
        with session.open_store(session.target(name, "db")) as store:
            before = {row["order_id"] for row in store.inspect(10_000)}
        spec.write_text(fixed.read_text(encoding="utf-8"), encoding="utf-8")
        _ok(_cli(state, kafka_bootstrap, "up", str(spec), "--until-caught-up", "--timeout", "120"))
        session = LocalSession.open(state)
        with session.open_store(session.target(name, "db")) as store:
            after = {row["order_id"] for row in store.inspect(10_000)}
        assert after - before == gained and before <= after
    finally:
        _cli(state, kafka_bootstrap, "down", "--purge")


def _explain(session: LocalSession, name: str, store: str, key: str, kafka: str, **options: Any) -> dict[str, Any]:
    """`explain`'s report, in process (the command's own function; the CLI is run for a few below)."""
    target = session.target(name, store)
    product = target.require_product()
    with session.open_store(target) as handle:
        found = explain_key(product, product.store(store), cast("KeyedStore", handle), kafka, (key,), **options)
    return json.loads(json.dumps(found.to_dict(), default=str))


def test_explain_tells_the_history_of_a_key_and_checks_the_row(tmp_path: Path, kafka_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    name, topic = f"ex-{suffix}", f"it.ex.{suffix}"
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    poison = h.poison_events()
    events: list[h.Event] = [_placed(f"noise-{n}") for n in range(40)]
    events += [_placed("k-up", 10.0), _placed("k-upd", 10.0), _placed("k-upd", 30.0, qty=3)]
    events += [_placed("k-del"), _cancelled("k-del")]
    events += [_placed("k-re", 1.0), _cancelled("k-re"), _placed("k-re", 7.0, qty=5)]
    events += [(b"k-filt", json.dumps({"type": "OrderShipped"}).encode(), [])]
    events += [_placed("k-dl", 5.0), (b"k-dl", poison["fields"][1], [])]
    h.produce(kafka_bootstrap, topic, events)
    spec = _spec(tmp_path / "orders.yaml", name, topic)
    state = tmp_path / "state"
    try:
        _ok(_cli(state, kafka_bootstrap, "up", str(spec), "--until-caught-up", "--timeout", "120"))
        records = h.read_topic(kafka_bootstrap, topic)
        session = LocalSession.open(state)
        partitions = set()
        for store in ("cache", "db", "doc"):
            for key, last_kind, row_total in (("k-up", "upsert", 20.0), ("k-upd", "upsert", 90.0),
                                              ("k-del", "delete", None), ("k-re", "upsert", 35.0),
                                              ("k-filt", "skip", None), ("k-dl", "deadLetter", 10.0)):
                found = _explain(session, name, store, key, kafka_bootstrap)
                history = [(r.partition, r.offset) for r in records if r.key == key.encode()]
                assert [(r["partition"], r["offset"]) for r in found["records"]] == history
                assert found["partitionShortcut"] and found["partitionsRead"] == [history[0][0]]
                partitions.add(history[0][0])
                assert found["verdict"] == "match", found
                assert all(r["applied"] for r in found["records"])
                assert last_kind in found["records"][-1]
                if row_total is None:
                    assert found["row"] is None and found["producedBy"] is None
                else:
                    assert found["row"] is not None and float(found["row"]["total"]) == row_total
                    decisive = [r for r in found["records"] if "upsert" in r][-1]
                    assert found["producedBy"] == {"partition": decisive["partition"], "offset": decisive["offset"]}
                every = _explain(session, name, store, key, kafka_bootstrap, all_partitions=True)
                assert every["records"] == found["records"] and every["partitionsRead"] == [0, 1, 2]
            dead = _explain(session, name, store, "k-dl", kafka_bootstrap)
            assert dead["records"][-1]["deadLetter"]["stage"] == "fields"
            assert _explain(session, name, store, "nobody", kafka_bootstrap)["verdict"] == "unseen"
            later = _explain(session, name, store, "k-up", kafka_bootstrap, since_ms=4_102_444_800_000)  # 2100
            assert later["records"] == [] and later["verdict"] == "unknown"  # the row is older than --since
        assert len(partitions) > 1  # the keys' records are spread over several partitions

        # The command itself: JSON, a key never seen, and a row changed behind the consumer's back.
        shown = _json(_cli(state, kafka_bootstrap, "explain", name, "--store", "db", "--key", "k-re", "-o", "json"))
        assert shown["verdict"] == "match" and [next(iter(set(r) & {"upsert", "delete"})) for r in shown["records"]] \
            == ["upsert", "delete", "upsert"]
        assert "never seen" in _ok(_cli(state, kafka_bootstrap, "explain", name, "--store", "cache", "--key", "nobody"))
        url = session.store_url(session.target(name, "cache"))
        client = redis.Redis.from_url(url)
        client.hset(f"{name}:k-upd", "total", "1.0")
        client.close()
        tampered = _cli(state, kafka_bootstrap, "explain", name, "--store", "cache", "--key", "k-upd", "-o", "json")
        assert tampered.returncode == 1 and json.loads(tampered.stdout)["verdict"] == "mismatch"

        # A spec file whose product never sent a dead letter (its topic does not exist yet).
        quiet = _spec(tmp_path / "quiet.yaml", f"quiet-{suffix}", topic)
        assert _json(_cli(state, kafka_bootstrap, "deadletters", str(quiet), "-o", "json"))["groups"] == []
    finally:
        _cli(state, kafka_bootstrap, "down", "--purge")
