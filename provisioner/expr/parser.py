"""Recursive-descent, precedence-climbing parser turning CEL source into an AST.

Macros (`has`, `all`, `exists`, `exists_one`, `map`, `filter`) are recognised here, as CEL
does, so later stages see dedicated nodes.  Nesting is bounded so no input can exhaust the stack.
"""

from __future__ import annotations

from . import ast
from .errors import ExpressionError, error_at
from .lexer import Token, tokenize
from .runtime import INT_MAX, INT_MIN, UInt

MAX_SOURCE_LENGTH = 4096
MAX_DEPTH = 64

_BINARY_PRECEDENCE = {
    "==": 1, "!=": 1, "<": 1, "<=": 1, ">": 1, ">=": 1, "in": 1,
    "+": 2, "-": 2,
    "*": 3, "/": 3, "%": 3,
}
_MACROS = {"all": (2, 3), "exists": (2, 3), "exists_one": (2, 3), "existsOne": (2, 3), "map": (2, 3),
           "filter": (2,), "transformList": (3, 4), "transformMap": (3, 4), "transformMapEntry": (3, 4),
           "sortBy": (2,), "optMap": (2,), "optFlatMap": (2,)}
_TWO_VARS = {"all": 3, "exists": 3, "exists_one": 3, "existsOne": 3, "transformList": 0, "transformMap": 0,
             "transformMapEntry": 0}


