"""Campaign files: YAML in, a validated :class:`Campaign` out, every problem located by file, line and field.

Every value is bounded (``_values``: waves, dates, counts, names, links) and the file itself too
(``_yaml``: size, nesting, anchors), so a hostile file gets located problems, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from notifier.campaign._values import (
    MAX_DEADLINES,
    MAX_LOCALES,
    MAX_WAVES,
    Sender,
    parse_deadline_at,
    parse_duration,
    parse_hhmm,
    parse_holdout,
    parse_link,
    parse_max_per_day,
    parse_spread,
    parse_title,
    parse_wave,
    read_deadline_channels,
    read_deadline_link,
    read_sender,
)
from notifier.campaign._yaml import MAX_FILE_BYTES, TOO_LARGE, Node, Reader, read_tree, shown
from notifier.campaign._yaml import SLUG as SLUG  # what a campaign id (and gettext domain) may be
from notifier.conditions import Condition, ConditionError, parse_condition
from notifier.errors import CampaignError, Problem

CHANNELS = ("email", "push")
CATEGORIES = ("service", "marketing")


@dataclass(frozen=True)
class Wave:
    """One ISO-8601 duration before a deadline: whole days (P7D) or an exact offset (PT6H)."""

    label: str
    delta: timedelta
    path: str = field(default="", compare=False)  # where the file writes it: deadlines[0].waves[1]
    line: int | None = field(default=None, compare=False)

    @property
    def whole_days(self) -> bool:
        """Days and weeks only (P7D, P1W); a time part (PT24H, PT0S, P1DT6H) makes it an exact offset."""
        return "T" not in self.label.upper() and self.delta % timedelta(days=1) == timedelta(0)

    @property
    def days(self) -> int:
        return self.delta.days

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Deadline:
    """A moment after which reminders are pointless; ``at`` is naive for wall time in each recipient's zone."""

    id: str
    at: datetime
    waves: tuple[Wave, ...]
    skip_if: str | None = None
    label: str | None = None
    channels: tuple[str, ...] = CHANNELS  # the campaign's channels this deadline is announced on
    link: str | None = None  # the page a message about it opens (its ``link:``, resolved to an https URL)
    where: Condition | None = None  # only recipients who meet it are told about this deadline
    path: str = field(default="", compare=False)  # where the file writes it: deadlines[0]
    at_line: int | None = field(default=None, compare=False)  # the line of its ``at``

    @property
    def is_wall_time(self) -> bool:
        return self.at.tzinfo is None

    def instant_in(self, zone: tzinfo) -> datetime:
        """The deadline as an aware datetime in ``zone``."""
        return _instant_in(self.at, zone)


# Pure (a wall time or an instant, and a zone), and asked again for every row of a batch by the guard, the
# composer and the retry policy: the answers are kept.
@lru_cache(maxsize=8192)
def _instant_in(at: datetime, zone: tzinfo) -> datetime:
    if at.tzinfo is not None:
        return at.astimezone(zone)
    return _wall_time_in(at, zone)


def last_day(deadline_at: datetime) -> tuple[date, time | None]:
    """The last local calendar day on which a recipient can still act before a deadline at ``deadline_at`` (aware,
    in their zone), and the time of day that day ends.

    A deadline at local midnight (00:00) ends as its own day begins, so the last day is the day before, all of it
    (None); at any other time (09:00) the deadline's own day is the last, until that time. docs/templates.md
    ("What 'last day' means") says the same to template writers.
    """
    if deadline_at.time() == time(0):
        return deadline_at.date() - timedelta(days=1), None
    return deadline_at.date(), deadline_at.time()


@dataclass(frozen=True)
class Delivery:
    """When in the recipient's own day messages may go out."""

    local_time: time = time(10, 0)
    window: tuple[time, time] = (time(8, 0), time(21, 0))
    max_per_day: int = 1
    spread: timedelta = timedelta(0)  # a send's messages go out over this long after its time (0: all at once)


