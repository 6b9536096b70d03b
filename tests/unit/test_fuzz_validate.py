"""Fuzzing `validate`: random YAML and mutated example specs never produce a traceback, and every
finding is in the user's words: located (file:line:column), with the field path as the document has
it (no union tags, no class names) and none of a library's phrasing."""

from __future__ import annotations

import contextlib
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.spec import models
from provisioner.spec.findings import key_segment
from provisioner.spec.loader import load_text
from provisioner.spec.wording import key_text
from provisioner.spec.yamlsafe import YamlLimitError, read_documents

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "specs").glob("*.yaml"))]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
    st.sampled_from(["event.a", "event.a >= 1.0 &&", "x\"; drop table y;--", "a" * 70, "__import__('os')",
                     "!!python/object", "${HOME}", "24h", "-1", "0", "earliest", "é", "\x00"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=20)


# A library's phrasing, which no finding may contain.
FORBIDDEN = (
    "Input should", "validation error", "pydantic", "errors.pydantic.dev", "Value error", "type=", "ModelField",
    "BaseModel", "function-after", "function-before", "function-wrap", "constrained-", "Traceback",
    "Assertion failed", "unable to parse", "For further information", "[key]", "list[", "dict[",
)
# The models' class names (DataProduct is also the `kind` users write).
CLASS_NAMES = sorted(
    name for name, value in vars(models).items()
    if isinstance(value, type) and issubclass(value, models.BaseModel) and name not in ("DataProduct", "BaseModel")
)
# Findings about a whole file or document, which have no field path.
WHOLE_DOCUMENT = ("invalid YAML", "a spec document must be a mapping", "nested deeper", "more than", "expands to",
                  "recursive alias", "file is larger")


def path_in(node: Any, path: str, *, missing_ok: bool) -> bool:
    """Whether `path` (as findings write it) names a node of the document, or a missing field of a
    mapping in it; keys may contain dots, so every reading is tried."""
    if not path:
        return True
    if isinstance(node, list) and path.startswith("["):
        index, _, rest = path[1:].partition("]")
        return index.isdigit() and int(index) < len(node) and path_in(node[int(index)], rest.removeprefix("."),
                                                                       missing_ok=missing_ok)
    if isinstance(node, dict):
        for key, value in node.items():
            written = key_segment(key_text(key))
            rest = path[len(written):]
            if path.startswith(written) and rest[:1] in ("", ".", "[") and path_in(value, rest.removeprefix("."),
                                                                                 missing_ok=missing_ok):
                return True
        return missing_ok and "." not in path and "[" not in path
    return False


def check(text: str) -> None:
    specs, findings = load_text(text, "fuzz.yaml")
    documents: list[Any] = []
    with contextlib.suppress(YamlLimitError):  # the documents before a bad one were checked
        documents.extend(document.data for document in read_documents(text))
    for finding in findings:
        assert finding.file == "fuzz.yaml" and finding.line >= 1 and finding.column >= 1 and finding.message
        words = f"{finding.path}: {finding.message}"
        assert not any(phrase in words for phrase in FORBIDDEN), words
        assert not any(re.search(rf"\b{name}\b", finding.message) for name in CLASS_NAMES), words
        if finding.path:
            bare = re.sub(r'\["(?:[^"\\]|\\.)*"\]|\[\d+\]', "", finding.path).removeprefix(".")
            assert not bare or all(bare.split(".")), words  # no empty segment between two dots
            missing_ok = finding.message == "required field is missing"
            assert any(path_in(doc, finding.path, missing_ok=missing_ok) for doc in documents), words
        else:
            assert finding.message.startswith(WHOLE_DOCUMENT), words
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
    elif action == "rename" and isinstance(parent, dict):
        parent[replacement if isinstance(replacement, str | int | bool) or replacement is None else str(last) + "_"] = \
            parent.pop(last)
    else:
        parent[last] = replacement
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(EXAMPLES) - 1), st.integers(0, 10_000), st.sampled_from(["delete", "replace", "insert", "rename"]),
       values)
def test_mutated_examples(which: int, where: int, action: str, replacement: Any) -> None:
    doc = yaml.safe_load(yaml.safe_dump(EXAMPLES[which]))
    paths = _paths(doc)
    path = paths[where % len(paths)]
    mutated = _mutate(doc, path, action, replacement)
    check(yaml.safe_dump(mutated, allow_unicode=True, sort_keys=False))


@pytest.mark.parametrize(("key", "written"), [
    (".0", '[".0"]'), ("", '[""]'), ("a.", '["a."]'), ("a..b", '["a..b"]'), ("x[0]", '["x[0]"]'), ('a"b', '["a\\"b"]'),
    ("a.b", ".a.b"),
])
def test_a_key_that_would_leave_an_empty_segment_is_quoted(key: str, written: str) -> None:
    doc = yaml.safe_load(yaml.safe_dump(next(e for e in EXAMPLES if len(e["spec"].get("tests", [])) > 1)))
    doc["spec"]["tests"][1][key] = 1
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    finding, = load_text(text, "fuzz.yaml")[1]
    assert finding.path == f"spec.tests[1]{written}"
    check(text)


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


# Values of the wrong kind for what the examples hold: booleans for integers, numbers for strings,
# huge numbers and durations, lists for mappings, and strings of every shape.
hostile = st.one_of(
    st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(), st.just([]), st.just({}),
    st.sampled_from(["1000000000d", "9" * 400 + "d", "0ms", "1.5", "", " ", "\udc80", "postgresql://h/db",
                     "redis://h/0", "${X}", "a/b/c", "-bad-", "x" * 300, "2026-13-45T99:00:00Z"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(EXAMPLES) - 1), st.integers(0, 10_000), hostile)
def test_wrong_kinds_of_values(which: int, where: int, replacement: Any) -> None:
    doc = yaml.safe_load(yaml.safe_dump(EXAMPLES[which]))
    paths = [p for p in _paths(doc) if p]
    mutated = _mutate(doc, paths[where % len(paths)], "replace", replacement)
    check(yaml.safe_dump(mutated, allow_unicode=True, sort_keys=False))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(EXAMPLES) - 1), st.integers(0, 10_000),
       st.sampled_from(["\n---\n", "\n---\n...\n", ": :", "\n- x\n", "\t", "&a [*a]", "!!binary AAA=", "? [a]\n",
                        "\n%YAML 1.1\n", "'", "\"\\x", "{", "]", "!!python/name:os.system", "\x85", "\ufeff",
                        " !!int ", " !!float ", " !!bool ", " !!timestamp ", "<<: {a: 1}\n", "!!set {a}"]))
def test_yaml_level_garbage(which: int, where: int, garbage: str) -> None:
    text = (ROOT / "specs").glob("*.yaml")
    source = sorted(text)[which].read_text()
    at = where % (len(source) + 1)
    check(source[:at] + garbage + source[at:])
