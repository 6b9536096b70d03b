"""Benchmark: compiled CEL programs vs the official implementation (`cel-expr-python`, Google's
cel-cpp runtime) and the `common-expression-language` module (`cel`), per evaluation, in one run.

Run with `.venv/bin/python bench/expr.py`.  Both are used as the pipeline would use them: compiled
once, evaluated with a fresh activation (event and record) per event.  Two tables: typical
expressions on one event, then every expression of the example specs (filter, delete, fields) over
their sample events (specs/events/<topic>.jsonl), errors included as the pipeline meets them.
cel-expr-python cannot take a datetime inside a map, so it gets `record.timestamp` as RFC 3339
text and the expression `timestamp(record.timestamp)` instead.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cel
from cel_expr_python import cel as official_cel
from cel_expr_python.ext import ext_bindings, ext_encoders, ext_math, ext_optional, ext_strings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provisioner.expr import EvaluationError, compile_expression  # noqa: E402
from provisioner.spec.loader import load_paths  # noqa: E402

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


OFFICIAL_ENV = official_cel.NewEnv(
    variables={"event": official_cel.Type.DYN, "record": official_cel.Type.DYN},
    extensions=[ext_strings.ExtStrings(), ext_math.ExtMath(), ext_optional.ExtOptional(),
                ext_bindings.ExtBindings(), ext_encoders.ExtEncoders()])


def official(source: str) -> Callable[[Any, Any], Any]:
    """The official implementation's program as an `evaluate(event, record)` function."""
    program = OFFICIAL_ENV.compile(source.replace("record.timestamp", "timestamp(record.timestamp)"))
    evaluate = program.eval

    def run(event: Any, record: Any) -> Any:
        stamp = record.get("timestamp")
        if isinstance(stamp, datetime):
            record = dict(record, timestamp=stamp.isoformat().replace("+00:00", "Z"))
        return evaluate(data={"event": event, "record": record})
    return run


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
    print(f"{'expression':<90} {'ours ns':>9} {'cpp ns':>9} {'vs cpp':>7} {'cel ns':>9} {'vs cel':>7}")
    for source in EXPRESSIONS:
        program = compile_expression(source)
        evaluate = program.evaluate
        reference = cel.compile(source)
        cpp = official(source)
        ours_value = evaluate(EVENT, RECORD)
        ref_value = reference.execute({"event": EVENT, "record": RECORD})
        cpp_value = cpp(EVENT, RECORD).value()
        assert ours_value == ref_value == cpp_value, (source, ours_value, ref_value, cpp_value)
        ours = per_call_ns(lambda evaluate=evaluate: evaluate(EVENT, RECORD))
        ref = per_call_ns(lambda reference=reference: reference.execute({"event": EVENT, "record": RECORD}))
        off = per_call_ns(lambda cpp=cpp: cpp(EVENT, RECORD))
        print(f"{source:<90} {ours:>9.0f} {off:>9.0f} {off / ours:>6.1f}x {ref:>9.0f} {ref / ours:>6.1f}x")


def _spec_expressions() -> list[tuple[str, str, str, list[Any]]]:
    specs, findings = load_paths([ROOT / "specs"])
    assert not findings, findings
    found = []
    for spec in specs:
        product = spec.product
        if product.spec.source.format != "json":
            continue  # schema'd examples have no JSON events file
        lines = (ROOT / "specs" / "events" / f"{product.spec.source.topic}.jsonl").read_text().splitlines()
        events = [v for v in (json.loads(line).get("value") for line in lines) if v is not None]
        named = [("filter", product.spec.filter), ("delete", product.spec.delete), *product.fields.items()]
        found += [(product.name, name, source, events) for name, source in named if source]
    return found


def main_specs() -> None:
    title = "example spec expression (mean over its sample events)"
    print(f"\n{title:<70} {'ours ns':>9} {'cpp ns':>9} {'vs cpp':>7} {'cel ns':>9} {'vs cel':>7}")
    total_ours = total_ref = total_off = 0.0
    for product, name, source, events in _spec_expressions():
        evaluate = compile_expression(source).evaluate
        reference = cel.compile(source)
        cpp = official(source)
        record = dict(RECORD, key="k1")

        def off_all(cpp: Any = cpp, events: list[Any] = events, record: Any = record) -> None:
            for event in events:
                cpp(event, record)  # errors are values there

        def ours_all(evaluate: Any = evaluate, events: list[Any] = events, record: Any = record) -> None:
            for event in events:
                try:
                    evaluate(event, record)
                except EvaluationError:
                    pass

        def ref_all(reference: Any = reference, events: list[Any] = events, record: Any = record) -> None:
            for event in events:
                try:
                    reference.execute({"event": event, "record": record})
                except (RuntimeError, ValueError, TypeError, KeyError):
                    pass

        ours = per_call_ns(ours_all, 0.2) / len(events)
        ref = per_call_ns(ref_all, 0.2) / len(events)
        off = per_call_ns(off_all, 0.2) / len(events)
        total_ours += ours
        total_ref += ref
        total_off += off
        label = product + "." + name
        print(f"{label:<70} {ours:>9.0f} {off:>9.0f} {off / ours:>6.1f}x {ref:>9.0f} {ref / ours:>6.1f}x")
    print(f"{'all example expressions (sum per event)':<70} {total_ours:>9.0f} {total_off:>9.0f} "
          f"{total_off / total_ours:>6.1f}x {total_ref:>9.0f} {total_ref / total_ours:>6.1f}x")


if __name__ == "__main__":
    main()
    main_specs()
