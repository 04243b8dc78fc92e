"""What each column of an audience file means, checked before a row is stored: a field, an attribute, or a mistake.

A column is one of the recipient's fields (``id``, ``email``, ... in :data:`FIELDS`, in CSV matched
case-insensitively), an attribute the renderer reads (``refund_amount``, ``refund_currency``), or an attribute
because the file says so: a column named ``attributes.NAME`` is the attribute NAME, as the ``attributes`` object
of a JSON Lines record is. Any other column is an error naming every such column with a suggestion
("'e-mail': did you mean 'email'?"), unless the caller passes ``extra_columns="attributes"`` (the CLI's
``--extra-columns attributes``) to keep them as attributes. A column that looks like a field (``tz``, ``e-mail``,
``Time Zone``, ``timezon``) is an error either way: kept as an attribute it would leave its field empty, and a
time zone guessed from the country sends at the wrong hour. ``attributes.tz`` keeps such a column on purpose.

A CSV header must also name an ``id`` column and an ``email`` or ``push_tokens`` column. JSON Lines has no header:
the first record's keys are checked as one (its unknown keys stop the file before anything is stored), and an
unknown key in a later record rejects that record; a record may leave out a field it has no value for.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from notifier.audience._rows import FIELDS
from notifier.errors import AudienceError

ExtraColumns = Literal["error", "attributes"]
EXTRA_COLUMNS: tuple[ExtraColumns, ...] = ("error", "attributes")
ATTRIBUTE_FIELDS = ("refund_amount", "refund_currency")  # attributes the renderer reads, named as they are
PREFIX = "attributes."  # a column named attributes.NAME is the attribute NAME
KNOWN = (*FIELDS, *ATTRIBUTE_FIELDS)
_FIELD_SET = frozenset(FIELDS)
# Other names people give our fields, without case and punctuation ("E-Mail", "time_zone" and "Time Zone" fold
# onto the field itself).
_ALIASES = {
    "id": ("userid", "recipientid", "uid", "externalid", "customerid"),
    "email": ("mail", "emailaddress", "mailaddress"),
    "name": ("fullname", "displayname"),
    "locale": ("lang", "language", "languagecode", "languagetag"),
    "timezone": ("tz", "zone", "tzname", "timezonename", "olson", "iana"),
    "country": ("countrycode", "countryiso", "iso3166"),
    "push_tokens": ("pushtoken", "token", "tokens", "devicetoken", "devicetokens", "fcmtoken", "fcmtokens"),
    "joined_at": ("joined", "joindate", "joinedon", "signedupat", "signupdate", "createdat"),
    "refund_amount": ("refund", "amount", "refundvalue"),
    "refund_currency": ("currency", "currencycode"),
}
_FOLDED = {re.sub(r"[\W_]", "", field): field for field in KNOWN} | {
    alias: field for field, aliases in _ALIASES.items() for alias in aliases}
_CUTOFF = 0.75  # difflib's similarity for a suggestion: timezon → timezone, emial → email; not plan → name
_SHOWN = 64  # characters of a column name quoted in a message
_LISTED = 20  # unknown columns named in one message
_CACHED = 256  # characters of a column name worth remembering what it means


@dataclass(frozen=True)
class Column:
    """Where one column's values go: the recipient's ``field``, or the attribute ``attribute``; neither: nowhere."""

    field: str | None = None
    attribute: str | None = None


IGNORED = Column()  # a column without a name (a spreadsheet's trailing separator): nothing to store it as


def suggestion(name: str) -> str | None:
    """The field a column name most likely means ("e-mail" → email, "tz" → timezone), or None."""
    return _suggestion(name) if len(name) <= _SHOWN else None  # no field's name is half that long


@lru_cache(maxsize=1024)  # every record of a JSON Lines file asks again for the same keys
def _suggestion(name: str) -> str | None:
    folded = re.sub(r"[\W_]", "", name.casefold())
    if folded in _FOLDED:
        return _FOLDED[folded]
    close = difflib.get_close_matches(name.strip().casefold(), KNOWN, n=1, cutoff=_CUTOFF)
    return close[0] if close else None


def column(name: str, extra: ExtraColumns, *, any_case: bool) -> Column | None:
    """Where a column goes; None when it names nothing we keep (an error for the caller to report)."""
    return (_remembered if len(name) <= _CACHED else _place)(name, extra, any_case)


def _place(name: str, extra: ExtraColumns, any_case: bool) -> Column | None:
    known = name.lower() if any_case and name.lower() in KNOWN else name
    if known in FIELDS:
        return Column(field=known)
    if known in ATTRIBUTE_FIELDS:
        return Column(attribute=known)
    if name[:len(PREFIX)].lower() == PREFIX and name[len(PREFIX):].strip():
        return Column(attribute=name[len(PREFIX):].strip())
    if extra == "attributes" and name and not name.lower().startswith(PREFIX) and suggestion(name) is None:
        return Column(attribute=name)
    return None


_remembered = lru_cache(maxsize=1024)(_place)  # JSON Lines records repeat their keys


def csv_header(file: str, names: list[str], extra: ExtraColumns) -> list[Column]:
    """Each column of a CSV header, in order; AudienceError listing every problem when the file cannot be taken."""
    names = [name.strip() for name in names]
    held = next((i for i, name in enumerate(names, 1) if "@" in name), None)
    if held is not None:  # a file without a header: never quote a row's address
        raise AudienceError(f"{file}:1: column {held} of the header holds an email address: the first line must "
                            f"name the columns ({', '.join(KNOWN)}); nothing was imported")
    columns = [column(name, extra, any_case=True) if name else IGNORED for name in names]
    targets = [name.lower() if c is None else c.field or (f"{PREFIX}{c.attribute}" if c.attribute else "")
               for name, c in zip(names, columns, strict=True)]
    twice = [target for target, n in Counter(targets).items() if target and n > 1]
    if twice:
        raise AudienceError(f"{file}:1: column {_shown(twice[0])} appears twice in the header")
    unknown = [(name, i) for i, (name, c) in enumerate(zip(names, columns, strict=True), 1) if c is None]
    fields = {c.field for c in columns if c is not None} | {suggestion(name) for name, _ in unknown}
    if unknown and not fields - {None}:  # nothing here names a field: a data row, whose values are never shown
        raise AudienceError(f"{file}:1: the first line names no column we know: is the header line missing? It "
                            f"must name the columns ({', '.join(KNOWN)}); nothing was imported")
    missing = []  # not reported for a field that an unknown column seems to be (e-mail: did you mean email?)
    if "id" not in fields:
        missing.append("no id column")
    if not fields & {"email", "push_tokens"}:
        missing.append("no email or push_tokens column (nothing could reach anyone)")
    if unknown or missing:
        raise AudienceError(f"{file}:1: {_problems(unknown, missing, extra, 'column')}")
    return columns


def first_record(file: str, line: int, obj: dict[str, Any], extra: ExtraColumns) -> None:
    """The first JSON Lines record stands for the header: an unknown key in it stops the file."""
    unknown = [(key, None) for key in obj if column(key, extra, any_case=False) is None and key != "attributes"]
    if unknown:
        raise AudienceError(f"{file}:{line}: {_problems(unknown, [], extra, 'key', ' in the first record')}")


def split_record(obj: dict[str, Any], extra: ExtraColumns) -> tuple[dict[str, Any], list[str]]:
    """A JSON Lines record as the row validator takes it (fields, and ``attributes`` holding every attribute), and
    its unknown keys. The ``attributes`` object wins over an attribute named outside it; a non-object is passed
    on for the validator to reject."""
    raw: dict[str, Any] = {}
    named: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in obj.items():
        if key in _FIELD_SET:  # the common case first: a file of a million records asks for every key
            raw[key] = value
            continue
        if key == "attributes":
            continue
        where = column(key, extra, any_case=False)
        if where is None:
            unknown.append(key)
        elif where.field is not None:
            raw[where.field] = value
        elif where.attribute is not None:
            named[where.attribute] = value
    given = obj.get("attributes")
    raw["attributes"] = {**named, **given} if isinstance(given, dict) else named if given is None else given
    return raw, unknown


def unknown_keys(keys: list[str]) -> str:
    """A later record's rejection reason: its unknown keys, each with a suggestion when there is one."""
    return _listed([(key, None) for key in keys], "key")


