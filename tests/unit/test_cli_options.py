"""Options shared by several commands: one name per setting, one check per rule, the same words."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from provisioner.cli.app import app

runner = CliRunner()
SPECS = Path(__file__).parents[2] / "specs"


@pytest.mark.parametrize("command", [["up", "specs"], ["replay", "orders", "--store", "cache"],
                                     ["consume", "specs/x.yaml", "--store", "cache"]])
def test_until_is_checked_the_same_way_by_every_command(command: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, [*command, "--until", "yesterday", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "Invalid value for '--until'" in result.output and "RFC 3339" in result.output
    assert not (tmp_path / "registry.json").exists()  # refused before anything started


def test_replay_from_names_the_accepted_values(tmp_path: Path) -> None:
    result = runner.invoke(app, ["replay", "orders", "--store", "cache", "--from", "soon", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "'soon' is not earliest, latest or an RFC 3339 timestamp" in result.output


@pytest.mark.parametrize("command", ["status", "plan"])
def test_target_is_one_choice_everywhere(command: str) -> None:
    result = runner.invoke(app, [command, *([str(SPECS)] if command == "plan" else []), "--target", "cloud"])
    assert result.exit_code == 2
    assert "'cloud' is not one of 'local', 'k8s'" in result.output


@pytest.mark.parametrize("flag", ["--bootstrap", "--kafka-bootstrap"])
def test_render_takes_the_platform_address_under_either_name(flag: str) -> None:
    result = runner.invoke(app, ["render", str(SPECS), flag, "kafka.platform:9092", "-o", "json"])
    assert result.exit_code == 0, result.output
    listed = yaml.safe_load(result.stdout)
    envs = [env for item in listed["items"] if item["kind"] == "Deployment"
            for container in item["spec"]["template"]["spec"]["containers"] for env in container.get("env", [])]
    assert {"name": "PROVISIONER_KAFKA_BOOTSTRAP", "value": "kafka.platform:9092"} in envs


def test_a_short_credentials_key_is_refused_by_its_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISIONER_CREDENTIALS_KEY", "s3cr3t-k3y")
    result = runner.invoke(app, ["render", str(SPECS), "--bootstrap", "k:9092", "--with-secrets"])
    assert result.exit_code == 2
    assert "PROVISIONER_CREDENTIALS_KEY" in result.output and "at least 16 characters" in result.output
    assert "s3cr3t-k3y" not in result.output
