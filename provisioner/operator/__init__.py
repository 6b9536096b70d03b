"""The operator: kopf watches, a work queue and leader election around `provisioner.kube.reconcile`.

`run(config)` holds the Lease, primes the caches, then runs kopf (standalone: the Lease, not kopf's
peering, decides who acts) and the work queue until SIGTERM/SIGINT or until the Lease is lost.
Called by `provisioner operator`.
"""

from provisioner.operator.main import OperatorConfig, run

__all__ = ["OperatorConfig", "run"]
