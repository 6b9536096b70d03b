"""Kafka: how to reach it (`settings`), the consumer's client seam (`client`) and its two clients
(`confluent`, `kafka_python`), client errors in the package's terms (`failures`), the startFrom
rule (`startfrom`), topic, produce and offset helpers through the process's client (`kafka`: also
`is_transient`; one module each per client: `confluent_admin`/`confluent_produce`,
`kafka_python_admin`/`kafka_python_produce`),
dead-letter production (`deadletters`), deterministic event generators (`generate`) and a
long-lived observer of end offsets, groups and dead letters (`observe`).

Called by the consumer loop (`provisioner.runtime.consumer`), `provisioner dev produce|generate`,
`up`, the operator and the tests. Uses `pipeline` (records, dead letters) and `spec`; never a store.
"""
