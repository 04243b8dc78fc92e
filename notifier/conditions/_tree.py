"""The parsed form of a condition, shared by its reader (``_parser``), its Python answer (``__init__``) and its SQL
(``_sql``): tests joined by all / any / not, each a name, an operator and literal values."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

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
