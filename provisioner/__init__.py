"""provisioner: automated data provisioning from a Kafka stream into Redis and Postgres."""

__version__ = "0.1.0"
