"""Everything laptop-only: provisioner placed on this machine.

`provisioner up`, `status`, `inspect`, `replay`, `down` and `dev` run here, and the integration
tests' fixtures start their servers from here:

- `session`: what `up` started under a state directory, and the operations the commands share;
- `supervisor`: one supervised `provisioner consume` process per (product, store);
- `statedir`: the state directory's layout and registry;
- `devbroker`: a real Kafka broker from Maven Central jars; `securebroker`: the same, locked down
  (TLS, SASL, ACLs);
- `embedded`: real Redis and PostgreSQL servers from PyPI wheels;
- `processes`: ports and process lifetimes.

Nothing here is imported by the consumer process's code (`provisioner.runtime`) or by the
Kubernetes side, which places the same plan (`provisioner.plan`) in a cluster instead.
"""
