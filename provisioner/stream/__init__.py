"""Kafka: how to reach it (`settings`), the consumer's client seam (`client`) and its two clients
(`confluent`, `kafka_python`), client errors in the package's terms (`failures`), topic, produce
and offset helpers (`kafka`: also `start_offsets` and `is_transient`; `confluent_admin`),
dead-letter production (`deadletters`), deterministic event generators (`generate`) and a
long-lived observer of end offsets, groups and dead letters (`observe`).

Called by the consumer loop (`provisioner.runtime.consumer`), `provisioner dev produce|generate`,
`up`, the operator and the tests. Uses `pipeline` (records, dead letters) and `spec`; never a store.
"""
