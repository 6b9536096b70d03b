"""The consumer process: one store of one data product hydrated from its source topic.

`consumer.StoreConsumer` is the loop (fill, transform, dead letters, apply, commit; spec.md,
"Stores"), with `batch` (its pure bookkeeping), `backoff`, `metrics` (Prometheus) and `status` (the
status file it writes). `rebuild.StoreRunner` runs it for a spec, rebuilding the store beside
itself when the spec's content rules changed (`storeaccess`: the store's versions, election and
stores behind one object), and `until` bounds a store in time. `connection` resolves a store's URL,
and `progress` turns positions, end offsets and status files into lag, progress and freshness
verdicts.

Called by `provisioner consume` (which runs the loop: locally under `up`'s supervisor, in a cluster
as a Deployment) and, for `progress`, `status` and `connection`, by the CLI, the laptop supervisor
in `provisioner/local/` and the operator. It sits above `stores` and `stream` and below `cli`.
"""
