"""Records per second through the pipeline (decode, schema, filter, delete, fields, key), one core.

For each example spec, its sample events (specs/events/<topic>.jsonl) are varied into N records
and pushed through `Pipeline.process`. For vip-orders, a hand-written Python function doing the same
work is timed in the same run, so the printed ratio shows what the generality costs.

Run: .venv/bin/python bench/pipeline.py [N]
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provisioner.pipeline.ops import DeadLetter, Delete, Record, Upsert  # noqa: E402
from provisioner.pipeline.process import Pipeline  # noqa: E402
from provisioner.spec.loader import load_paths  # noqa: E402

GOAL = 200_000


def records_for(topic: str, count: int) -> list[Record]:
    lines = [json.loads(line) for line in (ROOT / "specs" / "events" / f"{topic}.jsonl").read_text().splitlines()]
    rng = random.Random(42)
    records = []
    for offset in range(count):
        line = rng.choice(lines)
        value: Any = line["value"]
        if isinstance(value, dict):
            value = dict(value)
            for name in ("amount", "temperature"):
                if isinstance(value.get(name), float):
                    value[name] = round(value[name] * rng.uniform(0.5, 2.0), 2)
        key = line.get("key")
        records.append(Record(topic, offset % 3, offset, 1_767_225_600_000 + offset,
                              None if key is None else str(key).encode(),
                              None if value is None else json.dumps(value).encode()))
    return records


def hand_written_vip_orders(record: Record) -> object:
    """vip-orders, as a developer would write it by hand (no CEL error absorption subtleties)."""
    if record.value is None:
        return DeadLetter("key", "tombstone")
    event = json.loads(record.value)
    customer = event["customer"]
    kind = event["type"]
    if customer["tier"] != "gold":
        return None
    if kind == "OrderCancelled":
        return Delete((event["order_id"],))
    amount = event.get("amount")
    if kind != "OrderPlaced" or not isinstance(amount, float) or amount < 100.0:
        return None
    row = {"order_id": event["order_id"], "customer": customer["id"], "total": amount * float(event["qty"]),
           "qty": event["qty"], "placed_at": event["ts"]}
    return Upsert((row["order_id"],), row)


def rate(function: Any, records: list[Record]) -> float:
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for record in records:
            function(record)
        best = max(best, len(records) / (time.perf_counter() - started))
    return best


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    specs, findings = load_paths([ROOT / "specs"])
    if findings:
        raise SystemExit("\n".join(map(str, findings)))
    print(f"{'spec':<20} {'records/s':>12} {'vs goal':>8}")
    for spec in specs:
        if spec.product.spec.source.format != "json":
            continue  # schema'd examples: bench/hydrate.py --avro
        pipeline = Pipeline(spec.product)
        records = records_for(spec.product.spec.source.topic, count)
        ours = rate(pipeline.process, records)
        print(f"{spec.product.name:<20} {ours:>12,.0f} {ours / GOAL:>7.2f}x")
        if spec.product.name == "vip-orders":
            by_hand = rate(hand_written_vip_orders, records)
            print(f"{'  hand-written':<20} {by_hand:>12,.0f}   pipeline/hand-written = {ours / by_hand:.2f}")


if __name__ == "__main__":
    main()
