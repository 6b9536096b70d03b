"""`dev kafka` and `dev registry` status and down as a user sees them when nothing runs, and the
status line of a running one: the two groups answer in one shape, each with its own words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.cli.dev import BROKER
from provisioner.cli.dev_registry import REGISTRY
from provisioner.cli.output import OutputFormat
from provisioner.local.devbroker import BrokerStatus
from provisioner.local.devregistry import RegistryStatus

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["dev", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout


@pytest.mark.parametrize(("group", "said"), [
    ("kafka", "dev broker: not running  (start it with `provisioner dev kafka up`)\n"),
    ("registry", "dev registry: not running  (start it with `provisioner dev registry up`)\n"),
])
def test_status_when_nothing_runs(tmp_path: Path, group: str, said: str) -> None:
    assert run(group, "status", "--state-dir", str(tmp_path)) == (0, said)


def test_status_json_when_nothing_runs(tmp_path: Path) -> None:
    code, out = run("kafka", "status", "--state-dir", str(tmp_path), "-o", "json")
    assert code == 0 and json.loads(out) == {"running": False, "state_dir": str(tmp_path / "kafka")}
    code, out = run("registry", "status", "--state-dir", str(tmp_path), "-o", "json")
    assert code == 0 and json.loads(out) == {"running": False}


@pytest.mark.parametrize(("args", "said"), [
    (("kafka", "down"), "dev broker was not running\n"),
    (("kafka", "down", "--purge"), "dev broker was not running; data deleted\n"),
    (("registry", "down"), "dev registry was not running\n"),
    (("registry", "down", "--purge"), "dev registry was not running; schemas deleted\n"),
])
def test_down_when_nothing_runs(tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    assert run(*args, "--state-dir", str(tmp_path)) == (0, said)


def test_the_status_line_of_a_running_service(capsys: pytest.CaptureFixture[str]) -> None:
    broker = BrokerStatus(pid=7, bootstrap="127.0.0.1:9092", port=9092, running=False, state_dir="/s/kafka",
                          log_file="/s/kafka/broker.log")
    BROKER.report_status(broker, OutputFormat.text)
    BROKER.report_status(BrokerStatus(**{**broker.to_dict(), "running": True}), OutputFormat.text)
    REGISTRY.report_status(RegistryStatus(pid=8, url="http://127.0.0.1:8081", log_file="/s/r.log"), OutputFormat.text)
    assert capsys.readouterr().out.splitlines() == [
        "dev broker: starting (not answering yet) at 127.0.0.1:9092 (pid 7, log /s/kafka/broker.log)",
        "dev broker: ready at 127.0.0.1:9092 (pid 7, log /s/kafka/broker.log)",
        "dev registry: running at http://127.0.0.1:8081 (pid 8, log /s/r.log)",
    ]
    REGISTRY.report_status(RegistryStatus(pid=8, url="http://127.0.0.1:8081", log_file="/s/r.log"), OutputFormat.json)
    assert json.loads(capsys.readouterr().out) == {"running": True, "pid": 8, "url": "http://127.0.0.1:8081",
                                                   "log_file": "/s/r.log"}
