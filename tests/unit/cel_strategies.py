"""Hypothesis strategies producing random events and well-formed CEL expressions over them."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

KEYS = ["a", "b", "c", "s", "n"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-5, max_value=5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 2.5, 1e20, 0.5]),
    st.text(max_size=6),
    st.sampled_from(["", "a", "ab", "b", "é", "A1"]),
)

json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=3),
    ),
    max_leaves=8,
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """An event dict; `l` is always a list so macros over it are deterministic in the reference."""
    event = draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5))
    event["l"] = draw(st.lists(json_values, max_size=4))
    return event


def _string_literal(s: str) -> str:
    out = []
    for ch in s:
        if ch in "'\\":
            out.append("\\" + ch)
        elif ch.isprintable() and ord(ch) < 0x10000:
            out.append(ch)
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "'" + "".join(out) + "'"


literals = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.integers(min_value=-3, max_value=3).map(str),
    st.integers(min_value=0, max_value=2**64 - 1).map(lambda i: f"{i}u"),
    st.integers(min_value=0, max_value=5).map(lambda i: f"{i}u"),
    st.sampled_from(["0.0", "1.0", "2.5", "-1.5", "1e20", "1e300", ".5", "0x10", "0xFFu", "-0.0"]),
    st.text(max_size=4).map(_string_literal),
    st.sampled_from(["'a'", "\"ab\"", "r'\\n'", "'''x'''", "b'ab'", "b'\\xff'", "'\\u00e9'", "'\\101'"]),
    st.sampled_from(["true", "false", "null"]),
)

paths = st.one_of(
    st.just("event"),
    st.sampled_from(KEYS).map(lambda k: f"event.{k}"),
    st.tuples(st.sampled_from(KEYS), st.sampled_from(KEYS)).map(lambda p: f"event.{p[0]}.{p[1]}"),
    st.sampled_from(KEYS).map(lambda k: f"event['{k}']"),
    st.just("event.l"),
    st.integers(min_value=-1, max_value=4).map(lambda i: f"event.l[{i}]"),
)

UNARY_FUNCS = ["size", "int", "uint", "double", "string", "bytes", "dyn"]
METHODS = ["contains", "startsWith", "endsWith"]
BINOPS = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "in", "&&", "||"]


def expressions(var: str | None = None, depth: int = 3) -> st.SearchStrategy[str]:
    """Random expressions; `var` is a comprehension variable in scope, if any."""
    leaves = st.one_of(literals, paths, *([st.just(var)] if var else []))
    if depth == 0:
        return leaves
    sub = expressions(var, depth - 1)
    inner_var = "x" if var != "x" else "y"
    body = expressions(inner_var, depth - 1)
    return st.one_of(
        leaves,
        st.tuples(sub, st.sampled_from(BINOPS), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["!", "-"]), sub).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(sub, sub, sub).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(st.sampled_from(UNARY_FUNCS), sub).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(sub, st.sampled_from(METHODS), sub).map(lambda t: f"({t[0]}).{t[1]}({t[2]})"),
        st.lists(sub, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(["'a'", "'b'", "1", "2", "string(event.a)"]), sub), max_size=2)
        .map(lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
        st.sampled_from(KEYS).map(lambda k: f"has(event.{k})"),
        st.tuples(st.sampled_from(KEYS), st.sampled_from(KEYS)).map(lambda p: f"has(event.{p[0]}.{p[1]})"),
        st.tuples(st.sampled_from(["event.l", "[1, 2, 'a']", "[]", "[0.5, -1]"]),
                  st.sampled_from(["all", "exists", "exists_one", "filter", "map"]), body)
        .map(lambda t: f"{t[0]}.{t[1]}({inner_var}, {t[2]})"),
        st.tuples(st.sampled_from(["event.l", "[1, 2, 3]"]), body, body)
        .map(lambda t: f"{t[0]}.map({inner_var}, {t[1]}, {t[2]})"),
        st.tuples(sub, sub).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.tuples(sub, st.sampled_from(KEYS)).map(lambda t: f"({t[0]}).{t[1]}"),
    )
