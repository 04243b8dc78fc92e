"""The scalar values of a campaign file, parsed and bounded: durations, times, dates, counts, names and links.

Every parser raises ValueError with a message fit for a located Problem; none converts a number it has not first
bounded by its length (``int()`` refuses thousands of digits with a ValueError of its own), and none quotes more
than a few dozen characters of what it was given.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.headerregistry import Address
from urllib.parse import urlsplit

from notifier.campaign._yaml import Node, Reader, shown

# The bounds a campaign lives in. Generous for any real campaign, small enough that no arithmetic on them overflows
# and no plan or message grows without limit.
MAX_WAVE = timedelta(days=400)  # the earliest wave: about a year before its deadline (P400D, PT9600H)
MAX_WAVES = 20  # per deadline
MAX_DEADLINES = 20
MAX_LOCALES = 50
EARLIEST_DEADLINE, LATEST_DEADLINE = date(2000, 1, 1), date(2100, 12, 31)  # the date as written in the file
MAX_PER_DAY = 10
MAX_SPREAD = timedelta(hours=12)  # delivery.spread: a send's messages go out within this long after its time
MAX_TITLE = 200  # a campaign name or deadline label (the ledger keeps names in 200 characters)
MAX_WAVE_LABEL = 20  # P1DT23H59M59S is 13; the ledger keeps wave labels in 32
MAX_LINK = 2000
MAX_SENDER_NAME = 100
MAX_EMAIL = 254  # RFC 5321's limit on a forward path

_DURATION = re.compile(
    r"P(?!$)(?:(?P<y>[0-9]+)Y)?(?:(?P<mo>[0-9]+)M)?(?:(?P<w>[0-9]+)W)?(?:(?P<d>[0-9]+)D)?"
    r"(?:T(?=[0-9])(?:(?P<h>[0-9]+)H)?(?:(?P<mi>[0-9]+)M)?(?:(?P<s>[0-9]+)S)?)?"
)
_HHMM = re.compile(r"([0-9]{1,2}):([0-9]{2})")
# A host name: dot-separated labels of letters, digits and inner hyphens (IDNs as punycode, xn--…).
_HOST = re.compile(r"(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_LINK_REFUSED = "\"'<>\\`"


def _bounded(text: str, limit: timedelta, *, example: str, instead: str, too_long: str) -> timedelta:
    """An ISO-8601 duration of weeks, days, hours, minutes and seconds, up to ``limit``; months and years are
    refused (they have no fixed length), and so is a number too long to read (``too_long``)."""
    m = _DURATION.fullmatch(text.strip().upper())
    if not m:
        raise ValueError(f"{shown(text)} is not an ISO-8601 duration such as {example}")
    if m["y"] or m["mo"]:
        raise ValueError(f"{shown(text)}: months and years have no fixed length; write {instead}")
    # 100,000,000 of any unit is beyond every limit here: the digits are counted before int() sees them.
    if any(len(v.lstrip("0")) > 8 for v in m.groupdict().values() if v):
        raise ValueError(too_long)
    parts = {k: int(v) if v else 0 for k, v in m.groupdict().items()}
    delta = timedelta(weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["mi"], seconds=parts["s"])
    if delta > limit:
        raise ValueError(too_long)
    return delta


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration of weeks, days, hours, minutes and seconds, from zero (on the deadline) to MAX_WAVE.

    Months and years are refused: they have no fixed length.
    """
    delta = _bounded(text, MAX_WAVE, example="P7D or PT6H", instead="days instead (P30D)",
                     too_long=f"{shown(text)} is more than P400D (400 days) before its deadline, the longest a wave "
                              "may be")
    if len(text.strip()) > MAX_WAVE_LABEL:
        raise ValueError(f"{shown(text)} is longer than {MAX_WAVE_LABEL} characters: write it without leading zeros")
    return delta


def parse_wave(text: str) -> timedelta:
    """A wave: how long before its deadline a message goes out, as a duration (:func:`parse_duration`).

    A minus sign gets what a wave is rather than a syntax error: ``-P1D`` (or ``P-1D``) reads as "a day after", and
    nothing is sent after a deadline.
    """
    if text.strip().upper().startswith(("-", "P-")):
        raise ValueError(f"{shown(text)}: a wave is a duration before the deadline (such as P7D), never negative: "
                         "nothing is sent after a deadline")
    return parse_duration(text)


