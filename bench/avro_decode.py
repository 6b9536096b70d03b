"""Microseconds per record of the consumer's decoders on the orders of bench/hydrate_avro.py, no
broker or registry: its Avro decode (a reader compiled for the schema), the same through fastavro
and the conversion to CEL values (the reader for schemas it does not compile), and its JSON decode
of the same orders. The goal: Avro at least as fast as JSON. Best of many short runs, each decoder
in turn, so that a busy machine disturbs all alike.

Run: .venv/bin/python bench/avro_decode.py [RECORDS=2000] [--profile]
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydrate_avro import ORDER, encoded_orders

from provisioner.formats.avro import AvroFormat, fastavro_reader, parse_avro
from provisioner.formats.schemas import RegisteredSchema, StaticSchemas
from provisioner.pipeline.process import decode_value


def per_record(decode: Callable[[bytes], Any], values: list[bytes], rounds: int = 3) -> float:
    best = min(min(timeit.repeat(lambda: [decode(v) for v in values], number=1, repeat=50)) for _ in range(rounds))
    return best / len(values) * 1e6


def main() -> None:
    count = int(next((a for a in sys.argv[1:] if a.isdigit()), "2000"))
    registered = RegisteredSchema("AVRO", json.dumps(ORDER))
    orders = encoded_orders(count, 1)
    avro_values = [a for _, a, _ in orders]
    json_values = [j for _, _, j in orders]
    ours = AvroFormat(StaticSchemas({1: registered})).decode
    reference = fastavro_reader(1, parse_avro(registered, []))
    assert ours(avro_values[0]) == reference(avro_values[0])
    avro_us, fastavro_us, json_us = (per_record(ours, avro_values), per_record(reference, avro_values),
                                     per_record(decode_value, json_values))
    print(f"Avro (compiled reader)          {avro_us:6.2f} µs per record")
    print(f"Avro (fastavro + conversion)    {fastavro_us:6.2f} µs per record")
    print(f"JSON                            {json_us:6.2f} µs per record")
    print(f"Avro/JSON = {avro_us / json_us:.2f}  (goal <= 1)")
    if "--profile" in sys.argv:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [ours(v) for v in avro_values * 5])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(10)


if __name__ == "__main__":
    main()
