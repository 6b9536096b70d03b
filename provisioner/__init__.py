"""provisioner: automated data provisioning from a Kafka stream into Redis and Postgres.

A team declares a *data product* in YAML (which events, filtered and reshaped how, into which
stores); provisioner validates and tests it offline, plans what it needs, and runs consumers that
hydrate each store effectively once, on a laptop (`provisioner.local`) or in a cluster.

The rooms, from the top down (each imports only rooms below it; checked by import-linter):

- `cli`: the `provisioner` command, one thin module per command;
- `local`: the plan placed on this machine (processes, dev broker, embedded stores, state dir);
- `runtime`: the consumer process; `plan`: what a set of products needs, wherever it runs;
- `stores` and `stream`: Redis/Postgres behind one fenced, atomic `Store` protocol; Kafka helpers
  and dead letters;
- `pipeline`: the pure per-record function of the spec;
- `spec`: the DataProduct model, bounded YAML loading, semantic checks;
- `expr`: CEL compiled to closures.

`errors` (what can go wrong, by meaning) and `files` (atomic writes, file locks) sit beside them
and import nothing of the package.
"""

from provisioner.errors import ProvisionerError
from provisioner.plan import Plan, plan
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct

__all__ = ["DataProduct", "Plan", "ProvisionerError", "__version__", "load_products", "plan"]

__version__ = "0.1.0"
