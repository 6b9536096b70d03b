"""The official CEL conformance suite (cel-spec `tests/simple/testdata`) run against the engine.

The suite ships in the Go module `cel.dev/expr`; `fetch()` downloads the pinned version with
`go mod download` into the cache ($PROVISIONER_CACHE, else ~/.cache/provisioner), outside the
repository.  Each case is classified:

- out of scope: it needs what a data product's environment cannot express (protobuf messages,
  enums, containers, declared functions without implementations, unknowns, type-check-only
  cases, macros disabled);
- refused: the engine rejects the expression at compile time (allowed: never evaluated wrongly);
- passed / failed: the engine compiled it, and its result (or error) matches the suite or not.

`python -m tests.conformance` prints the counts per file and in total.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from provisioner.expr import EvaluationError, ExpressionError, compile_expression
from provisioner.expr import runtime as rt

from .textproto import Message, parse

MODULE = "cel.dev/expr"
VERSION = "v0.26.0"
STATUSES = ("out of scope", "refused", "passed", "failed")

_PROTO_NAMES = ("TestAllTypes", "NestedTestAllTypes", "TestRequired", "GlobalEnum", "google.protobuf.",
                "cel.expr.conformance", "proto2.", "proto3.")
_PRIMITIVES = {"BOOL": "bool", "INT64": "int", "UINT64": "uint", "DOUBLE": "double", "STRING": "string",
               "BYTES": "bytes"}


class OutOfScope(Exception):
    """The case needs something a data product's environment cannot express."""


def cache_dir() -> Path:
    base = os.environ.get("PROVISIONER_CACHE")
    path = Path(base) if base else Path.home() / ".cache" / "provisioner"
    path.mkdir(parents=True, exist_ok=True)  # a new machine may not even have ~/.cache
    return path


def _go() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if found is None:
        raise RuntimeError("the conformance suite is fetched with `go mod download`, but Go is not installed")
    return found


@cache
def fetch() -> Path:
    """The suite's testdata directory, downloading the pinned module into the cache when needed."""
    gopath = cache_dir() / "go"
    testdata = gopath / "pkg" / "mod" / f"{MODULE}@{VERSION}" / "tests" / "simple" / "testdata"
    if testdata.is_dir():
        return testdata
    env = {**os.environ, "GOPATH": str(gopath), "GOMODCACHE": str(gopath / "pkg" / "mod"),
           "GOTOOLCHAIN": "local", "GOFLAGS": "-modcacherw", "GO111MODULE": "on"}
    result = subprocess.run([_go(), "mod", "download", "-json", f"{MODULE}@{VERSION}"], env=env,
                            capture_output=True, text=True, timeout=600, check=False, cwd=cache_dir())
    if result.returncode != 0:
        raise RuntimeError(f"go mod download {MODULE}@{VERSION} failed: {result.stdout}{result.stderr}")
    directory = Path(json.loads(result.stdout)["Dir"]) / "tests" / "simple" / "testdata"
    if not directory.is_dir():
        raise RuntimeError(f"{directory} is missing from the downloaded module")
    return directory


@dataclass
class Case:
    file: str
    section: str
    name: str
    test: Message = field(repr=False)

    @property
    def id(self) -> str:
        return f"{self.file}/{self.section}/{self.name}"

    @property
    def expr(self) -> str:
        return _text(self.test["expr"][0])


def _text(raw: Any) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def _one(msg: Message, name: str, default: Any = None) -> Any:
    values = msg.get(name)
    return values[0] if values else default


@cache
def load_cases() -> tuple[Case, ...]:
    cases: list[Case] = []
    for path in sorted(fetch().glob("*.textproto")):
        doc = parse(path.read_text(encoding="utf-8"))
        for section in doc.get("section", []):
            for test in section.get("test", []):
                cases.append(Case(path.stem, _text(_one(section, "name", "")), _text(_one(test, "name", "")), test))
    return tuple(cases)


# --- conversions from the suite's protobuf values ----------------------------------------------------


