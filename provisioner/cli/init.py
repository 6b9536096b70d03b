"""`provisioner init NAME`: scaffold a commented spec with a test, valid from the first run."""

from __future__ import annotations

from pathlib import Path

import typer

from provisioner.cli.output import console, fail
from provisioner.spec.names import PRODUCT_NAME_MAX, check_rfc1123_label

TEMPLATE = """\
# A data product: which events, filtered and reshaped how, into which stores.
# Check it offline with `provisioner validate {file}` and `provisioner test {file}`,
# run it locally with `provisioner up {file}`.
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata:
  name: {name}                 # RFC 1123 label, at most 40 characters
spec:
  description: Describe who reads this data and why.
  owner: {{team: my-team}}
  source:
    topic: orders.v1           # the Kafka topic to read
    startFrom: earliest        # earliest | latest | an RFC 3339 timestamp
  # CEL: `event` is the decoded JSON value, `record` has key, headers, topic, partition, offset, timestamp.
  filter: "event.type == 'OrderPlaced'"
  fields:                      # output field -> CEL expression, in order
    order_id: event.order_id
    amount: event.amount
  key: order_id                # field(s) identifying a row
  stores:
    - name: cache
      redis: {{ttl: 24h}}      # managed: provisioned for you (no connection given)
    - name: db
      postgres:
        columns: {{amount: numeric}}
  tests:
    - name: keeps placed orders
      given:
        - value: {{type: OrderPlaced, order_id: o1, amount: 12.5}}
        - value: {{type: OrderShipped, order_id: o1, amount: 12.5}}
      expect:
        - upsert: {{key: [o1], fields: {{order_id: o1, amount: 12.5}}}}
        - skip: {{}}
"""


def init(
    name: str = typer.Argument(..., help="Name of the data product (lowercase letters, digits, '-')."),
    directory: Path = typer.Option(Path(), "--dir", help="Where to write NAME.yaml."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write NAME.yaml: a commented, valid DataProduct spec with a test to start from."""
    try:
        check_rfc1123_label(name, PRODUCT_NAME_MAX)
    except ValueError as error:
        fail(f"invalid name: {error}")
    target = directory / f"{name}.yaml"
    if target.exists() and not force:
        fail(f"{target} exists (use --force to overwrite)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(TEMPLATE.format(name=name, file=target), encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {target}: {error}")
    console.print(f"[green]✓[/] wrote {target}; next: provisioner validate {target} && provisioner test {target}")
