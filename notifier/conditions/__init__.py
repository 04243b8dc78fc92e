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
- ``true``/``false``: a JSON boolean, or the strings true/yes/1 and false/no/0 in any case (equal or not, in a list
  or not; never ordered).

A test on a value that is missing, null or of another kind is false: ``plan != "free"`` does not take a recipient
without a plan, ``not plan == "free"`` does. ``exists(plan)`` is true when the value is there and not null.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from notifier.conditions._parser import _Parser
from notifier.conditions._sql import _Sql
from notifier.conditions._tree import (
    _COMPARE,
    _FALSE,
    _NUMERAL,
    _TRUE,
    FIELDS,
    MAX_DEPTH,
    MAX_STRING,
    MAX_TESTS,
    MAX_TEXT,
    MAX_VALUES,
    NUMERAL,
    ConditionError,
    Node,
    Value,
    _All,
    _Any,
    _names,
    _Not,
)

__all__ = ["FIELDS", "MAX_DEPTH", "MAX_STRING", "MAX_TESTS", "MAX_TEXT", "MAX_VALUES", "NUMERAL", "Condition",
           "ConditionError", "Facts", "parse_condition"]


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
