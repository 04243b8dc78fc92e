"""A condition as SQL for SQLite or PostgreSQL: each test a CASE that is never NULL, every value a bound parameter."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, Numeric, String, and_, case, cast, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from notifier.conditions._tree import _COMPARE, _FALSE, _TRUE, FIELDS, NUMERAL, Node, Value, _All, _Any, _Not, _Test


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
