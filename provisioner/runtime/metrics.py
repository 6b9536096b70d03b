"""Prometheus metrics of one store consumer (one process per store, so labels stay few)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class ConsumerMetrics:
    """records/s (rate of records), ops by kind, dead letters by stage, lag, freshness, last error."""

    def __init__(self, product: str, store: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"product": product, "store": store}
        self._labels = labels
        self.records = Counter("provisioner_records", "Records read from the source topic",
                               list(labels), registry=self.registry).labels(**labels)
        self._ops = Counter("provisioner_ops", "Ops applied (or skipped) by kind",
                            [*labels, "kind"], registry=self.registry)
        self._dead_letters = Counter("provisioner_dead_letters", "Dead letters by stage",
                                     [*labels, "stage"], registry=self.registry)
        self.lag = Gauge("provisioner_lag_records", "Records between the store's position and the topic's end",
                         list(labels), registry=self.registry).labels(**labels)
        self.freshness = Gauge("provisioner_freshness_seconds",
                               "Age of the newest applied record while behind; 0 when caught up",
                               list(labels), registry=self.registry).labels(**labels)
        self.records_per_second = Gauge("provisioner_records_per_second", "Records per second, last interval",
                                        list(labels), registry=self.registry).labels(**labels)
        self.errors = Counter("provisioner_errors", "Errors that forced a retry (Kafka or store unreachable)",
                              list(labels), registry=self.registry).labels(**labels)
        self.last_error = Gauge("provisioner_last_error_timestamp_seconds", "When the last error happened",
                                list(labels), registry=self.registry).labels(**labels)
        self.conflicts = Counter("provisioner_position_conflicts", "Batches discarded by position fencing",
                                 list(labels), registry=self.registry).labels(**labels)
        self.batch_seconds = Histogram("provisioner_batch_seconds", "Time to apply one batch to the store",
                                       list(labels), registry=self.registry).labels(**labels)

    def op(self, kind: str, count: int) -> None:
        if count:
            self._ops.labels(**self._labels, kind=kind).inc(count)

    def dead_letter(self, stage: str) -> None:
        self._dead_letters.labels(**self._labels, stage=stage).inc()

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Expose /metrics on `port` (0 picks a free one); returns the port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
