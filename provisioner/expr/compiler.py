"""Compiles a checked AST into nested Python closures `fn(event, record) -> value`.

No source text is generated or `eval`ed: every node becomes a closure over its children's
closures.  Literal sub-expressions are folded, and the shapes that dominate real filters and
projections (field chains, comparisons with literals, `&&`/`||` chains) get dedicated closures.
"""

from __future__ import annotations

import copy
import math
import operator
import threading
from collections.abc import Callable, Mapping
from typing import Any

from . import ast
from . import runtime as rt
from .errors import EvaluationError
from .library import FUNCTIONS, sort_key_check
from .regex import translate
from .runtime import UInt, no_overload
from .values import NONE, CelType, Optional, some

Fn = Callable[[Any, Any], Any]

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": rt.add, "-": rt.sub, "*": rt.mul, "/": rt.div, "%": rt.mod,
    "==": rt.eq, "!=": rt.ne, "<": rt.lt, "<=": rt.le, ">": rt.gt, ">=": rt.ge,
}
_PY_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_SWAPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "int": rt.to_int, "uint": rt.to_uint, "double": rt.to_double, "string": rt.to_string,
    "bytes": rt.to_bytes, "timestamp": rt.to_timestamp, "duration": rt.to_duration,
}
_EXACT_FLOAT_INT = 2**53


