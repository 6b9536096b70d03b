"""CPU per product render, the way the operator renders a product's children.

For the operator benchmark's product (bench/operator.py) and each example spec under specs/,
`desired_objects` (the render with an owner, Secrets as `data`) is run N times after one warm-up
render (the operator has rendered other products before: templates loaded, shapes learned); the
best of --rounds of the process's CPU time per render is printed in µs. No servers.

Run: .venv/bin/python bench/render.py [N=2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

import yaml
from common import ROOT

from bench.operator import product as bench_product
from provisioner.kube.reconcile import Settings, desired_objects, parse_product

SETTINGS = Settings(kafka_bootstrap="kafka.platform:9092", credentials_key=b"k" * 32)


def bodies() -> dict[str, dict[str, Any]]:
    found = {"bench/operator.py": bench_product("p-00001", "bench-0")}
    for path in sorted((ROOT / "specs").rglob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if isinstance(document, dict) and document.get("kind") == "DataProduct":
            found[str(path.relative_to(ROOT))] = document
    for number, body in enumerate(found.values()):
        body["metadata"].setdefault("uid", f"uid-{number}")
    return found


def per_render_us(body: Mapping[str, Any], count: int, rounds: int) -> float:
    product = parse_product(body)
    desired_objects(product, body, SETTINGS)
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(count):
            desired_objects(product, body, SETTINGS)
        best = min(best, (time.process_time() - started) / count)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name, body in bodies().items():
        print(f"{name}: {per_render_us(body, args.count, args.rounds):.0f} µs per render")


if __name__ == "__main__":
    main()
