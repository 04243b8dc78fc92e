"""Conditions on recipients (a campaign's ``audience.where``, a deadline's ``where``): parsed once, then answered the
same way in Python (the guard, the plan view) and in SQL (materialization, the counts, the dry run), with every value
a bound parameter: no SQL is ever built from the text.

The language::

    condition := or
    or        := and ("or" and)*
    and       := unary ("and" unary)*
    unary     := "not" unary | "(" condition ")" | test
    test      := "exists" "(" NAME ")" | NAME OP value | NAME ["not"] "in" "[" value ("," value)* "]"
    value     := STRING | NUMBER | true | false
    OP        := == | != | < | <= | > | >=

A NAME is one of the recipient's fields (``country``, ``locale``, ``timezone``) or else an attribute
(``plan`` reads ``attributes.plan``). The literal decides what a test compares:

- a string: the value must be a string; ``<`` and ``>`` compare code points (ISO dates compare as dates);
- a number: a JSON number, or a string that is a plain decimal numeral (``"12"``, ``"-3.5"``: CSV cells);
- ``true``/``false``: a JSON boolean, or the strings true/yes/1 and false/no/0 in any case (== and != only).

A test on a value that is missing, null or of another kind is false: ``plan != "free"`` does not take a recipient
without a plan, ``not plan == "free"`` does. ``exists(plan)`` is true when the value is there and not null.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, Numeric, String, and_, case, cast, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["FIELDS", "Condition", "ConditionError", "Facts", "parse_condition"]

FIELDS = ("country", "locale", "timezone")  # the recipient's own columns; any other name is an attribute
MAX_TEXT = 2000  # characters of one condition
MAX_DEPTH = 24  # nested parentheses and nots
MAX_VALUES = 500  # values of one list
MAX_STRING = 200  # characters of one string
MAX_TESTS = 100
NUMERAL = r"-?[0-9]{1,9}(\.[0-9]{1,6})?"  # a plain decimal numeral: at most 15 digits, exact in a float as in SQL
_NUMERAL = re.compile(NUMERAL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
_OPS = ("==", "!=", "<=", ">=", "<", ">")
_KEYWORDS = ("and", "or", "not", "in", "exists", "true", "false")


class ConditionError(ValueError):
    """A condition the language does not allow; ``column`` (1-based) is where in its text."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column


@dataclass(frozen=True)
class Facts:
    """What a condition may read of one recipient."""

    country: str | None = None
    locale: str | None = None
    timezone: str | None = None
    attributes: Mapping[str, Any] | None = None

    def value(self, name: str) -> Any:
        if name in FIELDS:
            return getattr(self, name)
        return (self.attributes or {}).get(name)


# --- the tree ------------------------------------------------------------------------------------------------------

Value = str | Decimal | bool


@dataclass(frozen=True)
class _Test:
    name: str
    op: str  # one of _OPS, "in", "not in", "exists"
    values: tuple[Value, ...] = ()

    @property
    def kind(self) -> type | None:
        return type(self.values[0]) if self.values else None


@dataclass(frozen=True)
class _Not:
    item: Node


@dataclass(frozen=True)
class _All:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class _Any:
    items: tuple[Node, ...]


Node = _Test | _Not | _All | _Any


@dataclass(frozen=True)
class Condition:
    """A parsed condition: its text as written, answered by :meth:`test` (Python) or :meth:`sql` (a WHERE clause)."""

    text: str
    tree: Node

    def test(self, facts: Facts) -> bool:
        """Whether this recipient meets the condition."""
        return _eval(self.tree, facts)

    def sql(self, dialect: str, fields: Mapping[str, ColumnElement[Any]], attributes: ColumnElement[Any]) -> Any:
        """The condition as a boolean SQL expression over ``fields`` (name → column) and the JSON ``attributes``
        column, for ``dialect`` ("sqlite" or "postgresql"); every value is a bound parameter."""
        return _Sql(dialect, fields, attributes).node(self.tree)

    def names(self) -> frozenset[str]:
        """The fields and attributes it reads."""
        return frozenset(_names(self.tree))

    def __str__(self) -> str:
        return self.text


def parse_condition(text: str) -> Condition:
    """Parse ``text``; raises :class:`ConditionError` naming the column of the first problem."""
    if len(text) > MAX_TEXT:
        raise ConditionError(MAX_TEXT + 1, f"a condition is at most {MAX_TEXT} characters")
    parser = _Parser(text)
    tree = parser.condition(0)
    if parser.peek() is not None:
        tok = parser.peek()
        assert tok is not None
        raise ConditionError(tok.column, f"unexpected {tok.shown} (join tests with and / or)")
    return Condition(text.strip(), tree)


# --- reading the text --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # name, string, number, op, punct, keyword
    text: str
    column: int
    value: Value | None = None

    @property
    def shown(self) -> str:
        return repr(self.text) if len(self.text) <= 30 else repr(self.text[:27] + "...")


