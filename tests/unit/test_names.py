"""Object names two products would share: `validate` and admission refuse the pair, naming the objects."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.kube.names import name_clashes
from provisioner.kube.reconcile import Settings, desired_objects, parse_product
from provisioner.operator.webhook import validation_message
from provisioner.spec.findings import SpecError
from provisioner.spec.loader import load_text
from provisioner.spec.models import DataProduct

SPEC = """apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  source: {{topic: orders.v1}}
  fields: {{order_id: event.order_id}}
  key: order_id
  stores:
    - name: {store}
      redis: {{}}
"""


def _product(name: str, store: str, namespace: str = "shop") -> DataProduct:
    specs, findings = load_text(SPEC.format(name=name, store=store, namespace=namespace))
    assert not findings, findings
    return specs[0].product


def test_a_product_and_store_split_differently_clash() -> None:
    [clash] = name_clashes([_product("a", "b-c"), _product("a-b", "c")])
    assert clash.product.name == "a-b" and clash.other.name == "a"
    assert "Deployment a-b-c-consumer" in clash.objects and "Secret a-b-c-credentials" in clash.objects
    assert "StatefulSet a-b-c" in clash.objects and "NetworkPolicy a-b-c-consumer-egress" in clash.objects


def test_other_namespaces_and_updates_do_not_clash() -> None:
    assert name_clashes([_product("a", "b-c"), _product("a-b", "c", namespace="other")]) == []
    # A product compared with the cluster's copy of itself is an update, not a clash.
    assert name_clashes([_product("a", "b-c")], others=[_product("a", "b-c")]) == []
    assert len(name_clashes([_product("a-b", "c")], others=[_product("a", "b-c")])) == 1


def test_validate_refuses_the_pair_with_file_line_column(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SPEC.format(name="a", store="b-c", namespace="shop"))
    (tmp_path / "a-b.yaml").write_text(SPEC.format(name="a-b", store="c", namespace="shop"))
    result = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert f"{tmp_path / 'a.yaml'}:3:18: metadata.name: Deployment a-b-c-consumer" in line
    assert "rendered for product 'a-b'" in line and str(tmp_path / "a-b.yaml") in line


def test_admission_names_the_objects_another_product_renders() -> None:
    body = yaml.safe_load(SPEC.format(name="a-b", store="c", namespace="shop"))
    held = {("Deployment", "a-b-c-consumer"): "a", ("Service", "a-b-c"): "a", ("ConfigMap", "x-spec"): "x"}
    asked: list[tuple[str, str]] = []

    def names_held(namespace: str, product: str) -> dict[tuple[str, str], str]:
        asked.append((namespace, product))
        return held

    message = validation_message(body, names_held)
    assert asked == [("shop", "a-b")]
    assert message == ("metadata.name: Deployment a-b-c-consumer, Service a-b-c would also be rendered for "
                       "product 'a' (object names join product and store names with '-'): rename this product "
                       "or one of the stores")
    assert validation_message(body, lambda namespace, product: {}) is None
    assert validation_message(body) is None


TWO_STORES = (SPEC.format(name="p", store="s", namespace="shop")
              + "    - name: s-consumer-egress\n      redis: {keyPrefix: \"other:\"}\n")  # keys apart: only names clash


def test_a_products_own_stores_whose_names_clash_are_refused_everywhere(tmp_path: Path) -> None:
    """Store `s`'s consumer egress policy and store `s-consumer-egress`'s policy: both p-s-consumer-egress."""
    (tmp_path / "p.yaml").write_text(TWO_STORES)
    result = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert (f"{tmp_path / 'p.yaml'}:11:13: spec.stores[1].name: NetworkPolicy p-s-consumer-egress is also rendered "
            "for store 's'") in result.stdout
    rendered = CliRunner().invoke(app, ["render", str(tmp_path), "--kafka-bootstrap", "k:9092"])
    assert rendered.exit_code == 1 and "spec.stores[1].name: NetworkPolicy p-s-consumer-egress" in rendered.stderr
    message = validation_message(yaml.safe_load(TWO_STORES))
    assert message is not None and message.startswith("spec.stores[1].name: NetworkPolicy p-s-consumer-egress")
    body = {**yaml.safe_load(TWO_STORES), "metadata": {"name": "p", "namespace": "shop", "uid": "u-1"}}
    with pytest.raises(SpecError) as refused:  # the operator: Ready=False/InvalidSpec, no child touched
        desired_objects(parse_product(body), body, Settings(kafka_bootstrap="k:9092", credentials_key=b"k" * 32))
    assert [f.path for f in refused.value.findings] == ["spec.stores[1].name"]
