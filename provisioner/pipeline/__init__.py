"""The pure per-record function of spec.md ("Per-record semantics"): a Kafka record in, an op out.

`process.Pipeline` decodes, validates against `source.schema` (`event_schema`, compiled once),
filters, and evaluates the delete rule and the fields (CEL, via `provisioner.expr`); `ops` holds the
values that flow (records, upserts, deletes, skips, dead letters, changes); `encoding` is the one
value encoder the stores share; `eventfile` reads JSON Lines event files; `testing` runs a spec's
own `tests`.

No I/O. Called by the consumer loop, the stores (ops, encoding), `provisioner test`, the benchmarks
and the tests.
"""
