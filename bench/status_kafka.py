"""What the operator's status refreshes ask of Kafka at a first round, with and without the
operator saying whose refreshes come next.

N products in 10 namespaces (one topic each), never described before, refreshed one after the
other as the operator's first round does: each refresh reads its consumer group's members and its
dead-letter topic, and one in four the topic's end offsets (the operator reuses them for a
second: 320 reads in 1,180 refreshes of `bench/operator.py --products 1000`). Twice, on one
KafkaObserver each: with `expect_groups` told the next 50 products' groups before each refresh
(what the operator's queue does), and without (every group then new, described alone). Prints
the Kafka requests by kind and the CPU per refresh (this process: the observer's thread,
kafka-python's network thread and the loop asking).

Run: .venv/bin/python bench/status_kafka.py [--products N]   (a dev broker is started, unless
PROVISIONER_KAFKA_BOOTSTRAP names one)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

from provisioner.local import devbroker  # noqa: E402
from provisioner.stream.observe import KafkaObserver  # noqa: E402

NAMESPACES = 10
AHEAD = 50  # the operator's `_EXPECTED`


def first_round(bootstrap: str, count: int, *, expect: bool) -> str:
    run = uuid.uuid4().hex[:8]
    topics = [f"bench.{run}.{i}" for i in range(NAMESPACES)]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(t, 1, 1) for t in topics])
    finally:
        admin.close()
    products = [(topics[i * NAMESPACES // count], f"provisioner.bench-{i * NAMESPACES // count}.p{run}{i}.cache")
                for i in range(count)]
    observer = KafkaObserver(bootstrap, timeout=10.0)
    sent: Counter[str] = Counter()

    def count_requests() -> None:  # kafka-python's sends, by request kind
        manager = observer._client()._manager
        real = manager.send
        manager.send = lambda request, *a, **k: sent.update([type(request).__name__]) or real(request, *a, **k)

    try:
        observer._thread.submit(count_requests).result()
        for topic in topics:  # connected, topics described and listed: the steady part left out
            observer.end_offsets(topic)
        observer.dead_letters(f"bench.{run}.dlq")
        sent.clear()
        started, cpu = time.monotonic(), time.process_time()
        for i, (topic, group) in enumerate(products):
            if expect:
                observer.expect_groups(g for _, g in products[i:i + AHEAD])
            if i % 4 == 0:
                observer.end_offsets(topic)
            observer.group_members(group)
            observer.dead_letters(f"bench.{run}.dlq")
        cpu, wall = time.process_time() - cpu, time.monotonic() - started
    finally:
        observer.close()
    total = sum(sent.values())
    kinds = ", ".join(f"{kind.removesuffix('Request')} {n}" for kind, n in sent.most_common())
    return (f"{'expected' if expect else 'one by one'}: {count} refreshes, {total} requests "
            f"({total / count:.2f}/refresh: {kinds}); CPU {cpu * 1000 / count:.2f} ms/refresh, "
            f"wall {wall * 1000 / count:.2f} ms/refresh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1000)
    args = parser.parse_args()
    bootstrap = os.environ.get(devbroker.BOOTSTRAP_ENV, "").strip()
    with tempfile.TemporaryDirectory(prefix="bench-status-kafka-") as state:
        if not bootstrap:
            bootstrap = devbroker.up(Path(state), port=0)
        try:
            for expect in (False, True):
                print(first_round(bootstrap, args.products, expect=expect), flush=True)
        finally:
            if not os.environ.get(devbroker.BOOTSTRAP_ENV, "").strip():
                devbroker.down(Path(state), purge=True)


if __name__ == "__main__":
    main()