def _decl_type(t: Message) -> str:
    if "primitive" in t:
        return _PRIMITIVES[_one(t, "primitive")]
    if "list_type" in t:
        return "list"
    if "map_type" in t:
        return "map"
    if "dyn" in t:
        return "dyn"
    if "null" in t:
        return "null"
    if "well_known" in t:
        known = _one(t, "well_known")
        if known == "TIMESTAMP":
            return "timestamp"
        if known == "DURATION":
            return "duration"
        raise OutOfScope(f"well-known type {known}")
    if "message_type" in t:
        message = _text(_one(t, "message_type"))
        if message == "google.protobuf.Timestamp":
            return "timestamp"
        if message == "google.protobuf.Duration":
            return "duration"
    if "abstract_type" in t:
        abstract = _one(t, "abstract_type")
        if _text(_one(abstract, "name")) == "optional_type":
            return "optional"
    raise OutOfScope(f"declared type {sorted(t)}")


def value_of(v: Message) -> Any:
    """The engine's runtime value for a cel.expr.Value."""
    if "int64_value" in v:
        return int(_one(v, "int64_value"))
    if "uint64_value" in v:
        return rt.UInt(_one(v, "uint64_value"))
    if "double_value" in v:
        return float(_one(v, "double_value"))
    if "string_value" in v:
        return _text(_one(v, "string_value"))
    if "bytes_value" in v:
        return bytes(_one(v, "bytes_value"))
    if "bool_value" in v:
        return _one(v, "bool_value") == "true"
    if "null_value" in v:
        return None
    if "list_value" in v:
        return [value_of(x) for x in _one(v, "list_value").get("values", [])]
    if "map_value" in v:
        return _map_of(_one(v, "map_value"))
    if "object_value" in v:
        return _object_of(_one(v, "object_value"))
    if "type_value" in v:
        return _type_value(_text(_one(v, "type_value")))
    if "enum_value" in v:
        raise OutOfScope("enum value")
    raise OutOfScope(f"value {sorted(v)}")


def _map_of(message: Message) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for entry in message.get("entries", []):
        key = value_of(_one(entry, "key"))
        if type(key) not in (str, int):
            raise OutOfScope(f"map key of type {rt.type_name(key)}")
        out[key] = value_of(_one(entry, "value"))
    return out


def _object_of(obj: Message) -> Any:
    """A timestamp or a duration; other protobuf messages are out of scope."""
    for name, kind in (("[type.googleapis.com/google.protobuf.Timestamp]", "timestamp"),
                       ("[type.googleapis.com/google.protobuf.Duration]", "duration")):
        if name in obj:
            body = _one(obj, name)
            seconds, nanos = int(_one(body, "seconds", 0)), int(_one(body, "nanos", 0))
            return _make_time(kind, seconds, nanos)
    raise OutOfScope(f"protobuf message {sorted(obj)}")