_SCAN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?[0-9][0-9_.eE+-]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _SCAN.match(text, pos)
        column = pos + 1
        if m is None:
            ch = text[pos]
            hint = " (strings are in double quotes)" if ch in "\"'" else " (compare with ==)" if ch == "=" else ""
            raise ConditionError(column, f"unexpected character {ch!r}{hint}")
        pos = m.end()
        kind = m.lastgroup
        raw = m.group()
        if kind == "space":
            continue
        if kind == "number":
            if not _NUMERAL.fullmatch(raw):
                raise ConditionError(column, f"{raw!r} is not a number this language takes: at most 9 digits before "
                                             "the point and 6 after, no exponent")
            out.append(_Token("number", raw, column, Decimal(raw)))
        elif kind == "string":
            out.append(_Token("string", raw, column, _unquote(raw, column)))
        elif kind == "word" and raw.lower() in _KEYWORDS:
            word = raw.lower()
            if word != raw:
                raise ConditionError(column, f"write {word!r} in lower case")
            value = {"true": True, "false": False}.get(word)
            out.append(_Token("bool" if value is not None else "keyword", word, column, value))
        else:
            out.append(_Token(kind or "", raw, column))
    return out


def _unquote(raw: str, column: int) -> str:
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise ConditionError(column + i + 1, f"unknown escape \\{nxt} in a string")
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(body[i])
            i += 1
    value = "".join(out)
    if len(value) > MAX_STRING:
        raise ConditionError(column, f"a string is at most {MAX_STRING} characters")
    if "\x00" in value:
        raise ConditionError(column, "a string cannot hold a NUL character")
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.tests = 0

    def peek(self) -> _Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Token:
        tok = self.peek()
        if tok is None:
            raise ConditionError(len(self.text.rstrip()) + 1, "the condition ends too soon")
        self.i += 1
        return tok

    def expect(self, text: str, what: str) -> _Token:
        tok = self.take()
        if tok.text != text or tok.kind == "string":
            raise ConditionError(tok.column, f"expected {what}, found {tok.shown}")
        return tok

    def at(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind in ("keyword", "punct") and tok.text in words

    def condition(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            tok = self.peek()
            raise ConditionError(tok.column if tok else 1, f"nested more than {MAX_DEPTH} deep")
        items = [self.all(depth)]
        while self.at("or"):
            self.take()
            items.append(self.all(depth))
        return items[0] if len(items) == 1 else _Any(tuple(items))

    def all(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while self.at("and"):
            self.take()
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else _All(tuple(items))

    def unary(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise ConditionError(self.take().column, f"nested more than {MAX_DEPTH} deep")
        if self.at("not"):
            self.take()
            return _Not(self.unary(depth + 1))
        if self.at("("):
            self.take()
            inner = self.condition(depth + 1)
            self.expect(")", "')'")
            return inner
        return self.test()

    def test(self) -> _Test:
        self.tests += 1
        tok = self.take()
        if self.tests > MAX_TESTS:
            raise ConditionError(tok.column, f"at most {MAX_TESTS} tests in one condition")
        if tok.kind == "keyword" and tok.text == "exists":
            self.expect("(", "'(' after exists")
            name = self.name(self.take())
            self.expect(")", "')'")
            return _Test(name, "exists")
        name = self.name(tok)
        op = self.take()
        if op.kind == "op":
            value = self.value(self.take(), name)
            if isinstance(value, bool) and op.text not in ("==", "!="):
                raise ConditionError(op.column, "true and false are compared with == or != only")
            return _Test(name, op.text, (value,))
        negated = op.kind == "keyword" and op.text == "not"
        if negated:
            op = self.take()
        if op.kind == "keyword" and op.text == "in":
            return _Test(name, "not in" if negated else "in", self.values(name))
        raise ConditionError(op.column, f"expected ==, !=, <, <=, >, >=, in or not in after {name!r}, "
                                        f"found {op.shown}")

    def name(self, tok: _Token) -> str:
        if tok.kind in ("string", "number", "bool"):
            raise ConditionError(tok.column, f"a test starts with a field or an attribute, found the value {tok.shown}")
        if tok.kind != "word" or not _NAME.fullmatch(tok.text):
            raise ConditionError(tok.column, f"expected a field or an attribute name, found {tok.shown}")
        return tok.text

    def values(self, name: str) -> tuple[Value, ...]:
        opening = self.expect("[", "a list in [ ] after in")
        values: list[Value] = [self.value(self.take(), name)]
        while self.at(","):
            self.take()
            values.append(self.value(self.take(), name))
        self.expect("]", "',' or ']'")
        if len(values) > MAX_VALUES:
            raise ConditionError(opening.column, f"a list has at most {MAX_VALUES} values")
        if len({type(v) for v in values}) > 1:
            raise ConditionError(opening.column, "a list holds values of one kind: all strings, all numbers or all "
                                                 "true/false")
        return tuple(values)

    def value(self, tok: _Token, name: str) -> Value:
        if tok.kind not in ("string", "number", "bool"):
            hint = f" (a string is quoted: \"{tok.text}\")" if tok.kind == "word" else ""
            raise ConditionError(tok.column, f"expected a value, found {tok.shown}{hint}")
        assert tok.value is not None
        if name in FIELDS and not isinstance(tok.value, str):
            raise ConditionError(tok.column, f"{name} is compared with strings")
        if name == "country":
            assert isinstance(tok.value, str)
            if not re.fullmatch(r"[A-Za-z]{2}", tok.value):
                raise ConditionError(tok.column, f"{tok.shown} is not an ISO 3166 two-letter country code")
            return tok.value.upper()
        return tok.value


# --- answering in Python -----------------------------------------------------------------------------------------


def _eval(node: Node, facts: Facts) -> bool:
    if isinstance(node, _Not):
        return not _eval(node.item, facts)
    if isinstance(node, _All):
        return all(_eval(n, facts) for n in node.items)
    if isinstance(node, _Any):
        return any(_eval(n, facts) for n in node.items)
    value = facts.value(node.name)
    if node.op == "exists":
        return value is not None
    seen = _as(node.kind, value)
    if seen is None:
        return False
    if node.op == "in":
        return seen in node.values
    if node.op == "not in":
        return seen not in node.values
    return _COMPARE[node.op](seen, node.values[0])


def _as(kind: type | None, value: Any) -> Value | None:
    """``value`` read as the literal's kind, or None when it is not one."""
    if kind is str:
        return value if isinstance(value, str) else None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.lower()
            return True if word in _TRUE else False if word in _FALSE else None
        return None
    if isinstance(value, bool):  # a JSON boolean is not a number
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # the JSON text the ledger keeps
    if isinstance(value, str) and _NUMERAL.fullmatch(value):
        return Decimal(value)
    return None


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _names(node: Node) -> set[str]:
    if isinstance(node, _Test):
        return {node.name}
    if isinstance(node, _Not):
        return _names(node.item)
    return set().union(*(_names(n) for n in node.items))


# --- answering in SQL --------------------------------------------------------------------------------------------


class _Sql:
    """One condition as SQL for one dialect: each test a CASE that is true or false, never NULL, so ``not`` and
    ``or`` mean what they mean in Python."""

    def __init__(self, dialect: str, fields: Mapping[str, ColumnElement[Any]], attributes: ColumnElement[Any]) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"conditions are not written for {dialect}")
        self.pg = dialect == "postgresql"
        self.fields, self.attributes = fields, attributes

    def node(self, node: Node) -> Any:
        if isinstance(node, _Not):
            return not_(self.node(node.item))
        if isinstance(node, _All):
            return and_(*(self.node(n) for n in node.items))
        if isinstance(node, _Any):
            return or_(*(self.node(n) for n in node.items))
        return case((self.test(node), true()), else_=false())

    def test(self, t: _Test) -> Any:
        if t.name in FIELDS:
            column = self.fields[t.name]
            if t.op == "exists":
                return column.is_not(None)
            return and_(column.is_not(None), self.compare(t, column, ordered=self.ordered(column)))
        kind = self.kind_of(t.name)
        if t.op == "exists":
            return kind.not_in(["null", "missing"])
        text = self.text_of(t.name)
        if t.kind is str:
            return and_(kind.in_(["string", "text"]), self.compare(t, text, ordered=self.ordered(text)))
        if t.kind is bool:
            word = func.lower(text)
            json_true = (text == "true") if self.pg else (kind == "true")
            flag = case((kind.in_(["true", "false", "boolean"]), json_true),
                        (and_(kind.in_(["string", "text"]), word.in_(_TRUE)), true()),
                        (and_(kind.in_(["string", "text"]), word.in_(_FALSE)), false()))
            return self.compare(t, flag)
        number = case((kind.in_(["number", "integer", "real"]), self.number(text)),
                      (and_(kind.in_(["string", "text"]), text.regexp_match(rf"\A{NUMERAL}\Z")), self.number(text)))
        return self.compare(t, number)

    def compare(self, t: _Test, left: Any, ordered: Any = None) -> Any:
        values = [self.bound(v) for v in t.values]
        if t.op == "in":
            return left.in_(values)
        if t.op == "not in":
            return left.not_in(values)
        side = ordered if ordered is not None and t.op not in ("==", "!=") else left
        return _COMPARE[t.op](side, values[0])

    def bound(self, value: Value) -> Any:
        if isinstance(value, bool):
            return true() if value else false()
        if isinstance(value, Decimal):
            return literal(value) if self.pg else literal(float(value))
        return literal(value, String)

    def ordered(self, text: Any) -> Any:
        """Text compared by code point: PostgreSQL's "C" collation (SQLite's default already is)."""
        return text.collate("C") if self.pg else text

    def number(self, text: Any) -> Any:
        return cast(text, Numeric()) if self.pg else cast(text, Float())

    def kind_of(self, name: str) -> Any:
        """The attribute's JSON kind as a word, 'missing' when absent: never NULL."""
        if self.pg:
            return func.coalesce(func.json_typeof(self.attributes.op("->")(literal(name, String))), "missing")
        return func.coalesce(func.json_type(self.attributes, literal(f'$."{name}"', String)), "missing")

    def text_of(self, name: str) -> Any:
        if self.pg:
            return self.attributes.op("->>", return_type=String)(literal(name, String))
        return func.json_extract(self.attributes, literal(f'$."{name}"', String), type_=String)
