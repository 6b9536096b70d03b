"""Static checker: resolves names, validates functions and arities, infers simple static types.

Anything derived from `event` is `dyn`, and checks on it are deferred to run time, as CEL does.
Only expressions that can never succeed, or that the reference evaluates in ways this engine
cannot reproduce exactly, are rejected here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import ast
from .errors import ExpressionError, error_at
from .formatting import CLAUSE_TYPES, clause_error
from .formatting import parse as parse_format
from .library import FUNCTIONS, Overload
from .regex import RegexError, translate
from .runtime import DURATION_GETTERS, TIMESTAMP_GETTERS, UInt
from .values import TYPE_NAMES, CelType

RECORD_FIELDS = {"key": "dyn", "headers": "map", "topic": "string", "partition": "int", "offset": "int",
                 "timestamp": "timestamp"}
NUMBERS = frozenset({"int", "uint", "double"})
_ORDERED = frozenset({"string", "bytes", "bool", "timestamp", "duration"})
_N = ("int", "uint", "double")
_ARITH: dict[str, dict[tuple[str, str], str]] = {
    "+": {**{(t, t): t for t in (*_N, "string", "bytes", "list", "duration")},
          ("timestamp", "duration"): "timestamp", ("duration", "timestamp"): "timestamp"},
    "-": {**{(t, t): t for t in (*_N, "duration")},
          ("timestamp", "timestamp"): "duration", ("timestamp", "duration"): "timestamp"},
    "*": {(t, t): t for t in _N},
    "/": {(t, t): t for t in _N},
    "%": {(t, t): t for t in ("int", "uint")},
}
_CONVERSIONS = {
    "int": (frozenset({"int", "uint", "double", "string", "timestamp"}), "int"),
    "uint": (frozenset({"int", "uint", "double", "string"}), "uint"),
    "double": (frozenset({"int", "uint", "double", "string"}), "double"),
    "string": (frozenset({"int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration"}), "string"),
    "bytes": (frozenset({"string", "bytes"}), "bytes"),
    "timestamp": (frozenset({"string", "int", "timestamp"}), "timestamp"),
    "duration": (frozenset({"string", "duration"}), "duration"),
}
_STRING_PREDICATES = frozenset({"contains", "startsWith", "endsWith", "matches"})
_NAMESPACES = frozenset({"math", "strings", "lists", "sets", "optional", "base64"})
_COMPREHENSION_RESULTS = {"all": "bool", "exists": "bool", "exists_one": "bool", "map": "list", "filter": "list",
                          "transformList": "list", "transformMap": "map", "transformMapEntry": "map",
                          "sortBy": "list", "optMap": "optional", "optFlatMap": "optional"}
_RANGES = {"transformMap": ("map",), "transformMapEntry": ("map",), "sortBy": ("list",),
           "optMap": ("optional",), "optFlatMap": ("optional",)}


def literal_type(value: Any) -> str:
    t = type(value)
    return {bool: "bool", int: "int", UInt: "uint", float: "double", str: "string", bytes: "bytes",
            type(None): "null", CelType: "type"}.get(t, "dyn")


def _accepts(param: str, t: str) -> bool:
    if t == "dyn" or param in ("*", t):
        return True
    return param == "num" and t in NUMBERS


class Checker:
    """Annotates every node's `ty` in place; raises ExpressionError for rejected expressions."""

    def __init__(self, source: str, variables: Mapping[str, str] | None = None) -> None:
        self.src = source
        self.variables = variables
        self.scope: list[tuple[str, str]] = []
        self.record_fields: set[str] = set()
        self._bare_record_uses = 0

    def fail(self, node: ast.Node, message: str) -> ExpressionError:
        return error_at(self.src, node.pos, message)

    def check(self, node: ast.Node) -> str:
        node.ty = self._check(node)
        return node.ty

    def _check(self, node: ast.Node) -> str:
        if isinstance(node, ast.Literal):
            return literal_type(node.value)
        if isinstance(node, ast.Ident):
            return self._ident(node)
        if isinstance(node, ast.Select):
            return self._select(node)
        if isinstance(node, ast.Has):
            t = self.check(node.operand)
            if t == "record":
                self._bare_record_uses -= 1  # has(record.f) needs no value: it is always true
                if node.field not in RECORD_FIELDS:
                    raise self.fail(node, f"record has no field '{node.field}'")
            elif t not in ("map", "dyn", "optional"):
                raise self.fail(node, f"has() needs a map, but the operand has type {t}")
            return "bool"
        if isinstance(node, ast.Index):
            return self._index(node)
        if isinstance(node, ast.ListExpr):
            for i, item in enumerate(node.items):
                t = self._value(item)
                if i in node.optional and t not in ("optional", "dyn"):
                    raise self.fail(item, f"an optional list element ([?x]) must be optional, not {t}")
            return "list"
        if isinstance(node, ast.MapExpr):
            for i, (key, value) in enumerate(node.entries):
                kt = self._value(key)
                if kt not in ("string", "int", "uint"):
                    raise self.fail(key, f"map keys must be statically string, int or uint, not {kt}"
                                    " (convert with string() or int())")
                t = self._value(value)
                if i in node.optional and t not in ("optional", "dyn"):
                    raise self.fail(value, f"an optional map entry ({{?k: v}}) needs an optional value, not {t}")
            return "map"
        if isinstance(node, ast.Bind):
            init_t = self._value(node.init)
            self.scope.append((node.var, init_t))
            try:
                return self._value(node.body)
            finally:
                self.scope.pop()
        if isinstance(node, ast.Unary):
            t = self._value(node.operand)
            if node.op == "!":
                if t not in ("bool", "dyn"):
                    raise self.fail(node, f"'!' needs a bool, not {t}")
                return "bool"
            if t not in ("int", "double", "dyn"):
                raise self.fail(node, f"unary '-' needs an int or double, not {t}")
            return t
        if isinstance(node, ast.Binary):
            return self._binary(node)
        if isinstance(node, ast.Logical):
            for term in node.terms:
                t = self._value(term)
                if t not in ("bool", "dyn"):
                    raise self.fail(term, f"operands of '{node.op}' must be bool, not {t}")
            return "bool"
        if isinstance(node, ast.Conditional):
            ct = self._value(node.cond)
            if ct not in ("bool", "dyn"):
                raise self.fail(node.cond, f"the condition of '?:' must be bool, not {ct}")
            a = self._value(node.then)
            b = self._value(node.otherwise)
            return a if a == b else "dyn"
        if isinstance(node, ast.Comprehension):
            return self._comprehension(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise self.fail(node, "unsupported expression")

    def _value(self, node: ast.Node) -> str:
        """Check a node used as a value: the bare `record` variable counts as a map."""
        t = self.check(node)
        return "map" if t == "record" else t

    def _ident(self, node: ast.Ident) -> str:
        for name, t in reversed(self.scope):
            if name == node.name:
                return t
        if self.variables is not None:
            if node.name in self.variables:
                return self.variables[node.name]
            if node.name in TYPE_NAMES:
                return "type"
            raise self.fail(node, f"unknown variable '{node.name}'")
        if node.name == "event":
            return "dyn"
        if node.name == "record":

            self._bare_record_uses += 1
            return "record"
        if node.name in TYPE_NAMES:
            return "type"
        raise self.fail(node, f"unknown variable '{node.name}' (only 'event' and 'record' are defined)")

    def _select(self, node: ast.Select) -> str:
        t = self.check(node.operand)
        if t == "record":
            self._bare_record_uses -= 1
            self.record_fields.add(node.field)
            if node.field not in RECORD_FIELDS:
                known = ", ".join(RECORD_FIELDS)
                raise self.fail(node, f"record has no field '{node.field}' (fields: {known})")
            return RECORD_FIELDS[node.field]
        if t == "optional" or node.optional:
            if t not in ("map", "dyn", "optional"):
                raise self.fail(node, f"a value of type {t} has no field '{node.field}'")
            return "optional"
        if t not in ("map", "dyn"):
            raise self.fail(node, f"a value of type {t} has no field '{node.field}'")
        return "dyn"

    def _index(self, node: ast.Index) -> str:
        t = self._value(node.operand)
        k = self._value(node.index)
        if t == "list" and k not in ("int", "uint", "dyn"):
            raise self.fail(node, f"list index must be int or uint, not {k}")
        if t == "map" and k not in ("string", "int", "uint", "bool", "dyn"):
            raise self.fail(node, f"unsupported map key type {k}")
        if t not in ("list", "map", "dyn", "optional"):
            raise self.fail(node, f"cannot index a value of type {t}")
        return "optional" if node.optional or t == "optional" else "dyn"

    def _binary(self, node: ast.Binary) -> str:
        a = self._value(node.left)
        b = self._value(node.right)
        op = node.op
        if op in ("==", "!="):
            return "bool"
        if op == "in":
            if b not in ("list", "map", "dyn"):
                raise self.fail(node, f"'in' needs a list or map on the right, not {b}")
            return "bool"
        if op in ("<", "<=", ">", ">="):
            if "dyn" in (a, b):
                other = b if a == "dyn" else a
                if other != "dyn" and other not in NUMBERS and other not in _ORDERED:
                    raise self.fail(node, f"'{op}' is not defined for {other}")
            elif not ((a in NUMBERS and b in NUMBERS) or (a == b and a in _ORDERED)):
                raise self.fail(node, f"'{op}' is not defined for ({a}, {b})")
            return "bool"
        table = _ARITH[op]
        results = {res for (x, y), res in table.items() if a in (x, "dyn") and b in (y, "dyn")}
        if not results:
            hint = " (CEL has no implicit int/double conversion: use double() or int())" \
                if a in NUMBERS and b in NUMBERS else ""
            raise self.fail(node, f"'{op}' is not defined for ({a}, {b}){hint}")
        return results.pop() if len(results) == 1 else "dyn"

    def _comprehension(self, node: ast.Comprehension) -> str:
        t = self._value(node.range)
        allowed = _RANGES.get(node.kind, ("list", "map"))
        if t != "dyn" and t not in allowed:
            raise self.fail(node, f"{node.kind}() needs a {' or '.join(allowed)}, not {t}")
        first = "int" if node.var2 is not None and t == "list" else "dyn"
        self.scope.append((node.var, first))
        if node.var2 is not None:
            self.scope.append((node.var2, "dyn"))
        try:
            if node.predicate is not None:
                pt = self._value(node.predicate)
                if pt not in ("bool", "dyn"):
                    raise self.fail(node.predicate, f"the predicate of {node.kind}() must be bool, not {pt}")
            if node.transform is not None:
                tt = self._value(node.transform)
                if node.kind == "optFlatMap" and tt not in ("optional", "dyn"):
                    raise self.fail(node.transform, f"optFlatMap() needs an optional result, not {tt}")
        finally:
            self.scope.pop()
            if node.var2 is not None:
                self.scope.pop()
        return _COMPREHENSION_RESULTS[node.kind]

    def _namespace(self, node: ast.Call) -> None:
        """`math.greatest(...)` parses as a method on `math`: make it the function it names."""
        target = node.target
        if not isinstance(target, ast.Ident) or target.name not in _NAMESPACES:
            return
        if any(name == target.name for name, _ in self.scope):
            return
        if self.variables is not None and target.name in self.variables:
            return
        node.name = f"{target.name}.{node.name}"
        node.target = None

    def _call(self, node: ast.Call) -> str:
        self._namespace(node)
        name = node.name
        target_t = self._value(node.target) if node.target is not None else None
        arg_ts = [self._value(a) for a in node.args]
        if name == "size":
            if target_t is not None:
                if arg_ts:
                    raise self.fail(node, "size() as a method takes no arguments")
                t = target_t
            elif len(arg_ts) == 1:
                t = arg_ts[0]
            else:
                raise self.fail(node, "size() takes exactly one argument")
            if t not in ("string", "bytes", "list", "map", "dyn"):
                raise self.fail(node, f"size() is not defined for {t}")
            return "int"
        if name in _STRING_PREDICATES:
            if target_t is None:
                raise self.fail(node, f"{name}() must be called as a method: s.{name}(x)")
            if len(arg_ts) != 1:
                raise self.fail(node, f"{name}() takes exactly one argument")
            for t, part in ((target_t, node.target), (arg_ts[0], node.args[0])):
                if t not in ("string", "dyn"):
                    raise self.fail(part or node, f"{name}() is defined on strings, not {t}")
            if name == "matches":
                pattern = node.args[0]
                if not isinstance(pattern, ast.Literal) or not isinstance(pattern.value, str):
                    raise self.fail(pattern, "matches() needs a string literal pattern")
                try:
                    translate(pattern.value)
                except RegexError as exc:
                    raise self.fail(pattern, f"unsupported regular expression: {exc}") from None
            return "bool"
        if name in _CONVERSIONS or name == "dyn":
            if target_t is not None:
                raise self.fail(node, f"{name}() is a function, not a method")
            if len(arg_ts) != 1:
                raise self.fail(node, f"{name}() takes exactly one argument")
            if name == "dyn":
                return "dyn"
            allowed, result = _CONVERSIONS[name]
            if arg_ts[0] != "dyn" and arg_ts[0] not in allowed:
                raise self.fail(node, f"{name}() is not defined for {arg_ts[0]}")
            return result
        if name in TIMESTAMP_GETTERS:
            if target_t is None:
                raise self.fail(node, f"{name}() must be called as a method")
            if len(arg_ts) > 1:
                raise self.fail(node, f"{name}() takes at most one argument (a time zone)")
            if arg_ts:
                if arg_ts[0] not in ("string", "dyn"):
                    raise self.fail(node, f"the time zone of {name}() must be a string, not {arg_ts[0]}")
                if target_t == "duration":
                    raise self.fail(node, f"{name}() on a duration takes no time zone")
            allowed_t = {"timestamp", "dyn"} | ({"duration"} if name in DURATION_GETTERS else set())
            if target_t not in allowed_t:
                raise self.fail(node, name + f"() is not defined for {target_t}")
            return "int"
        result = self._library_call(node, target_t, arg_ts)
        if name == "format" and target_t is not None:
            self._check_format(node)
        return result

    def _check_format(self, node: ast.Call) -> None:
        """A literal format string is parsed here; with a list literal, the number of arguments and
        the static type of each are checked against its clauses (as cel-go's format validator does)."""
        target = node.target
        if not isinstance(target, ast.Literal) or type(target.value) is not str:
            return
        _, clauses, error = parse_format(target.value)
        if error is not None:
            raise self.fail(target, f"format(): {error}")
        args = node.args[0]
        if not isinstance(args, ast.ListExpr) or args.optional:
            return
        items = args.items
        if len(clauses) > len(items):
            raise self.fail(args, f"format(): {len(clauses)} clauses but only {len(items)} values in the list "
                                  f"(index {len(items)} out of range)")
        if len(items) > len(clauses):
            raise self.fail(args, "format(): too many arguments supplied to string.format "
                                  f"(expected {len(clauses)}, got {len(items)})")
        for (kind, _), item in zip(clauses, items, strict=True):
            self._check_clause_arg(kind, item)

    def _check_clause_arg(self, kind: str, item: ast.Node) -> None:
        t = "map" if item.ty == "record" else item.ty
        if t != "dyn" and t not in CLAUSE_TYPES[kind]:
            raise self.fail(item, f"format(): {clause_error(kind, t)}")
        if kind == "s" and isinstance(item, ast.ListExpr):
            for i, element in enumerate(item.items):
                if i not in item.optional:
                    self._check_clause_arg(kind, element)
        elif kind == "s" and isinstance(item, ast.MapExpr):
            for i, (key, value) in enumerate(item.entries):
                self._check_clause_arg(kind, key)
                if i not in item.optional:
                    self._check_clause_arg(kind, value)

    def _library_call(self, node: ast.Call, target_t: str | None, arg_ts: list[str]) -> str:
        name = node.name
        member = target_t is not None
        fn = FUNCTIONS.get((name, member))
        if fn is None:
            if FUNCTIONS.get((name, not member)) is not None:
                form = "a method: x." if not member else "a function: "
                raise self.fail(node, f"{name}() must be called as {form}{name}(...)")
            raise self.fail(node, f"unknown function '{name}'")
        types = ([target_t] if target_t is not None else []) + arg_ts
        results = {o.result for o in fn.overloads if _matches(o, types)}
        if not results:
            raise self.fail(node, f"no matching overload for {name}({', '.join(types)})")
        return results.pop() if len(results) == 1 else "dyn"


def _matches(overload: Overload, types: list[str]) -> bool:
    params = overload.params
    if overload.variadic:
        if len(types) == 1:
            return _accepts(params[0], types[0])
        return len(types) > 1 and all(_accepts("num", t) for t in types)
    return len(params) == len(types) and all(_accepts(p, t) for p, t in zip(params, types, strict=True))


def check(source: str, node: ast.Node,
          variables: Mapping[str, str] | None = None) -> tuple[str, frozenset[str]]:
    """Check the AST; return its static result type and the `record` fields whose values it reads
    (all of them when the bare `record` is used as a value)."""
    checker = Checker(source, variables)
    t = checker.check(node)
    fields = frozenset(RECORD_FIELDS) if checker._bare_record_uses > 0 else frozenset(checker.record_fields)
    return ("map" if t == "record" else t), fields
