"""The offline commands as a user runs them: exit codes, messages, JSON output, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from typer.testing import CliRunner

from provisioner.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_validate_examples() -> None:
    code, out = run("validate", str(SPECS))
    assert code == 0, out
    assert "vip-orders" in out


def test_validate_reports_file_line_column_and_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((SPECS / "vip-orders.yaml").read_text().replace("table: vip_orders", 'table: "x; drop"'))
    code, out = run("validate", str(bad))
    assert code == 1
    assert f"{bad}:" in out and "spec.stores[1].postgres.table" in out


def test_validate_json_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: provisioner.dev/v1alpha1\nkind: DataProduct\nmetadata: {name: x}\n")
    code, out = run("validate", str(bad), "--output", "json")
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert {"file", "line", "column", "path", "message"} <= set(report["findings"][0])
    code, out = run("validate", str(SPECS), "-o", "json")
    assert code == 0 and json.loads(out)["valid"] is True


def test_validate_missing_path() -> None:
    code, out = run("validate", "/nonexistent/spec.yaml")
    assert code == 1 and "no such file" in out


def test_test_runs_example_tests() -> None:
    code, out = run("test", str(SPECS))
    assert code == 0, out
    assert " 0 failed" in out


def test_test_shows_a_diff_for_failures(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text((SPECS / "vip-orders.yaml").read_text().replace("total: 300.0", "total: 301.0"))
    code, out = run("test", str(spec))
    assert code == 1
    assert "FAIL" in out and "-" in out and "301.0" in out and "300.0" in out


def test_test_json_output() -> None:
    code, out = run("test", str(SPECS), "-o", "json")
    report = json.loads(out)
    assert code == 0 and report["failed"] == 0 and report["passed"] == len(report["tests"]) > 5


def test_test_previews_events(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"type": "OrderPlaced", "order_id": "o1", "amount": 500.0, "qty": 1, "customer": {"id": "c", "tier": "gold"}, "ts": "2026-01-01T00:00:00Z"}\n'
        '{"key": "o2", "value": null}\n'
    )
    code, out = run("test", str(SPECS / "vip-orders.yaml"), "--events", str(events), "-o", "json")
    assert code == 0, out
    ops = json.loads(out)[0]["ops"]
    assert ops[0]["upsert"]["key"] == ["o1"]
    assert ops[1]["deadLetter"]["stage"] == "key"




def test_schema_validates_the_examples() -> None:
    code, out = run("schema")
    assert code == 0
    schema = json.loads(out)
    for path in SPECS.glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_init_scaffolds_a_valid_tested_spec(tmp_path: Path) -> None:
    code, out = run("init", "my-product", "--dir", str(tmp_path))
    assert code == 0, out
    target = tmp_path / "my-product.yaml"
    assert run("validate", str(target))[0] == 0
    assert run("test", str(target))[0] == 0
    code, out = run("init", "my-product", "--dir", str(tmp_path))
    assert code == 1 and "exists" in out


def test_init_rejects_bad_names(tmp_path: Path) -> None:
    code, out = run("init", "Bad Name", "--dir", str(tmp_path))
    assert code == 1 and "invalid name" in out


def test_the_readme_example_validates(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = tmp_path / "readme.yaml"
    spec.write_text(example)
    code, out = run("validate", str(spec))
    assert code == 0, out
