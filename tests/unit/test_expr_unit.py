"""Hand-written cases for the CEL engine: values, errors, compile-time rejections and limits."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.expr import (
    MAX_DEPTH,
    MAX_SOURCE_LENGTH,
    EvaluationError,
    ExpressionError,
    Program,
    UInt,
    compile_expression,
)
from provisioner.expr.runtime import make_duration, make_timestamp

EVENT = {"a": 1, "b": 2.5, "s": "hi", "n": None, "l": [1, 2, 3], "m": {"x": 1}, "t": True,
         "type": "OrderPlaced", "amount": 150.0, "qty": 2, "customer": {"tier": "gold", "id": "c1"},
         "items": [{"price": 20.0}, {"price": 130.0}]}
RECORD = {"key": "k", "headers": {"h": "v"}, "topic": "orders", "partition": 1, "offset": 7,
          "timestamp": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)}


def run(source: str, event: Any = None) -> Any:
    return compile_expression(source)(EVENT if event is None else event, RECORD)


VALUES: list[tuple[str, Any]] = [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 / 2", 3), ("-7 / 2", -3), ("-7 % 2", -1), ("7 % -2", 1),
    ("1.0 / 0.0", math.inf), ("-1.0 / 0.0", -math.inf), ("2u + 3u", UInt(5)), ("5u % 2u", UInt(1)),
    ("-9223372036854775808", -(2**63)), ("0x1F", 31), ("0x1Fu", UInt(31)), ("1e3", 1000.0), (".5", 0.5),
    ("'a' + 'b'", "ab"), ("b'a' + b'b'", b"ab"), ("[1] + [2]", [1, 2]), ("{'a': 1}", {"a": 1}),
    ("1 == 1.0", True), ("1 < 1.5", True), ("1u == 1", True), ("1 == true", False), ("null == null", True),
    ("[1, 2] == [1.0, 2.0]", True), ("{'a': 1} == {'a': 1.0}", True), ("1 == 'a'", False),
    ("'a' < 'b'", True), ("b'a' < b'b'", True), ("false < true", True),
    ("1 in [1, 2]", True), ("1.0 in [1, 2]", True), ("'a' in {'a': 1}", True), ("1u in {1: 2}", True),
    ("!true", False), ("!!true", True), ("--1", 1), ("true ? 1 : 'a'", 1), ("false ? 1 : 'a'", "a"),
    ("false && (1 / 0 == 1)", False), ("(1 / 0 == 1) && false", False), ("(1 / 0 == 1) || true", True),
    ("true || (1 / 0 == 1)", True), ("1 == 1 == true", True),
    ("size('héllo')", 5), ("size(b'abc')", 3), ("size([1, 2])", 2), ("'abc'.size()", 3), ("size(event)", 12),
    ("'hello'.contains('ell')", True), ("'hello'.startsWith('he')", True), ("'hello'.endsWith('lo')", True),
    ("'hello'.matches('^h.*o$')", True), ("'a1'.matches('[0-9]')", True), ("'ab'.matches('^(a|c)b$')", True),
    ("'x y'.matches('\\\\s')", True), ("'x\\n'.matches('x$')", False),
    ("int('12')", 12), ("int('+12')", 12), ("int(1.9)", 1), ("int(-1.9)", -1), ("int(1u)", 1),
    ("uint(1.5)", UInt(1)), ("uint('5')", UInt(5)), ("double(1)", 1.0), ("double('1e3')", 1000.0),
    ("double('inf')", math.inf), ("string(1)", "1"), ("string(1.5)", "1.5"), ("string(1.0)", "1"),
    ("string(1e20)", "1e+20"), ("string(1e-7)", "1e-07"), ("string(123456.0)", "123456"), ("string(-0.0)", "-0"),
    ("string(b'abc')", "abc"), ("string(1u)", "1"), ("bytes('abc')", b"abc"), ("dyn(1)", 1),
    ("'\\x41\\u00e9\\101\\n'", "Aé\x41\n"), ("r'\\n'", "\\n"), ("'''x'''", "x"), ("b'\\xff'", b"\xff"),
    ("[1, 2, 3].all(x, x > 0)", True), ("[1, 2, 3].exists(x, x > 2)", True),
    ("[1, 2, 3].exists_one(x, x > 1)", False), ("[1, 2, 3].map(x, x * 2)", [2, 4, 6]),
    ("[1, 2, 3].map(x, x > 1, x * 2)", [4, 6]), ("[1, 2, 3].filter(x, x > 1)", [2, 3]),
    ("[1, 'a'].exists(x, x > 0)", True), ("[0, 'a'].all(x, x > 0)", False),
    ("[[1], [2]].map(x, x.map(y, y + 1))", [[2], [3]]), ("{'a': 1}.all(k, k == 'a')", True),
    ("has(event.a)", True), ("has(event.zz)", False), ("has(event.m.x)", True), ("has(record.key)", True),
    ("event.a", 1), ("event.m.x", 1), ("event['m']['x']", 1), ("event.l[0]", 1), ("event.l[1u]", 2),
    ("event.amount * double(event.qty)", 300.0), ("event.customer.id", "c1"),
    ("event.type == 'OrderPlaced' && event.amount >= 100.0 && event.customer.tier == 'gold'", True),
    ("event.items.exists(i, i.price > 100.0)", True),
    ("record.key", "k"), ("record.headers.h", "v"), ("record.topic", "orders"), ("record.partition", 1),
    ("record.offset", 7), ("record.timestamp.getFullYear()", 2024), ("record.timestamp.getMonth()", 4),
    ("record.timestamp.getDayOfMonth()", 5), ("record.timestamp.getDate()", 6),
    ("record.timestamp.getHours()", 7), ("record.timestamp > timestamp('2024-01-01T00:00:00Z')", True),
    ("timestamp('2023-01-01T00:00:00Z') + duration('1h')", make_timestamp(1672534800)),
    ("timestamp('2023-01-01T00:00:00Z') - timestamp('2022-01-01T00:00:00Z')", make_duration(365 * 86400)),
    ("duration('1h30m')", make_duration(90 * 60)), ("duration('90m').getMinutes()", 90),
    ("duration('1500ms').getMilliseconds()", 500), ("string(timestamp('2023-01-01T00:00:00.5Z'))",
                                                     "2023-01-01T00:00:00.5Z"),
    ("string(timestamp('2023-01-01T00:00:00.000000001+01:00'))", "2022-12-31T23:00:00.000000001Z"),
    ("string(duration('1.5s'))", "1.500s"), ("string(duration('-1ns'))", "-0.000000001s"),
    ("size('πέντε')", 5), ("[7, 8, 9][dyn(1.0)]", 8), ("[1, 2, 3].all(e, 6 / (2 - e) == 6)", False),
    ("[0, 1].exists(e, 1 / e == 1)", True), ("0.0 / 0.0 < 1.0", False), ("dyn(1) >= 0.0 / 0.0", False),
    ("timestamp('2009-02-13T23:31:30Z').getHours('America/New_York')", 18),
    ("duration('1h') + timestamp('2023-01-01T00:00:00Z')", make_timestamp(1672534800)),
    ("type(1) == int", True), ("type(event.s) == string", True), ("bool('true')", True),
    ("'TacoCat'.lowerAscii()", "tacocat"), ("' x '.trim().upperAscii()", "X"), ("'a,b'.split(',')", ["a", "b"]),
    ("'hello'.substring(1, 3)", "el"), ("'hello'.indexOf('l')", 2), ("['a', 'b'].join('-')", "a-b"),
    ("'abc'.replace('b', 'x')", "axc"), ("math.greatest(1, 5, 3)", 5), ("math.least([2.5, 1.5])", 1.5),
    ("math.abs(-3)", 3), ("math.round(2.5)", 3.0), ("event.?customer.?tier.orValue('none')", "gold"),
    ("event.?nosuch.?tier.orValue('none')", "none"), ("cel.bind(x, event.a + 1, x * x)", 4),
    ("[1, 2].all(i, v, v > i)", True), ("{'a': 1}.transformMap(k, v, v + 1)", {"a": 2}),
    ("base64.encode(b'hi')", "aGk="), ("[3, 1, 2].sort()", [1, 2, 3]), ("sets.contains([1, 2], [2])", True),
    ("lists.range(3)", [0, 1, 2]), ("[[1], [2, 3]].flatten()", [1, 2, 3]), ("timestamp(0) == timestamp('1970-01-01T00:00:00Z')", True),
    ("'%s and %d'.format(['x', 5])", "x and 5"), ("'%%%s%%'.format([event.s])", "%hi%"), ("'100%%'.format([])", "100%"),
    ("'%.2f'.format([event.b])", "2.50"), ("'%.6e'.format([1052.032911275])", "1.052033e+03"),
    ("'%e'.format([event.a])", "1.000000e+00"), ("'%f'.format([3u])", "3.000000"), ("'%.0f'.format([2.5])", "2"),
    ("'%.3f'.format([-123.4999])", "-123.500"), ("'%x/%X'.format(['Hi', b'\\xff'])", "4869/FF"),
    ("'%x %X'.format([255, 255u])", "ff FF"), ("'%o %b %b'.format([8, 5u, true])", "10 101 1"),
    ("'%x %o %b'.format([-255, -8, -5])", "-ff -10 -101"), ("'%d, %d'.format([-7, 18446744073709551615u])",
                                                            "-7, 18446744073709551615"),
    ("'%s'.format([event.m])", "{x: 1}"), ("'%s'.format([event.l])", "[1, 2, 3]"), ("'%s %s'.format([null, true])",
                                                                                 "null true"),
    ("'%s'.format([{'b': 1, 'a': [false, null, b'xyz', 2.5]}])", "{a: [false, null, xyz, 2.5], b: 1}"),
    ("'%s'.format([{2: 'x', 10: 'y', 'k': 1u}])", "{10: y, 2: x, k: 1}"),
    ("'%s'.format([timestamp('2023-02-03T23:31:20+01:00')])", "2023-02-03T22:31:20Z"),
    ("'%s'.format([duration('1h45m47s')])", "6347s"), ("'%s'.format([type(event.s)])", "string"),
    ("'%s/%s'.format([type(1u), type(duration('1s'))])", "uint/google.protobuf.Duration"),
    ("'%s'.format([record.timestamp])", "2024-05-06T07:08:09Z"), ("'%.3d|%.1s'.format([5, 'abc'])", "5|abc"),
    ("event.s.format([])", "hi"), ("'%s'.format(event.l)", "1"), ("('%' + 's').format([1])", "1"),
    ("'é%sü'.format(['ß'])", "éßü"),
    # where cel-cpp prints otherwise (see KNOWN_DIFFERENCES in the differential tests)
    ("'%d'.format([1.5])", "1.5"), ("'%s'.format([1e20])", "100000000000000000000"),
    ("'%s'.format([[1e-7, -0.0, 2.0]])", "[0.0000001, -0, 2]"), ("'%s'.format([duration('1.5s')])", "1.5s"),
    ("'%s'.format([duration('-1ns')])", "-0.000000001s"),
    ("'%s %d %f %e'.format([0.0 / 0.0, 1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0])", "NaN Infinity -Infinity NaN"),
]


@pytest.mark.parametrize(("source", "expected"), VALUES)
def test_values(source: str, expected: Any) -> None:
    got = run(source)
    assert type(got) is type(expected)
    assert got == expected


def test_nan() -> None:
    assert math.isnan(run("0.0 / 0.0"))
    assert run("0.0 / 0.0 == 0.0 / 0.0") is False


RUNTIME_ERRORS = [
    "9223372036854775807 + 1", "-9223372036854775808 / -1", "0u - 1u", "1 / 0", "1 % 0", "event.zz",
    "event.a.b", "event.n.x", "event.l[5]", "event.l[-1]", "{'a': 1}['b']", "1.5 * event.a",
    "event.qty * 1.5", "event.b * 2", "int(1e20)", "int('x')", "int(' 12')", "uint(-1)", "uint(-0.5)",
    "double(' 1')", "(1 / 0 == 1) && true", "event.a && true", "event.a ? 1 : 2", "[1, 'a'].all(x, x > 0)",
    "[1, 2].all(x, x)", "string(event.n)", "size(event.a)",
    "'x' + event.a", "event.s < 1", "event.s.contains(event.a)",
    "timestamp('2023-01-01')", "duration('1d')", "{'a': 1}[1u]", "-event.s",
    "!event.a", "event.l.map(x, x + 'a')", "int(9223372036854775807.0)",
    "timestamp('0001-01-01T00:00:00Z') - duration('1s')",
    "'%d %d'.format(event.l.slice(0, 1))", "'%d'.format([event.s])", "'%b'.format([event.b])", "'%x'.format([event.b])",
    "'%o'.format([event.t])", "'%e'.format([event.n])", "'%f'.format([event.s])", "'%s'.format([b'\\xff'])",
    "event.s.format(event.a)", "event.a.format([])", "('%' + 'a').format([1])", ]


@pytest.mark.parametrize("source", RUNTIME_ERRORS)
def test_runtime_errors(source: str) -> None:
    program = compile_expression(source)
    with pytest.raises(EvaluationError):
        program(EVENT, RECORD)


COMPILE_ERRORS: list[tuple[str, int]] = [
    ("1 + 'a'", 3), ("'a' * 2", 5), ("!5", 1), ("nosuch", 1), ("event.a + nosuch", 11),
    ("record.nope", 8), ("foo(1)", 1), ("event.a +", 10), ("(1", 3), ("1.", 3), ("9223372036854775808", 1),
    ("18446744073709551616u", 1), ("'abc", 1), ("'\\q'", 2), ("b'\\u00e9'", 3), ("'\\ud800'", 2),
    ("event.in", 7), ("event.true", 7), ("has(event)", 1), ("[1].all(1, true)", 9),
    ("'x'.matches(event.s)", 19), ("'x'.matches('(?i)x')", 13), ("'x'.matches('(a*)*')", 13),
    ("'x'.matches('\\\\w')", 13), ("'A'.nosuch()", 5), ("bool(1)", 1), ("[1].lowerAscii()", 5),
    ("{1.0: 1}", 2), ("{event.a: 1}", 8), ("1 ? 2 : 3", 1), ("1.5 % 1.0", 5), ("1 + 1u", 3),
    ("-1u", 1), ("1 < 'a'", 3), ("[1] < [2]", 5), ("'x' in 'xy'", 5), ("size(1)", 1), ("int(true)", 1),
    ("matches('x', 'x')", 1), ("0X1f", 2), ("Rb'x'", 3), (".event", 1), ("a b", 3), ("1 @ 2", 3),
    ("timestamp(1u)", 1), ("[1, 2].map(x)", 12), ("duration('1h') * 2", 16),
    ("'%a'.format([1])", 1), ("'x %E'.format([1.0])", 1), ("'%'.format([1])", 1), ("'%.f'.format([1.0])", 1),
    ("'%.101f'.format([1.0])", 1), ("'%.3'.format([1.0])", 1), ("'%d %d'.format([1])", 16), ("'%d'.format([1, 2])", 13),
    ("'%d'.format(['a'])", 14), ("'%s: %b'.format([1, 'a'])", 21), ("'%x'.format([1.5])", 14),
    ("'%o'.format([duration('1s')])", 14), ("'%s'.format([[1, optional.none()]])", 27),
    ("'%s'.format([optional.of(1)])", 23), ("'%f'.format([null])", 14), ("format('%s', [1])", 1),
    ("'%s'.format('a')", 6), ("1.format([])", 3),
]


@pytest.mark.parametrize(("source", "column"), COMPILE_ERRORS)
def test_compile_errors(source: str, column: int) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source)
    assert info.value.column == column, info.value.message


def test_error_position_multiline() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("event.a ==\n  nosuch")
    assert (info.value.line, info.value.column) == (2, 3)


def test_expect_bool() -> None:
    with pytest.raises(ExpressionError, match="bool"):
        compile_expression("event.a + 1", expect_bool=True)
    assert compile_expression("event.a", expect_bool=True).result_type == "dyn"
    assert compile_expression("event.a == 1", expect_bool=True).result_type == "bool"


def test_program_attributes() -> None:
    program = compile_expression("record.key + event.s")
    assert isinstance(program, Program)
    assert program.uses_record is True
    assert program.source == "record.key + event.s"
    assert program.evaluate(EVENT, RECORD) == "khi"
    assert compile_expression("event.a").uses_record is False
    assert compile_expression("record.key + string(record.offset)").record_fields == {"key", "offset"}
    assert compile_expression("has(record.key)").record_fields == frozenset()
    assert compile_expression("record").record_fields == {"key", "headers", "topic", "partition", "offset", "timestamp"}
    assert compile_expression("[1].map(record, record)").uses_record is False
    assert compile_expression("1 + 2").result_type == "int"
    assert compile_expression("event.a").evaluate(EVENT, None) == 1
    with pytest.raises(AttributeError):
        program.source = "x"  # type: ignore[misc]


def test_results_are_not_shared_between_calls() -> None:
    program = compile_expression("[1, [2]]")
    first = program(EVENT, RECORD)
    first[1].append(3)
    assert program(EVENT, RECORD) == [1, [2]]


FORMAT_ERRORS = [  # the conformance suite's format_errors, with the format string and arguments known only at run time
    ("%a", [1], 'could not parse formatting clause: unrecognized formatting clause "a"'),
    ("%d %d %d", [0, 1], "index 2 out of range"),
    ("string is %b", ["abc"],
     "error during formatting: only ints, uints, and bools can be formatted as binary, was given string"),
    ("octal: %o", ["a string"],
     "error during formatting: octal clause can only be used on ints and uints, was given string"),
    ("double is %x", [0.5],
     "error during formatting: only ints, uints, bytes, and strings can be formatted as hex, was given double"),
    ("double is %E", [0.5], 'could not parse formatting clause: unrecognized formatting clause "E"'),
    ("null: %d", [None],
     "error during formatting: decimal clause can only be used on ints, uints, and doubles, was given null_type"),
    ("null: %e", [None],
     "error during formatting: scientific clause can only be used on ints, uints, and doubles, was given null_type"),
    ("null: %f", [None],
     "error during formatting: fixed-point clause can only be used on ints, uints, and doubles, was given null_type"),
    ("%s", [[1, {"a": None}], 1], None),
    ("%d %a", [1], "index 1 out of range"),
    ("%", [1], "unexpected end of string"),
    ("%.f", [1.0], 'could not parse formatting clause: error while parsing precision: error while converting '
                   'precision to integer: strconv.Atoi: parsing "": invalid syntax'),
    ("%.2", [1.0], "could not parse formatting clause: error while parsing precision: could not find end of "
                   "precision specifier"),
    ("%.101f", [1.0], "could not parse formatting clause: error while parsing precision: precision 101 exceeds "
                      "maximum allowed precision 100"),
]


@pytest.mark.parametrize(("text", "args", "message"), FORMAT_ERRORS)
def test_format_errors_at_run_time(text: str, args: list[Any], message: str | None) -> None:
    program = compile_expression("event.f.format(event.args)")
    if message is None:
        assert program({"f": text, "args": args}, RECORD) == "[1, {a: null}]"
        return
    with pytest.raises(EvaluationError) as info:
        program({"f": text, "args": args}, RECORD)
    assert info.value.message == message


def test_format_string_clause_on_a_duration_and_a_map_ordering() -> None:
    assert run("'%s'.format([duration('-1.5s')])") == "-1.5s"
    assert run("'%s'.format([event])", {"b": 1, "a": 2, "B": {"y": [], "x": {}}}) == "{B: {x: {}, y: []}, a: 2, b: 1}"
    assert run("event.f.format([1])", {"f": "%%%s"}) == "%1"


def test_limits() -> None:
    with pytest.raises(ExpressionError, match="longer"):
        compile_expression("1" * (MAX_SOURCE_LENGTH + 1))
    with pytest.raises(ExpressionError, match="deep"):
        compile_expression("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ExpressionError, match="deep"):
        compile_expression("+".join(["event.a"] * 500))
    with pytest.raises(ExpressionError, match="deep"):
        compile_expression("!" * 2000 + "true")
    assert compile_expression(" && ".join(["true"] * 500))(None, None) is True
    with pytest.raises(EvaluationError, match="longer"):
        compile_expression("[event.s, event.s].map(x, event.big + event.big)")(
            {"s": "x", "big": "x" * 600_000}, None)


def test_map_macros_iterate_in_insertion_order() -> None:
    assert run("event.m.map(k, k)", {"m": {"b": 1, "a": 2}}) == ["b", "a"]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_parser_fuzz_random_text(text: str) -> None:
    with contextlib.suppress(ExpressionError):
        compile_expression(text)


TOKENS = ["event", "record", ".", "a", "(", ")", "[", "]", "{", "}", ",", ":", "?", "!", "-", "+", "*",
          "&&", "||", "==", "<", "in", "1", "1u", "2.5", "'s'", "b'x'", "true", "null", "has", "all",
          "x", "map", "size", "int", " ", "\n", "'", "\\", "0x", "1e"]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_parser_fuzz_token_soup(tokens: list[str]) -> None:
    source = "".join(tokens)
    try:
        program = compile_expression(source)
    except ExpressionError:
        return
    with contextlib.suppress(EvaluationError):
        program({"a": 1}, RECORD)


@pytest.mark.parametrize("source", ["(" * 3000, "[" * 3000, "-" * 3000 + "1", "a." * 1500 + "b",
                                    "f(" * 1500, "{" * 2000, "1" + "+1" * 2000, "x" + ".y" * 2000])
def test_pathological_inputs_never_crash(source: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(source)
