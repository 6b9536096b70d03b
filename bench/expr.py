"""Benchmark: compiled CEL programs vs the reference `cel` module, per evaluation, in one run.

Run with `.venv/bin/python bench/expr.py`.  The reference is used as the pipeline would use it:
compiled once, executed with a fresh context (event and record) per event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import cel

from provisioner.expr import compile_expression

EXPRESSIONS = [
    "event.type == 'OrderPlaced' && event.amount >= 100.0 && event.customer.tier == 'gold'",
    "event.amount * double(event.qty)",
    "event.customer.id",
    "has(event.deleted) && event.deleted",
    "event.items.exists(i, i.price > 100.0)",
    "event.type == 'OrderCancelled'",
    "record.topic == 'orders.v1' && event.qty > 1",
]

EVENT = {
    "type": "OrderPlaced", "order_id": "o-1001", "amount": 150.0, "qty": 2,
    "customer": {"id": "c-7", "tier": "gold", "name": "Ada"},
    "items": [{"sku": "a", "price": 20.0}, {"sku": "b", "price": 130.0}, {"sku": "c", "price": 5.5}],
}
RECORD = {"key": "o-1001", "headers": {}, "topic": "orders.v1", "partition": 0, "offset": 12,
          "timestamp": datetime(2024, 1, 1, tzinfo=UTC)}


def per_call_ns(fn: Callable[[], Any], min_time: float = 0.3) -> float:
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / n * 1e9
        n *= 2


def main() -> None:
    print(f"{'expression':<90} {'ours ns':>9} {'cel ns':>9} {'speedup':>8}")
    for source in EXPRESSIONS:
        program = compile_expression(source)
        evaluate = program.evaluate
        reference = cel.compile(source)
        ours_value = evaluate(EVENT, RECORD)
        ref_value = reference.execute({"event": EVENT, "record": RECORD})
        assert ours_value == ref_value, (source, ours_value, ref_value)
        ours = per_call_ns(lambda evaluate=evaluate: evaluate(EVENT, RECORD))
        ref = per_call_ns(lambda reference=reference: reference.execute({"event": EVENT, "record": RECORD}))
        print(f"{source:<90} {ours:>9.0f} {ref:>9.0f} {ref / ours:>7.1f}x")


if __name__ == "__main__":
    main()