class Compiler:
    """Turns one checked AST into a closure; keeps per-program state for comprehension variables."""

    def __init__(self, variables: Mapping[str, str] | None = None) -> None:
        self.variables = variables
        self.consts: dict[Fn, Any] = {}
        self.scope: list[tuple[str, str]] = []
        self.locals = threading.local()
        self.slot_count = 0

    # --- constants -----------------------------------------------------------------------------
    def const(self, value: Any) -> Fn:
        if type(value) in (list, dict):
            def fresh(e: Any, r: Any) -> Any:
                return copy.deepcopy(value)
            fn: Fn = fresh
        else:
            def constant(e: Any, r: Any) -> Any:
                return value
            fn = constant
        self.consts[fn] = value
        return fn

    def is_const(self, fn: Fn) -> bool:
        return fn in self.consts

    def fold(self, fn: Fn, parts: list[Fn]) -> Fn:
        """Replace `fn` by its value when all its inputs are constants and it does not fail."""
        if all(p in self.consts for p in parts):
            try:
                return self.const(fn(None, None))
            except EvaluationError:
                return fn
        return fn

    # --- dispatch ------------------------------------------------------------------------------
    def compile(self, node: ast.Node) -> Fn:
        method = getattr(self, "c_" + type(node).__name__)
        fn: Fn = method(node)
        return fn

    def c_Literal(self, node: ast.Literal) -> Fn:
        return self.const(node.value)

    def c_Ident(self, node: ast.Ident) -> Fn:
        for name, slot in reversed(self.scope):
            if name == node.name:
                return _slot_reader(self.locals, slot)
        if node.ty == "type" and (self.variables is None or node.name not in self.variables):
            return self.const(CelType(node.name))
        if self.variables is not None:
            name = node.name

            def variable(e: Any, r: Any) -> Any:
                return e[name]
            return variable
        if node.name == "event":
            def event(e: Any, r: Any) -> Any:
                return e
            return event

        as_timestamp = rt.times.as_timestamp

        def record(e: Any, r: Any) -> Any:
            if "timestamp" in r:
                return {**r, "timestamp": as_timestamp(r["timestamp"])}
            return r
        return record

    def c_Select(self, node: ast.Select) -> Fn:
        path: list[str] = []
        cur: ast.Node = node
        plain = True
        while isinstance(cur, ast.Select):
            path.append(cur.field)
            plain = plain and not cur.optional
            cur = cur.operand
        path.reverse()
        root = cur
        if (plain and isinstance(root, ast.Ident) and self.variables is None
                and not any(n == root.name for n, _ in self.scope)):
            if root.name == "record":
                return _record_chain(path)
            return _event_chain(path)
        inner = self.compile(node.operand)
        field = node.field
        select = rt.opt_select if node.optional else rt.select

        def sel(e: Any, r: Any) -> Any:
            return select(inner(e, r), field)
        return self.fold(sel, [inner])

    def c_Has(self, node: ast.Has) -> Fn:
        if node.operand.ty == "record":
            return self.const(True)
        inner = self.compile(node.operand)
        field = node.field
        has_field = rt.has_field

        def has(e: Any, r: Any) -> bool:
            return has_field(inner(e, r), field)
        return self.fold(has, [inner])

    def c_Index(self, node: ast.Index) -> Fn:
        coll = self.compile(node.operand)
        key = self.compile(node.index)
        index = rt.opt_index if node.optional else rt.index
        if self.is_const(key) and type(self.consts[key]) is str and not node.optional:
            k = self.consts[key]

            def index_str(e: Any, r: Any) -> Any:
                c = coll(e, r)
                if type(c) is dict:
                    try:
                        return c[k]
                    except KeyError:
                        raise EvaluationError(f"no such key: {k!r}") from None
                return index(c, k)
            return self.fold(index_str, [coll])

        def idx(e: Any, r: Any) -> Any:
            return index(coll(e, r), key(e, r))
        return self.fold(idx, [coll, key])

    def c_ListExpr(self, node: ast.ListExpr) -> Fn:
        items = [self.compile(i) for i in node.items]
        if node.optional:
            flags = [i in node.optional for i in range(len(items))]

            def make_optional_list(e: Any, r: Any) -> list[Any]:
                out = []
                for f, optional in zip(items, flags, strict=True):
                    v = f(e, r)
                    if optional:
                        if type(v) is not Optional:
                            raise no_overload("[?_]", v)
                        if v.present:
                            out.append(v.value)
                    else:
                        out.append(v)
                return out
            return self.fold(make_optional_list, items)

        def make_list(e: Any, r: Any) -> list[Any]:
            return [f(e, r) for f in items]
        return self.fold(make_list, items)

    def c_MapExpr(self, node: ast.MapExpr) -> Fn:
        entries = [(self.compile(k), self.compile(v), i in node.optional) for i, (k, v) in enumerate(node.entries)]
        make_key = rt.make_map_key

        def make_map(e: Any, r: Any) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for kf, vf, optional in entries:
                k = make_key(kf(e, r))
                v = vf(e, r)
                if optional:
                    if type(v) is not Optional:
                        raise no_overload("{?_: _}", v)
                    if not v.present:
                        continue
                    v = v.value
                if k in out:
                    raise EvaluationError(f"duplicate map key: {k!r}")
                out[k] = v
            return out
        return self.fold(make_map, [p for kf, vf, _ in entries for p in (kf, vf)])

    def c_Unary(self, node: ast.Unary) -> Fn:
        inner = self.compile(node.operand)
        op = rt.logical_not if node.op == "!" else rt.neg

        def unary(e: Any, r: Any) -> Any:
            return op(inner(e, r))
        return self.fold(unary, [inner])

    def c_Binary(self, node: ast.Binary) -> Fn:
        left = self.compile(node.left)
        right = self.compile(node.right)
        op = node.op
        if op == "in":
            contains = rt.contains

            def in_(e: Any, r: Any) -> bool:
                return contains(left(e, r), right(e, r))
            return self.fold(in_, [left, right])
        if op in _SWAPPED and not (self.is_const(left) and self.is_const(right)):
            if self.is_const(right):
                special = _compare_literal(op, left, self.consts[right])
                if special is not None:
                    return special
            elif self.is_const(left):
                special = _compare_literal(_SWAPPED[op], right, self.consts[left])
                if special is not None:
                    return special
        fn = _BINARY[op]

        def binary(e: Any, r: Any) -> Any:
            return fn(left(e, r), right(e, r))
        return self.fold(binary, [left, right])

    def c_Logical(self, node: ast.Logical) -> Fn:
        terms = [self.compile(t) for t in node.terms]
        stop = node.op == "||"  # the value that decides the result
        fn = _logical(terms, stop, node.op)
        return self.fold(fn, terms)

    def c_Conditional(self, node: ast.Conditional) -> Fn:
        cond = self.compile(node.cond)
        then = self.compile(node.then)
        otherwise = self.compile(node.otherwise)

        def conditional(e: Any, r: Any) -> Any:
            c = cond(e, r)
            if c is True:
                return then(e, r)
            if c is False:
                return otherwise(e, r)
            raise no_overload("'?:'", c)
        if self.is_const(cond):
            value = self.consts[cond]
            if value is True:
                return then
            if value is False:
                return otherwise
        return conditional

    def new_slot(self, name: str) -> str:
        self.slot_count += 1
        slot = f"v{self.slot_count}"
        self.scope.append((name, slot))
        return slot

    def c_Comprehension(self, node: ast.Comprehension) -> Fn:
        rng = self.compile(node.range)
        depth = len(self.scope)
        slot = self.new_slot(node.var)
        slot2 = self.new_slot(node.var2) if node.var2 is not None else None
        try:
            pred = self.compile(node.predicate) if node.predicate is not None else None
            transform = self.compile(node.transform) if node.transform is not None else None
        finally:
            del self.scope[depth:]
        if slot2 is not None:
            return _comprehension2(node.kind, rng, pred, transform, local=self.locals, slots=(slot, slot2))
        if node.kind in ("sortBy", "optMap", "optFlatMap"):
            assert transform is not None
            return _special_comprehension(node.kind, rng, transform, local=self.locals, slot=slot)
        return _comprehension(node.kind, rng, pred, transform, local=self.locals, slot=slot)

    def c_Bind(self, node: ast.Bind) -> Fn:
        init = self.compile(node.init)
        depth = len(self.scope)
        slot = self.new_slot(node.var)
        try:
            body = self.compile(node.body)
        finally:
            del self.scope[depth:]
        local = self.locals

        def bind(e: Any, r: Any) -> Any:
            setattr(local, slot, init(e, r))
            return body(e, r)
        return bind

    def c_Call(self, node: ast.Call) -> Fn:
        name = node.name
        args = [self.compile(a) for a in node.args]
        if node.target is not None:
            args.insert(0, self.compile(node.target))
        if name == "dyn":
            return args[0]
        if name == "matches":
            search = translate(node.args[0].value).search  # type: ignore[attr-defined]
            target = args[0]

            def matches(e: Any, r: Any) -> bool:
                s = target(e, r)
                if type(s) is not str:
                    raise no_overload("matches()", s)
                return search(s) is not None
            return self.fold(matches, [target])
        if name in ("contains", "startsWith", "endsWith"):
            return self.fold(_string_predicate(name, args[0], args[1], self.consts), args)
        if name in ("or", "orValue") and node.target is not None:
            return _lazy_optional(name, args[0], args[1])
        if name in rt.TIMESTAMP_GETTERS and len(args) == 2:
            getter = rt.time_getter(name)
            value, tz = args

            def zoned(e: Any, r: Any) -> Any:
                return getter(value(e, r), tz(e, r))
            return self.fold(zoned, args)
        if name == "size":
            unary: Callable[[Any], Any] = rt.size
        elif name in _CONVERT:
            unary = _CONVERT[name]
        elif name in rt.TIMESTAMP_GETTERS:
            unary = rt.time_getter(name)
        else:
            return self.library_call(name, node.target is not None, args)
        arg = args[0]

        def call(e: Any, r: Any) -> Any:
            return unary(arg(e, r))
        return self.fold(call, [arg])


    def library_call(self, name: str, member: bool, args: list[Fn]) -> Fn:
        impl = FUNCTIONS[(name, member)].impl
        if not args:
            def call0(e: Any, r: Any) -> Any:
                return impl()
            return self.fold(call0, args)
        if len(args) == 1:
            (a,) = args

            def call1(e: Any, r: Any) -> Any:
                return impl(a(e, r))
            return self.fold(call1, args)
        if len(args) == 2:
            a, b = args

            def call2(e: Any, r: Any) -> Any:
                return impl(a(e, r), b(e, r))
            return self.fold(call2, args)

        def call_n(e: Any, r: Any) -> Any:
            return impl(*[f(e, r) for f in args])
        return self.fold(call_n, args)


