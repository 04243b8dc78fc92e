"""One audience row checked field by field: a RecipientRecord ready for the ledger, or a located Rejection.

The rules for hostile values are described in :mod:`notifier.audience`; this module applies them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from babel import Locale
from babel.core import get_global
from email_validator import EmailNotValidError, validate_email

from notifier import zones
from notifier.display_names import plain_name
from notifier.i18n import parse_tag, tag_of
from notifier.refunds import RefundError, json_kind, refund_of

FIELDS = ("id", "email", "name", "locale", "timezone", "country", "push_tokens", "joined_at")
# Codes Babel names that are groupings or placeholders, not countries (ZZ would even "guess" Etc/GMT).
_NOT_COUNTRIES = frozenset({"EU", "EZ", "QO", "UN", "XA", "XB", "ZZ"})
_MAX_ID, _MAX_EMAIL, _MAX_NAME, _MAX_LOCALE = 128, 320, 200, 35  # the ledger's column sizes
# FCM tokens are ~160 characters, APNs 64; PostgreSQL's unique btree index refuses entries over ~2700 bytes.
_MAX_TOKEN = 1024
MAX_TOKENS = 20  # per recipient: a device or two each, not a list that would fan out to FCM
MAX_ATTRIBUTES_BYTES = 16 * 1024  # the attributes object as compact UTF-8 JSON
MAX_ATTRIBUTES_DEPTH = 4  # objects and lists, the attributes object itself counting as one
_NO_SMTPUTF8 = "a non-ASCII local part needs SMTPUTF8, which our providers do not take"


@dataclass(frozen=True)
class RecipientRecord:
    """One validated row, ready for the ledger."""

    id: str
    email: str | None
    name: str | None
    locale: str | None
    timezone: str
    timezone_guessed: bool
    country: str | None
    push_tokens: tuple[str, ...]
    attributes: dict[str, Any]
    joined_at: datetime | None
    line: int
    name_cleaned: bool = False  # the stored name differs from the file's (beyond surrounding spaces)


@dataclass(frozen=True)
class Rejection:
    """One row left out of the import, located well enough to fix the file; never carries personal data."""

    file: str
    line: int
    recipient_id: str | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        who = f" id {self.recipient_id}:" if self.recipient_id else ""
        field = f" {self.field}:" if self.field else ""
        return f"{self.file}:{self.line}:{who}{field} {self.reason}"


class RowError(Exception):
    """A row fails validation on ``args[0]`` (a field or None) for reason ``args[1]``."""


def validate(file: str, line: int, raw: dict[str, Any]) -> RecipientRecord | Rejection:
    """One row checked field by field; the first problem rejects it."""
    rid: str | None = None
    try:
        rid = _text(raw, "id", _MAX_ID)
        if rid is None:
            raise RowError("id", "an id is required")
        email = _email(raw)
        country = _country(raw)
        timezone, guessed = _timezone(raw, country)
        tokens = _tokens(raw)
        if email is None and not tokens:
            raise RowError(None, "no email address and no push token: nothing can reach this recipient")
        name, cleaned = _name(raw)
        return RecipientRecord(
            id=rid, email=email, name=name, locale=_locale(raw), timezone=timezone, timezone_guessed=guessed,
            country=country, push_tokens=tokens, attributes=_attributes(raw), joined_at=_joined_at(raw), line=line,
            name_cleaned=cleaned,
        )
    except RowError as exc:
        return Rejection(file, line, rid, *exc.args)


kind = json_kind


def _raw_text(raw: dict[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(field, f"expected text, got {kind(value)}")
    return str(value).strip()


def _text(raw: dict[str, Any], field: str, max_len: int | None = None) -> str | None:
    """A stripped text value, or None when missing or empty."""
    text = _raw_text(raw, field)
    if text is None:
        return None
    if "\x00" in text:
        raise RowError(field, "contains a NUL character")
    if max_len is not None and len(text) > max_len:
        raise RowError(field, f"longer than {max_len} characters")
    return text or None


def _name(raw: dict[str, Any]) -> tuple[str | None, bool]:
    """The name made harmless, and whether that changed it; a person is never rejected for their name."""
    given = _raw_text(raw, "name")
    if not given:
        return None, False
    name = plain_name(given)
    return name, name != given


# A plain dot-atom local part (RFC 5322 atext), which email_validator keeps as given: the common case, checked here
# so that only the domain, which repeats across an audience, goes through the validator (once per domain).
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str | None:
    """A domain as email_validator normalizes it (lower case, IDNA), or None when it is not valid."""
    try:
        valid = validate_email(f"x@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return str(valid.ascii_domain or valid.domain)


def _email(raw: dict[str, Any]) -> str | None:
    """Normalized, with an internationalized domain in its ASCII (IDNA) form; the local part must be ASCII."""
    address = _text(raw, "email", _MAX_EMAIL)
    if address is None:
        return None
    local, _, domain = address.rpartition("@")
    if len(local) <= 64 and _PLAIN_LOCAL.fullmatch(local) and (ascii_domain := _ascii_domain(domain)) is not None \
            and len(stored := f"{local}@{ascii_domain}") <= 254:  # else the validator says what is wrong
        return stored
    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        if not address.rpartition("@")[0].isascii():
            raise RowError("email", _NO_SMTPUTF8) from None
        raise RowError("email", f"the email address is not valid ({_scrub(str(exc), address)})") from None
    stored = valid.ascii_email or valid.normalized
    if len(stored) > _MAX_EMAIL:
        raise RowError("email", f"longer than {_MAX_EMAIL} characters once the domain is in ASCII")
    return stored


def _scrub(message: str, address: str) -> str:
    """The validator's message without the address or its parts: rejections end up in logs and terminals."""
    local, _, domain = address.rpartition("@")
    for part in sorted({address, local, domain}, key=len, reverse=True):
        if part == address or len(part) >= 4:
            message = re.sub(re.escape(part), "…", message, flags=re.IGNORECASE)
    return message.rstrip(".")


