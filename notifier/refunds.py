"""What a refund must be before a message may show it: a finite, non-negative decimal in an ISO 4217 currency.

One rule for both doors: the importer rejects a row that breaks it (naming the field), and the renderer leaves
the refund line out rather than print "US$NaN.00", "-IDR5" or a currency code someone typed markup into.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from babel.numbers import list_currencies

from notifier.errors import RefundError

MAX_REFUND = Decimal(10) ** 12  # a trillion: room for IDR and VND, not for a mistyped column
MAX_PLACES = 4  # ISO 4217 minor units go up to 4 (CLF, UYW)
# Metals, bond units, drawing rights, testing and "no currency": nobody is refunded in them.
_NOT_MONEY = frozenset({"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"})


_JSON_KINDS = {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number", float: "a number"}


def json_kind(value: Any) -> str:
    """A JSON value's kind in words, for messages that must not quote the value."""
    return "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)


def refund_amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise RefundError("refund_amount", f"expected a decimal amount such as 12.50, got {json_kind(value)}")
    text = str(value).strip()
    if len(text) > 40:
        raise RefundError("refund_amount", "longer than 40 characters: not a decimal amount such as 12.50")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise RefundError("refund_amount", "not a decimal amount such as 12.50") from None
    if not amount.is_finite():
        raise RefundError("refund_amount", "not a decimal amount such as 12.50")
    if amount < 0:
        raise RefundError("refund_amount", "a refund cannot be negative")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        raise RefundError("refund_amount", f"more than {MAX_PLACES} decimal places")
    if amount > MAX_REFUND:
        raise RefundError("refund_amount", f"more than {MAX_REFUND:,}")
    return amount


@cache
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies()) - _NOT_MONEY


def refund_currency(value: Any) -> str:
    """The upper-cased ISO 4217 code."""
    if not isinstance(value, str):
        raise RefundError("refund_currency", f"expected a currency code such as IDR, got {json_kind(value)}")
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise RefundError("refund_currency", "not a three-letter ISO 4217 currency code such as IDR")
    if code not in _currencies():
        raise RefundError("refund_currency", f"{code!r} is not an ISO 4217 currency code Babel knows")
    return code


def refund_of(amount: Any, currency: Any) -> tuple[Decimal, str] | None:
    """The checked (amount, currency), None when neither is given; RefundError when one is wrong or alone."""
    if amount in (None, "") and currency in (None, ""):
        return None
    if amount in (None, ""):
        raise RefundError("refund_amount", "missing, but refund_currency is given")
    if currency in (None, ""):
        raise RefundError("refund_currency", "missing, but refund_amount is given")
    return refund_amount(amount), refund_currency(currency)