def _make_time(kind: str, seconds: int, nanos: int) -> Any:
    maker = getattr(rt, "make_timestamp" if kind == "timestamp" else "make_duration", None)
    if maker is not None:
        return maker(seconds, nanos)
    if nanos % 1000:
        raise OutOfScope("sub-microsecond time value")
    delta = timedelta(seconds=seconds, microseconds=nanos // 1000)
    if kind == "duration":
        return delta
    return datetime(1970, 1, 1, tzinfo=rt.UTC) + delta


def _type_value(name: str) -> Any:
    maker = getattr(rt, "type_value", None)
    if maker is None:
        raise OutOfScope("type values")
    return maker(name)


def same(expected: Any, actual: Any) -> bool:
    """Equality as the suite defines it: exact types, NaN matches NaN, maps unordered."""
    te, ta = type(expected), type(actual)
    if te is float and ta is float:
        return (math.isnan(expected) and math.isnan(actual)) or expected == actual
    if te is not ta:
        return False
    if te is list:
        return len(expected) == len(actual) and all(same(x, y) for x, y in zip(expected, actual, strict=True))
    if te is dict:
        if len(expected) != len(actual):
            return False
        keys = {(type(k), k): k for k in actual}
        return all((type(k), k) in keys and same(v, actual[keys[(type(k), k)]]) for k, v in expected.items())
    return bool(expected == actual)


# --- running one case ---------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str
    detail: str = ""


def _scope(case: Case) -> tuple[dict[str, str], dict[str, Any], Any]:
    """The declared variables, their values and the expected result (a value, or EvaluationError)."""
    t = case.test
    if _one(t, "container"):
        raise OutOfScope("container")
    if _one(t, "check_only") == "true":
        raise OutOfScope("type-check only")
    if _one(t, "disable_macros") == "true":
        raise OutOfScope("macros disabled")
    if "unknown" in t or "any_unknowns" in t:
        raise OutOfScope("unknowns")
    if any(name in case.expr for name in _PROTO_NAMES):
        raise OutOfScope("protobuf messages")
    variables: dict[str, str] = {}
    for decl in t.get("type_env", []):
        if "ident" not in decl:
            raise OutOfScope("declared function")
        variables[_text(_one(decl, "name"))] = _decl_type(_one(_one(decl, "ident"), "type"))
    bindings: dict[str, Any] = {}
    for entry in t.get("bindings", []):
        bound = _one(entry, "value")
        if "value" not in bound:
            raise OutOfScope("non-value binding")
        name = _text(_one(entry, "key"))
        bindings[name] = value_of(_one(bound, "value"))
        variables.setdefault(name, "dyn")
    expected: Any
    if "eval_error" in t or "any_eval_errors" in t:
        expected = EvaluationError
    elif "value" in t:
        expected = value_of(_one(t, "value"))
    elif "typed_result" in t:
        typed = _one(t, "typed_result")
        if "result" not in typed:
            raise OutOfScope("type-check only")
        expected = value_of(_one(typed, "result"))
    else:
        expected = True
    return variables, bindings, expected


def run(case: Case) -> Outcome:
    try:
        variables, bindings, expected = _scope(case)
    except OutOfScope as reason:
        return Outcome("out of scope", str(reason))
    try:
        program = compile_expression(case.expr, variables=variables)
    except ExpressionError as exc:
        return Outcome("refused", str(exc))
    try:
        actual = program.evaluate(bindings, None)
    except EvaluationError as exc:
        if expected is EvaluationError:
            return Outcome("passed")
        return Outcome("failed", f"{case.expr!r}: expected {expected!r}, got error {exc}")
    except Exception as exc:  # a crash is a failure, whatever the suite expects
        return Outcome("failed", f"{case.expr!r}: crashed with {type(exc).__name__}: {exc}")
    if expected is EvaluationError:
        return Outcome("failed", f"{case.expr!r}: expected an error, got {actual!r}")
    if same(expected, actual):
        return Outcome("passed")
    return Outcome("failed", f"{case.expr!r}: expected {expected!r}, got {actual!r}")


def results() -> list[tuple[Case, Outcome]]:
    return [(case, run(case)) for case in load_cases()]


def summary(outcomes: list[tuple[Case, Outcome]] | None = None) -> str:
    outcomes = results() if outcomes is None else outcomes
    per_file: dict[str, Counter[str]] = {}
    for case, outcome in outcomes:
        per_file.setdefault(case.file, Counter())[outcome.status] += 1
    width = max(len(f) for f in per_file)
    lines = [f"CEL conformance suite {MODULE}@{VERSION} (tests/simple/testdata)",
             f"{'file':<{width}}  " + "  ".join(f"{s:>12}" for s in STATUSES)]
    total: Counter[str] = Counter()
    for name, counts in per_file.items():
        total.update(counts)
        lines.append(f"{name:<{width}}  " + "  ".join(f"{counts[s]:>12}" for s in STATUSES))
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{total[s]:>12}" for s in STATUSES))
    return "\n".join(lines)
