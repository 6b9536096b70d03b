"""Deterministic generators of realistic test events: orders, customer profiles, device readings.

Called by `provisioner dev generate`, benchmarks and tests. Each generator is a pure function of
(count, seed, start time): it yields `(key, value)` pairs, `value` None being a tombstone, and
the same arguments always yield the same events.

- `orders` (topic orders.v1, keyed by order_id): `{"type": "OrderPlaced"|"OrderShipped"|
  "OrderCancelled", "order_id": "o123", "amount": 123.45, "qty": 2, "customer": {"id": "c42",
  "tier": "gold"|"silver"|"bronze"}, "ts": RFC 3339}`. Every shipped or cancelled order was
  placed earlier in the stream; `amount` is always a JSON double (it has a fraction).
- `customers` (customers.v1, keyed by customer id): profile upserts, and tombstones for deletions.
- `readings` (readings.v1, keyed by device_id): `{"device_id": "d1", "temperature": 21.5,
  "humidity": 40, "at": RFC 3339}`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["DEFAULT_START", "DEFAULT_TOPICS", "GENERATORS", "customers", "orders", "readings"]

Event = tuple[str, dict[str, Any] | None]
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
TIERS = ("gold", "silver", "bronze")
TIER_WEIGHTS = (1, 3, 6)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tier(rng: random.Random) -> str:
    return rng.choices(TIERS, weights=TIER_WEIGHTS)[0]


def orders(count: int, seed: int = 0, start: datetime = DEFAULT_START, customers_count: int = 500) -> Iterator[Event]:
    """`count` order events: ~70% placements, the rest ships or cancels of earlier placed orders."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
    moment = start
    # Open orders (not yet shipped or cancelled) with the fields their follow-up events repeat.
    open_orders: list[dict[str, Any]] = []
    customer_tiers: dict[str, str] = {}
    next_order = 1
    for _ in range(count):
        moment += timedelta(milliseconds=rng.randint(1, 2000))
        if open_orders and rng.random() < 0.3:
            placed = open_orders.pop(rng.randrange(len(open_orders)))
            kind = "OrderShipped" if rng.random() < 0.8 else "OrderCancelled"
            event = {**placed, "type": kind, "ts": _rfc3339(moment)}
        else:
            customer_id = f"c{rng.randint(1, customers_count)}"
            tier = customer_tiers.setdefault(customer_id, _tier(rng))
            event = {
                "type": "OrderPlaced",
                "order_id": f"o{next_order}",
                # Long-tailed like real baskets (median ~55, some above 300); rounded to cents.
                "amount": round(rng.lognormvariate(4.0, 0.9), 2),
                "qty": rng.randint(1, 5),
                "customer": {"id": customer_id, "tier": tier},
                "ts": _rfc3339(moment),
            }
            next_order += 1
            open_orders.append({k: event[k] for k in ("order_id", "amount", "qty", "customer")})
        yield str(event["order_id"]), {
            "type": event["type"], "order_id": event["order_id"], "amount": event["amount"],
            "qty": event["qty"], "customer": dict(event["customer"]), "ts": event["ts"],
        }


_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman")
_COUNTRIES = ("FR", "DE", "US", "GB", "JP", "BR", "IN", "NL")


def customers(count: int, seed: int = 0, start: datetime = DEFAULT_START, population: int = 200) -> Iterator[Event]:
    """`count` profile events over `population` customers: upserts, ~5% tombstones (deletions)."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
    moment = start
    existing: set[str] = set()
    for _ in range(count):
        moment += timedelta(milliseconds=rng.randint(1, 5000))
        customer_id = f"c{rng.randint(1, population)}"
        if customer_id in existing and rng.random() < 0.05:
            existing.discard(customer_id)
            yield customer_id, None
            continue
        existing.add(customer_id)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        yield customer_id, {
            "id": customer_id,
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{customer_id[1:]}@example.com",
            "tier": _tier(rng),
            "country": rng.choice(_COUNTRIES),
            "marketing_opt_in": rng.random() < 0.4,
            "updated_at": _rfc3339(moment),
        }


def readings(count: int, seed: int = 0, start: datetime = DEFAULT_START, devices: int = 20) -> Iterator[Event]:
    """`count` sensor readings from `devices` devices, each drifting around its own baseline."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
    moment = start
    baselines = {f"d{n}": (rng.uniform(17.0, 25.0), rng.uniform(30.0, 60.0)) for n in range(1, devices + 1)}
    for _ in range(count):
        moment += timedelta(milliseconds=rng.randint(100, 1000))
        device_id = f"d{rng.randint(1, devices)}"
        temperature, humidity = baselines[device_id]
        temperature += rng.gauss(0.0, 0.3)
        humidity = min(100.0, max(0.0, humidity + rng.gauss(0.0, 1.0)))
        baselines[device_id] = (temperature, humidity)
        yield device_id, {
            "device_id": device_id,
            "temperature": round(temperature, 1),
            "humidity": round(humidity),
            "at": _rfc3339(moment),
        }


GENERATORS: dict[str, Callable[..., Iterator[Event]]] = {
    "orders": orders,
    "customers": customers,
    "readings": readings,
}
DEFAULT_TOPICS = {"orders": "orders.v1", "customers": "customers.v1", "readings": "readings.v1"}