@dataclass(frozen=True)
class Campaign:
    """A validated campaign file."""

    id: str
    name: str
    category: str
    templates: str
    locales: tuple[str, ...]
    default_locale: str
    channels: tuple[str, ...]
    delivery: Delivery
    deadlines: tuple[Deadline, ...]
    countries: tuple[str, ...] = ()
    where: Condition | None = None  # audience.where: only recipients who meet it are in the audience
    holdout: int = 0  # audience.holdout in basis points (1000 = 10%) of the audience who get nothing (marketing only)
    links: dict[str, str] = field(default_factory=dict)
    fallback: str | None = None  # "email": a recipient whose push tokens are all dead gets the email instead
    on_uncertain: str = "resend"  # a message whose worker died mid-request: "resend" (maybe twice) or "skip"
    sender: Sender | None = None  # None: the global NOTIFIER_EMAIL_FROM
    purge_after: timedelta | None = None  # the tick deletes recipients' personal data this long after the end
    source: str = "<memory>"

    def deadline(self, deadline_id: str) -> Deadline:
        for d in self.deadlines:
            if d.id == deadline_id:
                return d
        raise KeyError(deadline_id)

    @property
    def honours_opt_outs(self) -> bool:
        return self.category == "marketing"

    @property
    def holdout_share(self) -> str | None:
        """``audience.holdout`` as the file writes it ("10%", "2.5%"); None when nobody is held out."""
        if not self.holdout:
            return None
        whole, tenths = divmod(self.holdout // 10, 10)
        return f"{whole}.{tenths}%" if tenths else f"{whole}%"

    @property
    def channels_vary(self) -> bool:
        """Some deadline is announced on fewer channels than the campaign has: the planner plans each channel."""
        return any(not set(self.channels) <= set(d.channels) for d in self.deadlines)


def resolve_local(day: date, at: time, zone: tzinfo) -> datetime:
    """Wall time ``at`` on ``day`` in ``zone`` as an aware datetime.

    A repeated time (clocks go back) means its first occurrence; a time skipped by a DST jump
    moves forward by the length of the jump (02:30 on a 02:00→03:00 day becomes 03:30), as RFC 5545 does.
    """
    aware = datetime.combine(day, at).replace(tzinfo=zone, fold=0)
    return aware.astimezone(UTC).astimezone(zone)


def normalize_locale_tag(tag: str) -> str:
    """'pt_br' / 'pt-BR' → 'pt-BR'; raises ValueError for a tag Babel does not know."""
    from notifier.i18n import parse_tag, tag_of

    loc = parse_tag(tag, strict=True) if re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*", tag.strip()) else None
    if loc is None:
        raise ValueError(f"{shown(tag)} is not a locale Babel knows")
    return tag_of(loc)


def _read_locales(r: Reader, top: dict[str, Node]) -> tuple[tuple[str, ...], str | None]:
    locales: list[str] = []
    listed = top.get("locales") if r.at_most(top.get("locales"), "locales", MAX_LOCALES, "locales") else None
    for i, (tag, line) in enumerate(r.text_list(listed, "locales") or []):
        try:
            norm = normalize_locale_tag(tag)
        except ValueError as exc:
            r.fail(line, f"locales[{i}]", str(exc))
            continue
        if norm in locales:
            r.fail(line, f"locales[{i}]", f"{norm!r} is listed twice")
        locales.append(norm)
    default = r.text(top.get("default_locale"), "default_locale")
    if default is not None:
        node = top["default_locale"]
        try:
            default = normalize_locale_tag(default)
        except ValueError as exc:
            r.fail(node.line, "default_locale", str(exc))
            default = None
        if default is not None and locales and default not in locales:
            r.fail(node.line, "default_locale", f"{default!r} is not one of locales {locales}")
    return tuple(locales), default


def _read_delivery(r: Reader, node: Node | None) -> Delivery:
    if node is None:
        return Delivery()
    m = r.mapping(node, "delivery", (), ("local_time", "window", "max_per_day", "spread"))
    if m is None:
        return Delivery()
    d = Delivery()
    local_time = r.parsed(m.get("local_time"), "delivery.local_time", parse_hhmm) or d.local_time
    window = d.window
    if "window" in m:
        w = m["window"]
        items = r.text_list(w, "delivery.window")
        if items is not None and len(items) != 2:
            r.fail(w.line, "delivery.window", "expected two times: [start, end]")
        elif items is not None:
            try:
                window = (parse_hhmm(items[0][0]), parse_hhmm(items[1][0]))
            except ValueError as exc:
                r.fail(w.line, "delivery.window", str(exc))
            else:
                if window[0] >= window[1]:
                    r.fail(w.line, "delivery.window", "the start must be before the end (no overnight windows)")
    if not window[0] <= local_time <= window[1]:
        line = m["local_time"].line if "local_time" in m else node.line
        r.fail(line, "delivery.local_time",
               f"{local_time:%H:%M} is outside the window {window[0]:%H:%M}–{window[1]:%H:%M}")
    max_per_day = r.parsed(m.get("max_per_day"), "delivery.max_per_day", parse_max_per_day) or d.max_per_day
    spread = r.parsed(m.get("spread"), "delivery.spread", parse_spread) or d.spread
    # The spread of a send at local_time ends by the window's end (sends moved to the window's end start earlier).
    if spread and datetime.combine(date.min, local_time) + spread > datetime.combine(date.min, window[1]):
        r.fail(m["spread"].line, "delivery.spread",
               f"{m['spread'].value.strip()} after local_time {local_time:%H:%M} runs past the window's end "
               f"{window[1]:%H:%M}: shorten the spread or send earlier")
    return Delivery(local_time=local_time, window=window, max_per_day=max_per_day, spread=spread)


def _read_deadline(r: Reader, node: Node, i: int, seen: dict[str, int], channels: tuple[str, ...],
                   links: dict[str, str]) -> Deadline | None:
    path = f"deadlines[{i}]"
    m = r.mapping(node, path, ("id", "at", "waves"), ("skip_if", "label", "channels", "link", "where"))
    if m is None:
        return None
    ident = r.slug(m.get("id"), f"{path}.id")
    if ident is not None and ident in seen:
        r.fail(m["id"].line, f"{path}.id", f"deadline id {ident!r} already used on line {seen[ident]}")
    elif ident is not None:
        seen[ident] = m["id"].line
    at = r.parsed(m.get("at"), f"{path}.at", parse_deadline_at)
    waves: list[Wave] = []
    if "waves" in m and (m["waves"].value is None or m["waves"].value == []):
        r.fail(m["waves"].line, f"{path}.waves", "a deadline needs at least one wave (for example [P7D, P1D])")
    elif r.at_most(m.get("waves"), f"{path}.waves", MAX_WAVES, "waves per deadline"):
        for j, (text, line) in enumerate(r.text_list(m.get("waves"), f"{path}.waves") or []):
            try:
                wave = Wave(text.strip().upper(), parse_wave(text), f"{path}.waves[{j}]", line)
            except ValueError as exc:
                r.fail(line, f"{path}.waves[{j}]", str(exc))
                continue
            if any((w.delta, w.whole_days) == (wave.delta, wave.whole_days) for w in waves):
                r.fail(line, f"{path}.waves[{j}]", f"{wave.label} is listed twice")
                continue
            waves.append(wave)
    skip_if = r.text(m.get("skip_if"), f"{path}.skip_if") if m.get("skip_if") is not None and \
        m["skip_if"].value is not None else None
    label = r.parsed(m.get("label"), f"{path}.label", parse_title) if "label" in m else None
    own_channels = read_deadline_channels(r, m.get("channels"), f"{path}.channels", channels)
    link = read_deadline_link(r, m.get("link"), f"{path}.link", links)
    where = _read_where(r, m.get("where"), f"{path}.where")
    if ident is None or at is None or not waves:
        return None
    waves.sort(key=lambda w: w.delta, reverse=True)
    return Deadline(id=ident, at=at, waves=tuple(waves), skip_if=skip_if, label=label, channels=own_channels,
                    link=link, where=where, path=path, at_line=m["at"].line)


_TOP_REQUIRED = ("id", "name", "locales", "default_locale", "channels", "deadlines")
_TOP_OPTIONAL = ("category", "templates", "delivery", "audience", "links", "description", "fallback",
                 "on_uncertain", "sender", "purge_after")


def parse_campaign(text: str, source: str = "<memory>") -> Campaign:
    """Parse and validate a campaign; raises CampaignError listing every problem found."""
    r = Reader(source)
    tree = read_tree(text, source, r.problems)
    top = r.mapping(tree, "", _TOP_REQUIRED, _TOP_OPTIONAL)
    if top is None:
        raise CampaignError(r.problems)
    ident = r.slug(top.get("id"), "id")
    name = r.parsed(top.get("name"), "name", parse_title)
    category = r.text(top.get("category"), "category") or "service"
    if category not in CATEGORIES:
        r.fail(top["category"].line, "category", f"{category!r} is not one of {', '.join(CATEGORIES)}")
    templates = r.slug(top.get("templates"), "templates") if "templates" in top else ident
    locales, default_locale = _read_locales(r, top)
    channels: list[str] = []
    for i, (ch, line) in enumerate(r.text_list(top.get("channels"), "channels") or []):
        if ch not in CHANNELS:
            r.fail(line, f"channels[{i}]", f"unknown channel {ch!r} (known: {', '.join(CHANNELS)})")
        elif ch in channels:
            r.fail(line, f"channels[{i}]", f"{ch!r} is listed twice")
        else:
            channels.append(ch)
    delivery = _read_delivery(r, top.get("delivery"))
    fallback = r.text(top.get("fallback"), "fallback") if top.get("fallback") is not None else None
    if fallback is not None and fallback != "email":
        r.fail(top["fallback"].line, "fallback", f"{fallback!r}: the only fallback is 'email'")
    # Service announcements must arrive (a rare duplicate is the lesser harm); marketing must not nag.
    on_uncertain = r.text(top.get("on_uncertain"), "on_uncertain") if "on_uncertain" in top else None
    if on_uncertain is not None and on_uncertain not in ("resend", "skip"):
        r.fail(top["on_uncertain"].line, "on_uncertain", f"{on_uncertain!r}: expected resend or skip")
    on_uncertain = on_uncertain or ("skip" if category == "marketing" else "resend")
    countries, where, holdout = _read_audience(r, top.get("audience"), category)
    links = _read_links(r, top.get("links"))
    sender = read_sender(r, top.get("sender"))
    purge_after = r.parsed(top.get("purge_after"), "purge_after", parse_duration) if "purge_after" in top else None
    deadlines: list[Deadline] = []
    dl_node = top.get("deadlines")
    if dl_node is not None:
        if not isinstance(dl_node.value, list) or not dl_node.value:
            r.fail(dl_node.line, "deadlines", "expected a non-empty list of deadlines")
        elif r.at_most(dl_node, "deadlines", MAX_DEADLINES, "deadlines"):
            seen: dict[str, int] = {}
            for i, item in enumerate(dl_node.value):
                d = _read_deadline(r, item, i, seen, tuple(channels), links)
                if d is not None:
                    deadlines.append(d)
    if r.problems:
        raise CampaignError(r.problems)
    assert ident and name and templates and default_locale
    return Campaign(
        id=ident, name=name, category=category, templates=templates, locales=locales,
        default_locale=default_locale, channels=tuple(channels), delivery=delivery,
        deadlines=tuple(deadlines), countries=countries,  # the file's order: templates and plans list them so
        where=where, holdout=holdout,
        links=links, fallback=fallback, on_uncertain=on_uncertain, sender=sender, purge_after=purge_after,
        source=source,
    )


def _read_audience(r: Reader, node: Node | None, category: str) -> tuple[tuple[str, ...], Condition | None, int]:
    if node is None:
        return (), None, 0
    m = r.mapping(node, "audience", (), ("countries", "where", "holdout"))
    if not m:
        return (), None, 0
    countries = []
    for i, (code, line) in enumerate(r.text_list(m["countries"], "audience.countries") or [] if "countries" in m
                                     else []):
        if not re.fullmatch(r"[A-Za-z]{2}", code):
            r.fail(line, f"audience.countries[{i}]", f"{code!r} is not an ISO 3166 two-letter country code")
        else:
            countries.append(code.upper())
    where = _read_where(r, m.get("where"), "audience.where")
    holdout = r.parsed(m.get("holdout"), "audience.holdout", parse_holdout) if "holdout" in m else 0
    if holdout and category != "marketing":
        r.fail(m["holdout"].line, "audience.holdout", "only a marketing campaign holds people out: a service "
                                                      "announcement must reach everyone it concerns")
    return tuple(countries), where, holdout or 0


def _read_where(r: Reader, node: Node | None, path: str) -> Condition | None:
    text = r.text(node, path) if node is not None else None
    if node is None or text is None:
        return None
    try:
        return parse_condition(text)
    except ConditionError as exc:
        r.fail(node.line, path, str(exc))
        return None


def _read_links(r: Reader, node: Node | None) -> dict[str, str]:
    if node is None:
        return {}
    if not isinstance(node.value, dict):
        r.fail(node.line, "links", "expected a mapping of link names to URLs")
        return {}
    links = {}
    for key, (value, line) in node.value.items():
        url = r.text(value, f"links.{key}")
        try:
            if url is not None:
                links[key] = parse_link(url)
        except ValueError as exc:
            r.fail(line, f"links.{key}", str(exc))
    return links


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate one campaign file."""
    p = Path(path)
    try:
        with p.open(encoding="utf-8") as f:
            text = f.read(MAX_FILE_BYTES + 1)  # characters: parse_campaign counts the bytes
    except FileNotFoundError:
        raise CampaignError([Problem(str(p), None, None, "no such file")]) from None
    except OSError as exc:  # a folder, no permission: still the user's input, not a bug
        raise CampaignError([Problem(str(p), None, None, f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise CampaignError([Problem(str(p), None, None, f"not UTF-8 text ({exc.reason})")]) from None
    if len(text) > MAX_FILE_BYTES:
        raise CampaignError([Problem(str(p), None, None, TOO_LARGE)])
    return parse_campaign(text, source=str(p))


def load_campaigns(paths: Iterable[str | Path]) -> list[Campaign]:
    """Load several campaign files (folders expand to their *.yaml); ids must not overlap."""
    files: list[Path] = []
    for path in paths:
        p = Path(path)
        files.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]) if p.is_dir() else [p])
    campaigns: list[Campaign] = []
    problems: list[Problem] = []
    by_id: dict[str, Campaign] = {}
    for f in files:
        try:
            c = load_campaign(f)
        except CampaignError as exc:
            problems.extend(exc.problems)
            continue
        if c.id in by_id:
            other = by_id[c.id].source
            problems.append(Problem(str(f), None, "id", f"campaign id {c.id!r} is already used by {other}"))
            continue
        by_id[c.id] = c
        campaigns.append(c)
    if problems:
        raise CampaignError(problems)
    return campaigns


@lru_cache(maxsize=4096)
def _wall_time_in(at: datetime, zone: tzinfo) -> datetime:
    """A wall-time deadline in one zone: asked for every row of a wave, resolved once per zone."""
    return resolve_local(at.date(), at.time(), zone)


def zone(name: str) -> ZoneInfo:
    """A ZoneInfo for an IANA name; ValueError with a readable message otherwise (see notifier.zones)."""
    from notifier.zones import zone as iana_zone

    return iana_zone(name)