def _lazy_optional(name: str, target: Fn, other: Fn) -> Fn:
    """`opt.or(other)` and `opt.orValue(other)` evaluate `other` only when `opt` is empty."""
    def lazy(e: Any, r: Any) -> Any:
        opt = target(e, r)
        if type(opt) is not Optional:
            raise no_overload(f"{name}()", opt)
        if opt.present:
            return opt if name == "or" else opt.value
        v = other(e, r)
        if name == "or" and type(v) is not Optional:
            raise no_overload("or()", opt, v)
        return v
    return lazy


def _slot_reader(local: threading.local, slot: str) -> Fn:
    get = operator.attrgetter(slot)

    def read(e: Any, r: Any) -> Any:
        return get(local)
    return read


def _chain_error(root: Any, root_name: str, path: list[str]) -> EvaluationError:
    value = root
    where = root_name
    for field in path:
        if type(value) is not dict:
            kind = rt.type_name(value)
            return EvaluationError(f"no field {field!r} on {where}, a value of type {kind}")
        if field not in value:
            return EvaluationError(f"no such key {field!r} in {where}")
        value = value[field]
        where = f"{where}.{field}"
    return EvaluationError(f"cannot evaluate {where}")


def _event_chain(path: list[str]) -> Fn:
    """`event.a.b...`: plain dict subscripts, with the CEL error built only on failure."""
    if len(path) == 1:
        (k1,) = path

        def get1(e: Any, r: Any) -> Any:
            if type(e) is dict:
                try:
                    return e[k1]
                except KeyError:
                    pass
            raise _chain_error(e, "event", path)
        return get1
    if len(path) == 2:
        k1, k2 = path

        def get2(e: Any, r: Any) -> Any:
            try:
                v = e[k1][k2]
            except (KeyError, TypeError, IndexError):
                raise _chain_error(e, "event", path) from None
            if type(e) is dict and type(e[k1]) is dict:
                return v
            raise _chain_error(e, "event", path)
        return get2

    def get_n(e: Any, r: Any) -> Any:
        v = e
        for k in path:
            if type(v) is not dict or k not in v:
                raise _chain_error(e, "event", path)
            v = v[k]
        return v
    return get_n