def parse_hhmm(text: str) -> time:
    """A time of day as HH:MM (ASCII digits), 00:00 to 23:59."""
    m = _HHMM.fullmatch(text.strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise ValueError(f"{shown(text)} is not a time of day as HH:MM")
    return time(int(m[1]), int(m[2]))


def parse_deadline_at(text: str) -> datetime:
    """An ISO datetime from 2000 to 2100; without an offset it stays naive: wall time in each recipient's zone."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{shown(text)} is not an ISO date-time such as 2024-10-28T00:00") from None
    if not EARLIEST_DEADLINE <= value.date() <= LATEST_DEADLINE:
        raise ValueError(f"{shown(text)} is not between {EARLIEST_DEADLINE} and {LATEST_DEADLINE}, "
                         "the dates a deadline may have")
    return value


def parse_max_per_day(text: str) -> int:
    """How many messages a recipient may get per day and channel: 1 to MAX_PER_DAY."""
    if not re.fullmatch(r"[0-9]{1,2}", text) or not 1 <= int(text) <= MAX_PER_DAY:
        raise ValueError(f"expected a whole number from 1 to {MAX_PER_DAY}, got {shown(text)}")
    return int(text)


def parse_spread(text: str) -> timedelta:
    """How long after its time a send's messages may spread (``delivery.spread``): an ISO-8601 duration such as
    PT20M, from zero (every message at the send's time) to MAX_SPREAD; the window bounds it further."""
    if text.strip().upper().startswith(("-", "P-")):
        raise ValueError(f"{shown(text)}: a spread is a duration after the send's time (such as PT20M), never "
                         "negative")
    delta = _bounded(text, MAX_SPREAD, example="PT20M", instead="minutes instead (PT20M)",
                     too_long=f"{shown(text)} is more than PT12H, the longest a spread may be")
    if delta.total_seconds() % 60:  # a send moved to the window's end minus PT90S would start at hh:58:30
        raise ValueError(f"{shown(text)}: a spread is a whole number of minutes (PT20M), so that no message lands "
                         "on a whole minute")
    return delta


def parse_title(text: str) -> str:
    """A campaign name or deadline label: one line of at most MAX_TITLE characters."""
    if len(text) > MAX_TITLE:
        raise ValueError(f"{shown(text)} is longer than {MAX_TITLE} characters")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text):
        raise ValueError(f"{shown(text)} contains a line break or control character")
    return text


def parse_link(text: str) -> str:
    """A link a message may carry: an https URL to a named host, in printable ASCII without any character that could
    end an HTML attribute or a quoted string (quotes, angle brackets, backslash, backtick, space)."""
    if len(text) > MAX_LINK:
        raise ValueError(f"{shown(text)} is longer than {MAX_LINK:,} characters")
    bad = next((c for c in text if not "!" <= c <= "~" or c in _LINK_REFUSED), None)
    if bad is not None:
        raise ValueError(f"{shown(text)} contains {bad!r}: a link may not contain quotes, angle brackets, backslashes, "
                         "backticks, spaces, control or non-ASCII characters (percent-encode them, e.g. %20)")
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise ValueError(f"{shown(text)} is not a URL: {exc}") from None
    if parts.scheme != "https" or not text[len("https:"):].startswith("//"):
        raise ValueError(f"{shown(text)} is not an https:// URL")
    if "@" in parts.netloc:
        raise ValueError(f"{shown(text)}: a link may not carry a user name or password (user@host)")
    if not _HOST.fullmatch(parts.hostname or ""):
        raise ValueError(f"{shown(text)}: {shown(parts.hostname or '')} is not a host name such as music.tiktok.com")
    return text


@dataclass(frozen=True)
class Sender:
    """Who a campaign's messages come from: the From name and address, and where replies go."""

    name: str
    email: str
    reply_to: str | None = None

    @property
    def from_header(self) -> str:
        """``Name <address>`` as an RFC 5322 From value, the name quoted when it needs it and left in Unicode (the
        outbox's SMTP policy encodes it; SendGrid takes the name as it is)."""
        return str(Address(display_name=self.name, addr_spec=self.email))


def parse_sender_name(text: str) -> str:
    """The name a sender shows: one plain line of at most MAX_SENDER_NAME characters."""
    if len(text) > MAX_SENDER_NAME:
        raise ValueError(f"{shown(text)} is longer than {MAX_SENDER_NAME} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
        raise ValueError(f"{shown(text)} contains a line break, control or formatting character")
    if any(c in text for c in "<>\"\\"):
        raise ValueError(f"{shown(text)} contains a character of an address (<, >, quote or backslash): "
                         "write the address under email")
    return text


def parse_email_address(text: str) -> str:
    """An email address as email-validator reads it (syntax only: no DNS look-up), in its normalized form."""
    from email_validator import EmailNotValidError, validate_email

    if len(text) > MAX_EMAIL:
        raise ValueError(f"{shown(text)} is longer than {MAX_EMAIL} characters")
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{shown(text)} is not an email address: {exc}") from None


def read_sender(r: Reader, node: Node | None) -> Sender | None:
    """The campaign's ``sender:`` mapping (name, email, optional reply_to); None when absent or invalid."""
    if node is None:
        return None
    m = r.mapping(node, "sender", ("name", "email"), ("reply_to",))
    if m is None:
        return None
    name = r.parsed(m.get("name"), "sender.name", parse_sender_name)
    address = r.parsed(m.get("email"), "sender.email", parse_email_address)
    reply_to = r.parsed(m.get("reply_to"), "sender.reply_to", parse_email_address) if "reply_to" in m else None
    if name is None or address is None or ("reply_to" in m and reply_to is None):
        return None
    return Sender(name, address, reply_to)


def read_deadline_channels(r: Reader, node: Node | None, path: str, campaign: tuple[str, ...]) -> tuple[str, ...]:
    """A deadline's ``channels:``, a subset of the campaign's, kept in the campaign's order; absent: the campaign's."""
    if node is None:
        return campaign
    chosen: set[str] = set()
    for i, (ch, line) in enumerate(r.text_list(node, path) or []):
        if ch not in campaign:
            r.fail(line, f"{path}[{i}]", f"{shown(ch)} is not one of the campaign's channels ({', '.join(campaign)})")
        elif ch in chosen:
            r.fail(line, f"{path}[{i}]", f"{ch!r} is listed twice")
        chosen.add(ch)
    return tuple(ch for ch in campaign if ch in chosen)


def read_deadline_link(r: Reader, node: Node | None, path: str, links: dict[str, str]) -> str | None:
    """A deadline's ``link:``, the page a message about it opens: a name under the campaign's ``links:`` or an https
    URL, resolved to the URL; None when absent or invalid (then a problem names the field)."""
    text = r.text(node, path)
    if text is None:
        return None
    assert node is not None
    if ":" in text or "/" in text:  # a URL, not a name
        return r.parsed(node, path, parse_link)
    if text in links:
        return links[text]
    close = difflib.get_close_matches(text, list(links), n=1)
    known = f"did you mean {close[0]!r}?" if close else \
        f"the campaign's links are {', '.join(links)}" if links else "the campaign has no links:"
    r.fail(node.line, path, f"{shown(text)} is neither a name under links ({known}) nor an https:// URL")
    return None


def parse_holdout(text: str) -> int:
    """``10%`` (up to one decimal: ``2.5%``) → basis points (1000); from 0.1% to 50%."""
    m = re.fullmatch(r"([0-9]{1,2})(?:\.([0-9]))?\s*%", text.strip())
    if m is None:
        raise ValueError(f"{text.strip()[:40]!r}: expected a share such as 10% (at most one decimal)")
    points = int(m.group(1)) * 100 + int(m.group(2) or 0) * 10
    if not 10 <= points <= 5000:
        raise ValueError(f"{text.strip()}: a holdout is from 0.1% to 50% of the audience")
    return points