def _problems(unknown: list[tuple[str, int | None]], missing: list[str], extra: ExtraColumns, what: str,
              where: str = "") -> str:
    """Every unknown column and missing field of a header in one line, and what to do about them."""
    parts = ([_listed(unknown, what) + where] if unknown else []) + missing
    text = "; ".join(parts) + "; nothing was imported"
    unsure = [name for name, _ in unknown if suggestion(name) is None and not name.lower().startswith(PREFIX)]
    if unsure:  # no guess to offer (and extra == "error", or they would be attributes): say what we know
        many = len(unsure) > 1
        it = "them" if many else "it"
        known = ", ".join(KNOWN) + (", attributes (an object)" if what == "key" else "")
        fix = (f"move {it} into the attributes object" if what == "key" else
               f"name {it} {PREFIX}{'NAME' if many else unsure[0][:_SHOWN]}")
        text += (f". Known {what}s: {known}. To keep {it if many or '@' in unsure[0] else _shown(unsure[0])} as "
                 f"{'attributes' if many else 'an attribute'}, {fix} or pass --extra-columns attributes")
    elif extra == "attributes" and any(suggestion(name) for name, _ in unknown):
        text += f" (a {what} that looks like a field is not kept as an attribute: name it {PREFIX}NAME to keep it)"
    return text


def _listed(unknown: list[tuple[str, int | None]], what: str) -> str:
    """``unknown columns 'e-mail' (column 2: did you mean 'email'?), 'plan' (column 8)``: the first few."""
    items = []
    for name, position in unknown[:_LISTED]:
        close = suggestion(name)
        notes = [f"{what} {position}"] if position is not None else []
        if name.lower().startswith(PREFIX):
            notes.append(f"an attribute needs a name after {PREFIX!r}")
        elif close is not None:
            notes.append(f"did you mean {close!r}?")
        items.append(f"{_shown(name)} ({': '.join(notes)})" if notes else _shown(name))
    if len(unknown) > _LISTED:
        items.append(f"and {len(unknown) - _LISTED:,} more")
    plural = "s" if len(unknown) > 1 else ""
    return f"unknown {what}{plural} {', '.join(items)}"


def _shown(name: str) -> str:
    """A column name for a message: quoted and cut short; one that may be an address is not shown."""
    if "@" in name:
        return "(a name with an @, not shown)"
    return repr(name) if len(name) <= _SHOWN else f"{name[:_SHOWN]!r}…"