def _record_chain(path: list[str]) -> Fn:
    first = path[0]
    rest = path[1:]
    if first == "timestamp":
        as_timestamp = rt.times.as_timestamp

        def rec_ts(e: Any, r: Any) -> Any:
            return as_timestamp(r["timestamp"])
        return rec_ts
    if not rest:
        def rec1(e: Any, r: Any) -> Any:
            return r[first]
        return rec1

    def rec_n(e: Any, r: Any) -> Any:
        v = r[first]
        for k in rest:
            if type(v) is not dict or k not in v:
                raise _chain_error(r, "record", path)
            v = v[k]
        return v
    return rec_n


def _compare_literal(op: str, operand: Fn, lit: Any) -> Fn | None:
    """A closure for `operand OP literal` that avoids generic dispatch, or None if not applicable."""
    tl = type(lit)
    if op in ("==", "!="):
        positive = op == "=="
        if tl is str or tl is bytes:
            if positive:
                def eq_str(e: Any, r: Any) -> bool:
                    return bool(operand(e, r) == lit)
                return eq_str

            def ne_str(e: Any, r: Any) -> bool:
                return bool(operand(e, r) != lit)
            return ne_str
        if tl is bool or lit is None:
            def eq_ident(e: Any, r: Any) -> bool:
                return (operand(e, r) is lit) is positive
            return eq_ident
        if (tl is int or tl is UInt) and abs(lit) <= _EXACT_FLOAT_INT:
            def eq_int(e: Any, r: Any) -> bool:
                v = operand(e, r)
                return (v == lit and type(v) is not bool) is positive
            return eq_int
        if tl is float:
            def eq_float(e: Any, r: Any) -> bool:
                v = operand(e, r)
                t = type(v)
                if t is float or t is int or t is UInt:
                    return (float(v) == lit) is positive
                return not positive
            return eq_float
        return None
    cmp = _PY_ORDER[op]
    generic = _BINARY[op]
    if tl is float and not math.isnan(lit):
        def order_float(e: Any, r: Any) -> bool:
            v = operand(e, r)
            t = type(v)
            if t is float:
                if v == v:  # noqa: PLR0124 - NaN test
                    return cmp(v, lit)
            elif t is int or t is UInt:
                return cmp(float(v), lit)
            return bool(generic(v, lit))
        return order_float
    if tl is int or tl is UInt:
        def order_int(e: Any, r: Any) -> bool:
            v = operand(e, r)
            t = type(v)
            if t is int or t is UInt:
                return cmp(v, lit)
            return bool(generic(v, lit))
        return order_int
    if tl is str:
        def order_str(e: Any, r: Any) -> bool:
            v = operand(e, r)
            if type(v) is str:
                return cmp(v, lit)
            return bool(generic(v, lit))
        return order_str
    return None