class Parser:
    """Parses one expression; use `parse()`."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.tokens: list[Token] = tokenize(source)
        self.i = 0
        self.depth = 0

    # --- helpers -------------------------------------------------------------------------------
    def peek(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def error(self, tok: Token, message: str) -> ExpressionError:
        return error_at(self.src, tok.pos, message)

    def expect(self, kind: str) -> Token:
        tok = self.peek()
        if tok.kind != kind:
            raise self.error(tok, f"expected '{kind}' but found {_describe(tok)}")
        return self.advance()

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(tok, f"expression nested too deeply (more than {MAX_DEPTH} levels)")

    # --- grammar -------------------------------------------------------------------------------
    def parse(self) -> ast.Node:
        node = self.expr()
        tok = self.peek()
        if tok.kind != "eof":
            raise self.error(tok, f"unexpected {_describe(tok)} after the end of the expression")
        return node

    def expr(self) -> ast.Node:
        start = self.peek()
        self.enter(start)
        cond = self.logical("||")
        if self.peek().kind == "?":
            self.advance()
            then = self.logical("||")
            self.expect(":")
            otherwise = self.expr()
            cond = ast.Conditional(start.pos, cond, then, otherwise)
        self.depth -= 1
        return cond

    def logical(self, op: str) -> ast.Node:
        def sub() -> ast.Node:
            return self.logical("&&") if op == "||" else self.binary(1)
        first = sub()
        if self.peek().kind != op:
            return first
        terms = [first]
        while self.peek().kind == op:
            self.advance()
            terms.append(sub())
        return ast.Logical(first.pos, op, terms)

    def binary(self, min_prec: int) -> ast.Node:
        left = self.unary()
        while True:
            tok = self.peek()
            prec = _BINARY_PRECEDENCE.get(tok.kind)
            if prec is None or prec < min_prec:
                return left
            self.advance()
            right = self.binary(prec + 1)
            left = ast.Binary(tok.pos, tok.kind, left, right)

    def unary(self) -> ast.Node:
        tok = self.peek()
        if tok.kind not in ("!", "-"):
            return self.member(negate_literal=False)[0]
        count = 0
        while self.peek().kind == tok.kind:
            self.advance()
            count += 1
        self.enter(tok)
        if tok.kind == "-":
            node, folded = self.member(negate_literal=True)
            if folded:
                count -= 1
        else:
            node = self.member(negate_literal=False)[0]
        for _ in range(count):
            node = ast.Unary(tok.pos, tok.kind, node)
        self.depth -= 1
        return node

    def member(self, *, negate_literal: bool) -> tuple[ast.Node, bool]:
        node, folded = self.primary(negate_literal=negate_literal)
        while True:
            tok = self.peek()
            if tok.kind == ".":
                self.advance()
                optional = self.peek().kind == "?"
                if optional:
                    self.advance()
                name_tok = self.peek()
                if name_tok.kind != "ident":
                    found = _describe(name_tok)
                    raise self.error(name_tok, f"expected a field name after '.' but found {found}")
                self.advance()
                if self.peek().kind == "(" and not optional:
                    args = self.arguments()
                    node = self.method(name_tok, node, args)
                else:
                    node = ast.Select(name_tok.pos, node, name_tok.value, optional)
            elif tok.kind == "[":
                self.advance()
                optional = self.peek().kind == "?"
                if optional:
                    self.advance()
                self.enter(tok)
                index = self.expr()
                self.depth -= 1
                self.expect("]")
                node = ast.Index(tok.pos, node, index, optional)
            else:
                return node, folded

    def method(self, name_tok: Token, target: ast.Node, args: list[ast.Node]) -> ast.Node:
        name = name_tok.value
        pos = name_tok.pos
        if name == "bind" and isinstance(target, ast.Ident) and target.name == "cel" and len(args) == 3:
            var = self.variable(name, args[0])
            return ast.Bind(pos, var, args[1], args[2])
        if name not in _MACROS or len(args) not in _MACROS[name]:
            return ast.Call(pos, name, target, args)
        var = self.variable(name, args[0])
        if name == "existsOne":
            name = "exists_one"
        two = _TWO_VARS.get(name) in (0, len(args))
        var2 = self.variable(name, args[1]) if two else None
        rest = args[2:] if two else args[1:]
        if two and name in ("transformList", "transformMap", "transformMapEntry"):
            predicate = rest[0] if len(rest) == 2 else None
            return ast.Comprehension(pos, name, target, var, predicate, rest[-1], var2)
        if name == "map":
            if len(rest) == 2:
                return ast.Comprehension(pos, "map", target, var, rest[0], rest[1])
            return ast.Comprehension(pos, "map", target, var, None, rest[0])
        if name in ("sortBy", "optMap", "optFlatMap"):
            return ast.Comprehension(pos, name, target, var, None, rest[0])
        if var2 is not None and var2 == var:
            raise error_at(self.src, args[1].pos, f"the two variables of {name}() must differ")
        return ast.Comprehension(pos, name, target, var, rest[0], None, var2)

    def variable(self, name: str, node: ast.Node) -> str:
        if not isinstance(node, ast.Ident):
            raise error_at(self.src, node.pos, f"the variable arguments of {name}() must be simple names")
        return node.name

    def arguments(self) -> list[ast.Node]:
        open_tok = self.expect("(")
        self.enter(open_tok)
        args: list[ast.Node] = []
        if self.peek().kind != ")":
            args.append(self.expr())
            while self.peek().kind == ",":
                self.advance()
                args.append(self.expr())
        self.expect(")")
        self.depth -= 1
        return args

    def primary(self, *, negate_literal: bool) -> tuple[ast.Node, bool]:
        tok = self.peek()
        kind = tok.kind
        if kind == "int":
            self.advance()
            value = -tok.value if negate_literal else tok.value
            if not INT_MIN <= value <= INT_MAX:
                raise self.error(tok, "invalid int literal: out of the 64-bit range")
            return ast.Literal(tok.pos, value), negate_literal
        if kind == "double":
            self.advance()
            return ast.Literal(tok.pos, -tok.value if negate_literal else tok.value), negate_literal
        if kind == "uint":
            self.advance()
            return ast.Literal(tok.pos, UInt(tok.value)), False
        if kind in ("string", "bytes"):
            self.advance()
            return ast.Literal(tok.pos, tok.value), False
        if kind in ("true", "false", "null"):
            self.advance()
            return ast.Literal(tok.pos, {"true": True, "false": False, "null": None}[kind]), False
        if kind == "ident":
            self.advance()
            if self.peek().kind == "(":
                args = self.arguments()
                if tok.value == "has":
                    if len(args) != 1 or not isinstance(args[0], ast.Select):
                        raise self.error(tok, "invalid argument to has(): expected a selection like has(x.f)")
                    return ast.Has(tok.pos, args[0].operand, args[0].field), False
                return ast.Call(tok.pos, tok.value, None, args), False
            return ast.Ident(tok.pos, tok.value), False
        if kind == "(":
            self.advance()
            node = self.expr()
            self.expect(")")
            return node, False
        if kind == "[":
            self.advance()
            self.enter(tok)
            items: list[ast.Node] = []
            optional_items: set[int] = set()
            while self.peek().kind != "]":
                if self.peek().kind == "?":
                    self.advance()
                    optional_items.add(len(items))
                items.append(self.expr())
                if self.peek().kind != ",":
                    break
                self.advance()
            self.expect("]")
            self.depth -= 1
            return ast.ListExpr(tok.pos, items, frozenset(optional_items)), False
        if kind == "{":
            self.advance()
            self.enter(tok)
            entries: list[tuple[ast.Node, ast.Node]] = []
            optional_entries: set[int] = set()
            while self.peek().kind != "}":
                if self.peek().kind == "?":
                    self.advance()
                    optional_entries.add(len(entries))
                key = self.expr()
                self.expect(":")
                entries.append((key, self.expr()))
                if self.peek().kind != ",":
                    break
                self.advance()
            self.expect("}")
            self.depth -= 1
            return ast.MapExpr(tok.pos, entries, frozenset(optional_entries)), False
        if kind == ".":
            raise self.error(tok, "leading-dot (root-scoped) identifiers are not supported")
        raise self.error(tok, f"unexpected {_describe(tok)}")


def _describe(tok: Token) -> str:
    if tok.kind == "eof":
        return "end of input"
    if tok.kind in ("ident", "int", "uint", "double", "string", "bytes"):
        return f"{tok.kind} {tok.value!r}"
    return f"'{tok.kind}'"


def parse(source: str) -> ast.Node:
    """Parse `source` into an AST, enforcing the length and nesting limits."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_SOURCE_LENGTH} characters", 1)
    node = Parser(source).parse()
    _check_depth(source, node)
    return node


def _check_depth(source: str, root: ast.Node) -> None:
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise error_at(source, node.pos, f"expression nested too deeply (more than {MAX_DEPTH} levels)")
        stack.extend((child, depth + 1) for child in ast.children(node))
