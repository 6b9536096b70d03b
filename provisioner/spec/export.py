"""The DataProduct model as a JSON Schema (for editors; the CRD's openAPIV3Schema derives from it)."""

from __future__ import annotations

from typing import Any

from provisioner.spec.models import DataProduct


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema 2020-12 of a DataProduct document, with the YAML (camelCase) field names."""
    schema = DataProduct.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "DataProduct (provisioner.dev/v1alpha1)"
    return schema