def _logical(terms: list[Fn], stop: bool, op: str) -> Fn:
    """n-ary `&&` (stop on False) / `||` (stop on True) with CEL's commutative error absorption."""
    go = not stop
    if len(terms) == 2:
        a, b = terms

        def logical2(e: Any, r: Any) -> Any:
            try:
                x = a(e, r)
            except EvaluationError as exc:
                x = exc
            if x is stop:
                return stop
            try:
                y = b(e, r)
            except EvaluationError:
                if isinstance(x, EvaluationError):
                    raise x from None
                raise
            if y is stop:
                return stop
            if x is go and y is go:
                return go
            if isinstance(x, EvaluationError):
                raise x
            raise no_overload(f"'{op}'", y if x is go else x)
        return logical2

    def logical_n(e: Any, r: Any) -> Any:
        error: EvaluationError | None = None
        for f in terms:
            try:
                v = f(e, r)
            except EvaluationError as exc:
                if error is None:
                    error = exc
                continue
            if v is stop:
                return stop
            if v is not go and error is None:
                error = no_overload(f"'{op}'", v)
        if error is not None:
            raise error
        return go
    return logical_n


def _string_predicate(name: str, target: Fn, arg: Fn, consts: dict[Fn, Any]) -> Fn:
    impl = rt.string_method(name)
    if arg in consts and type(consts[arg]) is str:
        lit = consts[arg]
        if name == "contains":
            def contains_lit(e: Any, r: Any) -> bool:
                s = target(e, r)
                if type(s) is str:
                    return lit in s
                return bool(impl(s, lit))
            return contains_lit
        if name == "startsWith":
            def starts_lit(e: Any, r: Any) -> bool:
                s = target(e, r)
                if type(s) is str:
                    return s.startswith(lit)
                return bool(impl(s, lit))
            return starts_lit

    def predicate(e: Any, r: Any) -> bool:
        return bool(impl(target(e, r), arg(e, r)))
    return predicate


def _comprehension(kind: str, rng: Fn, pred: Fn | None, transform: Fn | None, *,
                   local: threading.local, slot: str) -> Fn:
    """Macros iterate lists in order and maps in insertion order, stopping as the reference does."""
    def items(e: Any, r: Any) -> list[Any]:
        coll = rng(e, r)
        if type(coll) is list:
            return coll
        if type(coll) is dict:
            return list(coll)
        raise no_overload(kind + "()", coll)

    def test(e: Any, r: Any) -> bool:
        assert pred is not None
        v = pred(e, r)
        if v is True or v is False:
            return v
        raise no_overload(f"{kind}() predicate", v)

    if kind in {"all", "exists"}:
        decisive = kind == "exists"

        def quantifier(e: Any, r: Any) -> bool:
            # CEL folds with && (all) or || (exists): a decisive result absorbs earlier errors.
            error: EvaluationError | None = None
            for x in items(e, r):
                setattr(local, slot, x)
                try:
                    if test(e, r) is decisive:
                        return decisive
                except EvaluationError as exc:
                    if error is None:
                        error = exc
            if error is not None:
                raise error
            return not decisive
        return quantifier
    if kind == "exists_one":
        def exists_one(e: Any, r: Any) -> bool:
            count = 0
            for x in items(e, r):
                setattr(local, slot, x)
                if test(e, r):
                    count += 1
            return count == 1
        return exists_one
    if kind == "filter":
        def filter_(e: Any, r: Any) -> list[Any]:
            out = []
            for x in items(e, r):
                setattr(local, slot, x)
                if test(e, r):
                    out.append(x)
            return out
        return filter_
    assert transform is not None

    def map_(e: Any, r: Any) -> list[Any]:
        out = []
        for x in items(e, r):
            setattr(local, slot, x)
            if pred is None or test(e, r):
                out.append(transform(e, r))
        return out
    return map_


