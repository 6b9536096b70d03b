"""`provisioner schema`: the JSON Schema of a DataProduct spec, for editors and CI linters."""

from __future__ import annotations

from provisioner.cli.output import print_json
from provisioner.spec.export import spec_json_schema


def schema() -> None:
    """Print the JSON Schema of the DataProduct spec (point your editor's YAML support at it)."""
    print_json(spec_json_schema())
