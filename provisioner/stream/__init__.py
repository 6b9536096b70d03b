"""Kafka: topic, produce and offset helpers (`kafka`: also `start_offsets` and `is_transient`),
dead-letter production (`deadletters`), deterministic event generators (`generate`) and a
long-lived observer of end offsets, groups and dead letters (`observe`).

Called by the consumer loop (`provisioner.runtime.consumer`), `provisioner dev produce|generate`,
`up`, the operator and the tests. Uses `pipeline` (records, dead letters) and `spec`; never a store.
"""
