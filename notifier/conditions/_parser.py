"""Reading a condition's text: tokens, then a recursive descent that names the column of the first problem."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from notifier.conditions._tree import (
    _KEYWORDS,
    _NAME,
    _NUMERAL,
    FIELDS,
    MAX_DEPTH,
    MAX_STRING,
    MAX_TESTS,
    MAX_VALUES,
    ConditionError,
    Node,
    Value,
    _All,
    _Any,
    _Not,
    _Test,
)


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