@cache
def _territories() -> frozenset[str]:
    return frozenset(Locale("en").territories)


def _country(raw: dict[str, Any]) -> str | None:
    code = _text(raw, "country")
    if code is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", code):
        raise RowError("country", f"{code[:8]!r} is not a two-letter ISO 3166 country code")
    code = code.upper()
    if code in _NOT_COUNTRIES or code not in _territories():
        raise RowError("country", f"{code!r} is not a country code Babel knows")
    return code


def _timezone(raw: dict[str, Any], country: str | None) -> tuple[str, bool]:
    """The row's zone (an IANA name of the tzdata package), or one guessed from its country (flagged)."""
    name = _text(raw, "timezone")
    if name is not None:
        why = zones.reason(name)
        if why is not None:
            raise RowError("timezone", why)
        return name, False
    if country is None:
        raise RowError("timezone", "no timezone, and no country to guess it from")
    guessed = _country_zone(country)
    if guessed is None:
        raise RowError("timezone", f"no timezone, and country {country} has none or several: give one")
    return guessed, True


@cache
def _country_zone(country: str) -> str | None:
    """Our own map first, else the country's zone when it has only one; a multi-zone country is no guess."""
    if country in zones.COUNTRY_ZONES:
        return zones.COUNTRY_ZONES[country]
    valid = [str(name) for name in get_global("territory_zones").get(country, ()) if zones.is_iana_zone(str(name))]
    return valid[0] if len(valid) == 1 else None


def _locale(raw: dict[str, Any]) -> str | None:
    """Normalized like campaign locales when Babel knows the tag; otherwise kept, to fall back at render time."""
    tag = _text(raw, "locale", _MAX_LOCALE)
    if tag is None:
        return None
    return _normal_tag(tag)


@lru_cache(maxsize=4096)
def _normal_tag(tag: str) -> str:
    """An audience has a few dozen distinct tags: each is parsed once."""
    loc = parse_tag(tag)
    return tag_of(loc) if loc is not None else tag


def _tokens(raw: dict[str, Any]) -> tuple[str, ...]:
    """Distinct tokens in file order; more than MAX_TOKENS rejects the row (no silent choice of which to keep)."""
    value = raw.get("push_tokens")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise RowError("push_tokens", f"expected a list of strings, got {kind(value)}")
    tokens = tuple(dict.fromkeys(t.strip() for t in value if t.strip()))
    if len(tokens) > MAX_TOKENS:
        raise RowError("push_tokens", f"{len(tokens):,} push tokens; at most {MAX_TOKENS} per recipient")
    for i, token in enumerate(tokens):
        if len(token) > _MAX_TOKEN or "\x00" in token:
            raise RowError("push_tokens", f"token {i + 1} is not a push token (too long or contains NUL)")
    return tokens


def _attributes(raw: dict[str, Any]) -> dict[str, Any]:
    """Every attribute of the row, gathered by the reader (see :mod:`notifier.audience._columns`), checked."""
    given = raw.get("attributes")
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise RowError("attributes", f"expected an object, got {kind(given)}")
    attributes = _refund(given)
    if not attributes:
        return attributes
    if _deeper_than(attributes, MAX_ATTRIBUTES_DEPTH):
        raise RowError("attributes", f"nested deeper than {MAX_ATTRIBUTES_DEPTH} levels")
    if _has_nul(attributes):  # PostgreSQL's JSON operators refuse a document holding one (conditions read them)
        raise RowError("attributes", "a name or a text contains a NUL character")
    try:  # what the ledger's JSON column (and PostgreSQL) will accept
        size = len(json.dumps(attributes, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode())
    except ValueError:
        raise RowError("attributes", "NaN and Infinity are not valid JSON") from None
    if size > MAX_ATTRIBUTES_BYTES:
        raise RowError("attributes", f"{size:,} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES:,}")
    return attributes


def _has_nul(value: Any) -> bool:
    """Whether a name or a text anywhere in ``value`` holds a NUL character (already known not too deep)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether objects and lists nest more than ``levels`` deep, found without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > levels:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _refund(attributes: dict[str, Any]) -> dict[str, Any]:
    """The renderer shows refund_amount in refund_currency: both or neither, each checked; the code upper-cased."""
    try:
        refund = refund_of(attributes.get("refund_amount"), attributes.get("refund_currency"))
    except RefundError as exc:
        raise RowError(exc.field, exc.message) from None
    if refund is None or refund[1] == attributes.get("refund_currency"):
        return attributes
    return {**attributes, "refund_currency": refund[1]}


def _joined_at(raw: dict[str, Any]) -> datetime | None:
    text = _text(raw, "joined_at")
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        shown = repr(text) if len(text) <= 40 else "the value"
        raise RowError("joined_at", f"{shown} is not an ISO date-time such as 2024-05-01T09:30:00Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