def _special_comprehension(kind: str, rng: Fn, transform: Fn, *, local: threading.local, slot: str) -> Fn:
    """sortBy over a list; optMap and optFlatMap over an optional value."""
    if kind == "sortBy":
        def sort_by(e: Any, r: Any) -> list[Any]:
            items = rng(e, r)
            if type(items) is not list:
                raise no_overload("sortBy()", items)
            keys = []
            for x in items:
                setattr(local, slot, x)
                keys.append(transform(e, r))
            sort_key_check(keys, "sortBy()")
            order = sorted(range(len(items)), key=keys.__getitem__)
            return [items[i] for i in order]
        return sort_by

    def opt_map(e: Any, r: Any) -> Any:
        opt = rng(e, r)
        if type(opt) is not Optional:
            raise no_overload(f"{kind}()", opt)
        if not opt.present:
            return NONE
        setattr(local, slot, opt.value)
        v = transform(e, r)
        if kind == "optMap":
            return some(v)
        if type(v) is not Optional:
            raise no_overload("optFlatMap()", v)
        return v
    return opt_map


def _comprehension2(kind: str, rng: Fn, pred: Fn | None, transform: Fn | None, *,
                    local: threading.local, slots: tuple[str, str]) -> Fn:
    """The two-variable macros: (index, value) over lists, (key, value) over maps."""
    first, second = slots

    def pairs(e: Any, r: Any) -> list[tuple[Any, Any]]:
        coll = rng(e, r)
        if type(coll) is list:
            return list(enumerate(coll))
        if type(coll) is dict:
            return list(coll.items())
        raise no_overload(kind + "()", coll)

    def bind(k: Any, v: Any) -> None:
        setattr(local, first, k)
        setattr(local, second, v)

    def test(e: Any, r: Any) -> bool:
        assert pred is not None
        v = pred(e, r)
        if v is True or v is False:
            return v
        raise no_overload(f"{kind}() predicate", v)

    if kind in ("all", "exists"):
        decisive = kind == "exists"

        def quantifier(e: Any, r: Any) -> bool:
            error: EvaluationError | None = None
            for k, v in pairs(e, r):
                bind(k, v)
                try:
                    if test(e, r) is decisive:
                        return decisive
                except EvaluationError as exc:
                    if error is None:
                        error = exc
            if error is not None:
                raise error
            return not decisive
        return quantifier
    if kind == "exists_one":
        def exists_one(e: Any, r: Any) -> bool:
            count = 0
            for k, v in pairs(e, r):
                bind(k, v)
                if test(e, r):
                    count += 1
            return count == 1
        return exists_one
    assert transform is not None
    if kind == "transformList":
        def transform_list(e: Any, r: Any) -> list[Any]:
            out = []
            for k, v in pairs(e, r):
                bind(k, v)
                if pred is None or test(e, r):
                    out.append(transform(e, r))
            return out
        return transform_list
    entry = kind == "transformMapEntry"

    def transform_map(e: Any, r: Any) -> dict[Any, Any]:
        coll = rng(e, r)
        if type(coll) is not dict:
            raise no_overload(kind + "()", coll)
        out: dict[Any, Any] = {}
        for k, v in coll.items():
            bind(k, v)
            if pred is not None and not test(e, r):
                continue
            if not entry:
                out[k] = transform(e, r)
                continue
            result = transform(e, r)
            if type(result) is not dict:
                raise no_overload("transformMapEntry()", result)
            for rk, rv in result.items():
                if rk in out:
                    raise EvaluationError(f"transformMapEntry(): duplicate key {rk!r}")
                out[rk] = rv
        return out
    return transform_map
