"""How long `provisioner explain` takes on a large topic, with and without the partition shortcut.

N records (default 200,000) of 20,000 customer keys go to a 6-partition topic, keyed by the record
key (Kafka's default partitioner); one key is then explained against an empty Redis store: reading
only the key's partition (the shortcut) and scanning every partition (`--all-partitions`). Each
timing is the whole `explain_key` call (offsets, the read, the pipeline on the key's records, the
store read); the median of --rounds runs is printed, with the ratio.

It starts its own broker and embedded servers under a temporary state directory, unless
PROVISIONER_KAFKA_BOOTSTRAP, BENCH_REDIS_URL and BENCH_POSTGRES_URL are all set.

Run: .venv/bin/python bench/explain.py [N=200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path

from common import median, produce_records, with_servers

from provisioner.runtime.history import explain_key
from provisioner.spec.loader import load_text
from provisioner.stores.redis import RedisStore

PARTITIONS = 6
KEYS = 20_000
SPEC = """
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {{name: bench-explain}}
spec:
  source: {{topic: {topic}}}
  filter: "event.tier != 'none'"
  fields: {{name: event.name, tier: event.tier, n: event.n}}
  stores: [{{name: cache, redis: {{}}}}]
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("records", nargs="?", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    def body(bootstrap: str, redis_url: str, _postgres_url: str, _folder: Path) -> None:
        topic = f"bench.explain.{uuid.uuid4().hex[:8]}"
        tiers = ("gold", "silver", "none")
        records = ((f"c-{n % KEYS}".encode(),
                    json.dumps({"name": f"customer {n % KEYS}", "tier": tiers[n % 3], "n": n}).encode())
                   for n in range(args.records))
        started = time.monotonic()
        produce_records(bootstrap, topic, records, partitions=PARTITIONS)
        print(f"produced {args.records} records to {PARTITIONS} partitions in {time.monotonic() - started:.1f}s")
        loaded, findings = load_text(SPEC.format(topic=topic), "bench.yaml")
        assert not findings, findings
        product = loaded[0].product
        store_spec = product.store("cache")
        store = RedisStore(product, store_spec, redis_url)
        timings: dict[bool, list[float]] = {False: [], True: []}
        found = {}
        try:
            for _ in range(args.rounds):
                for every in (False, True):
                    began = time.monotonic()
                    result = explain_key(product, store_spec, store, bootstrap, ("c-4242",), all_partitions=every)
                    timings[every].append(time.monotonic() - began)
                    found[every] = len(result.steps)
        finally:
            store.close()
        assert found[False] == found[True] == args.records // KEYS, found
        shortcut, scan = median(timings[False]), median(timings[True])
        print(f"explain one key of {args.records} records ({found[True]} of them the key's), median of "
              f"{args.rounds}: its partition only {shortcut:.2f}s, every partition {scan:.2f}s "
              f"({scan / shortcut:.1f}x; {args.records / scan / 1000:.0f}k records/s scanned)")

    with_servers(body, prefix="bench-explain-")


if __name__ == "__main__":
    main()
