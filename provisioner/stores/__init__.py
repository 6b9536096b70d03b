"""Where a data product is materialised: the `Store` protocol (`base`) and its Redis and Postgres
implementations, each applying a batch and its positions in one atomic, fenced write.

`registry.open_store` picks the implementation for a store spec; `convert` turns field values into
Postgres column input, purely; `versions` records which spec built the live store and switches to a
version built beside it, and `election` picks the one replica that builds it. Called by the
consumer process (`provisioner.runtime`), and by `inspect`, `status`, `plan`, `replay` and the
operator's observer to read or reset a store. Uses `pipeline`
(ops, value encoding) and `spec`; never Kafka.
"""
