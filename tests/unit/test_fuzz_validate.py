"""Fuzzing `validate`: random YAML and mutated example specs never produce a traceback."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.spec.loader import load_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "specs").glob("*.yaml"))]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
    st.sampled_from(["event.a", "event.a >= 1.0 &&", "x\"; drop table y;--", "a" * 70, "__import__('os')",
                     "!!python/object", "${HOME}", "24h", "-1", "0", "earliest", "é", "\x00"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=20)


def check(text: str) -> None:
    specs, findings = load_text(text, "fuzz.yaml")
    for finding in findings:
        assert finding.line >= 1 and finding.column >= 1 and finding.message
    for spec in specs:
        assert spec.product.name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    check(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_random_documents(value: Any) -> None:
    check(yaml.safe_dump(value, allow_unicode=True))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(doc: Any, path: tuple[Any, ...], action: str, replacement: Any) -> Any:
    if not path:
        return replacement
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "insert" and isinstance(parent, dict):
        parent[f"{last}x"] = replacement
    else:
        parent[last] = replacement
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(EXAMPLES) - 1), st.integers(0, 10_000), st.sampled_from(["delete", "replace", "insert"]),
       values)
def test_mutated_examples(which: int, where: int, action: str, replacement: Any) -> None:
    doc = yaml.safe_load(yaml.safe_dump(EXAMPLES[which]))
    paths = _paths(doc)
    path = paths[where % len(paths)]
    mutated = _mutate(doc, path, action, replacement)
    check(yaml.safe_dump(mutated, allow_unicode=True, sort_keys=False))


def test_mutated_text_bytes() -> None:
    rng = random.Random(1234)
    text = (ROOT / "specs" / "vip-orders.yaml").read_text()
    for _ in range(300):
        chars = list(text)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(chars))
            chars[i] = rng.choice(["", ":", "-", "'", '"', "{", "[", "&a", "*a", "!!", "\t", " ", "\n", "é"])
        check("".join(chars))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_validate_command_never_shows_a_traceback(tmp_path_factory: Any, content: bytes) -> None:
    from typer.testing import CliRunner

    from provisioner.cli.app import app

    path = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    path.write_bytes(content)
    result = CliRunner().invoke(app, ["validate", str(path), "-o", "json"])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
