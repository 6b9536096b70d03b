"""provisioner: automated data provisioning from a Kafka stream into Redis and Postgres.

A team declares a *data product* in YAML (which events, filtered and reshaped how, into which
stores); provisioner validates and tests it offline, plans what it needs, and runs consumers that
hydrate each store effectively once, on a laptop (`provisioner.local`) or in a cluster.

The rooms, from the top down (each imports only rooms below it; checked by import-linter):

- `cli`: the `provisioner` command, one thin module per command;
- `operator`: the kopf operator (watches, work queue, leader election, validating webhook);
- `local`: the plan placed on this machine (processes, dev broker, embedded stores, state dir);
  `kube`: the plan placed in a cluster (CRD, rendered manifests, API client, reconcile, status);
- `runtime`: the consumer process, rebuilds included; `plan`: what a set of products needs,
  wherever it runs;
- `stores` and `stream`: Redis/Postgres behind one fenced, atomic `Store` protocol, with store
  versions and the rebuilder election; Kafka clients, helpers and dead letters;
- `pipeline`: the pure per-record function of the spec;
- `spec`: the DataProduct model, bounded YAML loading, semantic checks, the content fingerprint;
- `expr`: CEL compiled to closures.

`errors` (what can go wrong, by meaning), `files` (atomic writes, file locks), `logs` (one-line
logging) and `threads` (daemon thread pools) sit beside them and import nothing of the package.
"""

from provisioner.errors import ProvisionerError
from provisioner.plan import Plan, plan
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct

__all__ = ["DataProduct", "Plan", "ProvisionerError", "__version__", "load_products", "plan"]

__version__ = "0.1.0"
