"""The Avro round of bench/hydrate.py (`--avro`): the same orders written as Avro in the schema
registry's wire format (ts a timestamp-millis), against the dev registry.

  R0-avro  a bare kafka-python loop that polls and decodes every record with fastavro (the header
           skipped, the parsed schema at hand): the ceiling;
  R-avro   `provisioner consume` into Redis, its registry client and Avro decoder included;
and R-avro/R0-avro (goal >= 0.7), plus the decoder alone per record: the consumer's Avro decode
(header, cached reader, conversion to CEL values) against its JSON decode of the same orders
(goal: Avro at least as fast).
"""

from __future__ import annotations

import io
import json
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import yaml
from common import produce_records
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from provisioner.formats.avro import AvroFormat
from provisioner.formats.avro_program import reader_kind
from provisioner.local import devregistry
from provisioner.pipeline.process import decode_value
from provisioner.spec.models import DataProduct
from provisioner.stream import generate
from provisioner.stream.registry import RegistryClient
from provisioner.stream.settings import SchemaRegistrySettings

ORDER = {"type": "record", "name": "Order", "namespace": "bench", "fields": [
    {"name": "type", "type": "string"},
    {"name": "order_id", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "qty", "type": "long"},
    {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
        {"name": "id", "type": "string"}, {"name": "tier", "type": "string"}]}},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
]}
PARSED = fastavro.parse_schema(ORDER)


def _avro_value(value: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime

    return {**value, "ts": datetime.fromisoformat(value["ts"].replace("Z", "+00:00"))}


def encoded_orders(count: int, schema_id: int) -> list[tuple[bytes, bytes, bytes]]:
    """(key, Avro wire bytes, JSON bytes) of the orders example, as the Confluent serializer writes them."""
    header = b"\x00" + schema_id.to_bytes(4, "big")
    out = []
    for key, value in generate.orders(count, seed=1):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, PARSED, _avro_value(value))
        out.append((key.encode(), header + buffer.getvalue(), json.dumps(value).encode()))
    return out


def fastavro_decode(value: bytes) -> Any:
    """What R0-avro does per record: skip the header, decode with the parsed schema at hand."""
    return fastavro.schemaless_reader(io.BytesIO(value[5:]), PARSED)


def decode_costs(samples: list[tuple[bytes, bytes, bytes]], url: str) -> tuple[float, float, str]:
    """Microseconds per record: the consumer's Avro decode, its JSON decode (same orders), each the
    best of many short runs taken in turn, so that a busy machine disturbs both alike; and the Avro
    reader's kind."""
    avro_format = AvroFormat(RegistryClient(SchemaRegistrySettings(url)))
    avro = avro_format.decode
    avro_values = [a for _, a, _ in samples]
    json_values = [j for _, _, j in samples]
    avro(avro_values[0])  # the schema fetched once, as in the consumer

    def best(decode: Callable[[bytes], Any], values: list[bytes]) -> float:
        return min(timeit.repeat(lambda: [decode(v) for v in values], number=1, repeat=20)) / len(values) * 1e6

    avro_us, json_us = [], []
    for _ in range(3):
        avro_us.append(best(avro, avro_values))
        json_us.append(best(decode_value, json_values))
    return min(avro_us), min(json_us), reader_kind(next(iter(avro_format._schemas.compiled.values())))


def avro_round(bootstrap: str, redis_url: str, folder: Path, count: int,
               bare: Callable[..., tuple[float, float]], spec_for: Callable[[Path, str], Path],
               load: Callable[[Path], DataProduct], run: Callable[..., tuple[float, float, float]],
               topic: str) -> tuple[float, float]:
    """Produce the Avro orders, run R0-avro and R-avro; prints and returns (R0-avro, R-avro)."""
    state = folder / "registry-state"
    url = devregistry.up(state)
    try:
        with SchemaRegistryClient({"url": url}) as client:
            schema_id = client.register_schema(f"{topic}-value", Schema(json.dumps(ORDER), "AVRO"))
        started = time.perf_counter()
        orders = encoded_orders(count, schema_id)
        produce_records(bootstrap, topic, ((key, avro) for key, avro, _ in orders))
        print(f"produced {count} Avro events in {time.perf_counter() - started:.1f}s", flush=True)
        avro_us, json_us, kind = decode_costs(orders[:2_000], url)
        print(f"decode per record: Avro {avro_us:.2f} µs ({kind}), JSON {json_us:.2f} µs (the consumer's decoders)",
              flush=True)
        r0 = bare(bootstrap, topic, count, fastavro_decode)[1]
        print(f"R0-avro bare poll + fastavro    {r0:>10,.0f} records/s steady", flush=True)
        spec = spec_for(folder, topic)
        document = yaml.safe_load(spec.read_text())
        document["spec"]["source"]["format"] = "avro"
        spec.write_text(yaml.safe_dump(document, sort_keys=False))
        properties = folder / "avro.properties"
        properties.write_text(f"bootstrap.servers={bootstrap}\nschema.registry.url={url}\n")
        product = load(spec)
        assert product.spec.source.format == "avro"
        _, rate, rss = run(spec, "cache", bootstrap, redis_url, count, product, folder, kafka_config=properties)
        print(f"R-avro consume -> Redis         {rate:>10,.0f} records/s steady  (peak RSS {rss:.0f} MB)", flush=True)
        print(f"R-avro/R0-avro = {rate / r0:.2f}  (goal >= 0.7)", flush=True)
        return r0, rate
    finally:
        devregistry.down(state, purge=True)
