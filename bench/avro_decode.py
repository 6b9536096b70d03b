"""Microseconds per record of the consumer's decoders on the orders of bench/hydrate_avro.py, no
broker or registry: its Avro decode (the reader it picks for the schema, named: the C program when
the extension is built), the generated Python reader (its fallback), the same through fastavro and
the conversion to CEL values (the reader for schemas neither compiles), and its JSON decode of the
same orders. The goal: Avro at least as fast as JSON. Best of many short runs, each decoder
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

from provisioner.formats.avro import AvroFormat, _failure, fastavro_reader, parse_avro
from provisioner.formats.avro_compiled import compile_reader
from provisioner.formats.avro_program import reader_kind
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
    avro = AvroFormat(StaticSchemas({1: registered}))
    ours = avro.decode
    reference = fastavro_reader(1, parse_avro(registered, []))
    python = compile_reader(parse_avro(registered, []), _failure(1))
    assert python is not None
    assert ours(avro_values[0]) == reference(avro_values[0]) == python(avro_values[0])
    kind = reader_kind(avro._schemas.compiled[1])
    avro_us, python_us, fastavro_us, json_us = (
        per_record(ours, avro_values), per_record(python, avro_values), per_record(reference, avro_values),
        per_record(decode_value, json_values))
    label = f"Avro ({kind}, the consumer's)"
    print(f"{label:<32}{avro_us:6.2f} µs per record")
    print(f"Avro (generated Python reader)  {python_us:6.2f} µs per record")
    print(f"Avro (fastavro + conversion)    {fastavro_us:6.2f} µs per record")
    print(f"JSON                            {json_us:6.2f} µs per record")
    print(f"Avro/JSON = {avro_us / json_us:.2f}  (goal <= 1)")
    if "--profile" in sys.argv:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [ours(v) for v in avro_values * 5])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(10)


if __name__ == "__main__":
    main()
