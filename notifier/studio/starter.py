"""A campaign from a form, not a blank page: the studio's starters and the live validation of the form.

The form's fields are named after the campaign file's (``deadlines[0].waves[1]``, ``deadlines[0].where``,
``sender.email``, ``links.details``), except ``countries``, ``where`` and ``holdout`` (under ``audience``),
``source_locale`` (``default_locale``) and ``local_time``/``window`` (under ``delivery``); so the problems
``campaign validate`` gives map back onto the form's fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from notifier.campaign import parse_campaign
from notifier.errors import CampaignError, Problem
from notifier.studio import store

FORM = "starter"  # the Problem.file of a form's problems


@dataclass(frozen=True)
class StarterDeadline:
    id: str
    label: str
    at: str  # "YYYY-MM-DDTHH:MM", wall time in each recipient's zone
    waves: tuple[str, ...]  # ISO-8601 durations before it: P30D, P7D, P1D, PT6H ...
    skip_if: str | None = None  # the action that ends its reminders (a recipient's flag)
    link: str | None = None  # a name under links, or an https URL
    channels: tuple[str, ...] | None = None  # None: the campaign's
    where: str | None = None  # a condition: only recipients who meet it are told about this deadline


@dataclass(frozen=True)
class Starter:
    id: str
    name: str
    category: str
    sender_name: str
    sender_email: str
    locales: tuple[str, ...]
    channels: tuple[str, ...]
    countries: tuple[str, ...]
    links: dict[str, str]
    deadlines: tuple[StarterDeadline, ...]
    local_time: str = "10:00"
    window: tuple[str, str] = ("08:00", "21:00")
    source_locale: str | None = None  # None: the first English locale, else the first
    where: str | None = None  # audience.where: a condition on the recipients' fields and attributes
    holdout: str | None = None  # audience.holdout: a share such as "10%" who get nothing (marketing only)

    @property
    def default_locale(self) -> str:
        return self.source_locale or next((t for t in self.locales if t.split("-")[0] == "en"), self.locales[0])


def _starter(ident: str, name: str, sender: str, label: str, at: str, skip_if: str, page: str,
             category: str = "service") -> dict[str, Any]:
    return {"id": ident, "name": name, "category": category, "sender_name": sender,
            "sender_email": "no-reply@example.com", "locales": ["en", "id", "pt-BR"], "channels": ["email", "push"],
            "countries": ["BR", "MX", "ID"], "links": {"details": page},
            "deadlines": [{"id": ident.split("-")[0], "label": label, "at": at, "waves": ["P30D", "P7D", "P1D"],
                           "skip_if": skip_if, "link": "details"}]}


STARTERS: dict[str, dict[str, Any]] = {
    "price-change": _starter("price-change", "Acme Stream price change", "Acme Stream", "The new price starts",
                             "2027-03-01T00:00", "plan_changed", "https://example.com/price"),
    "shutdown": _starter("shutdown", "Acme Stream is closing", "Acme Stream", "The service closes",
                         "2027-06-01T00:00", "data_exported", "https://example.com/closing"),
    "policy-change": _starter("policy-change", "Acme Stream privacy policy update", "Acme Stream",
                              "The new privacy policy applies", "2027-04-01T00:00", "policy_accepted",
                              "https://example.com/privacy"),
}

_TEXT = ("id", "name", "category", "sender_name", "sender_email")
_LISTS = ("locales", "channels", "countries")


def starter_from_json(data: Mapping[str, Any]) -> Starter:
    """A Starter from the form's JSON; a CampaignError with one Problem per field of the wrong shape."""
    problems: list[Problem] = []

    def text(obj: Mapping[str, Any], key: str, where: str, required: bool = True) -> str | None:
        value = obj.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(FORM, None, where, "expected a text"))
            return None
        return value.strip()

    def texts(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = obj.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            problems.append(Problem(FORM, None, where, "expected a list of texts"))
            return ()
        return tuple(v.strip() for v in value)

    if not isinstance(data, Mapping):
        raise CampaignError([Problem(FORM, None, None, "expected a JSON object")])
    values: dict[str, Any] = {k: text(data, k, k) for k in _TEXT}
    values.update({k: texts(data, k, k) for k in _LISTS})
    links = data.get("links", {})
    if not isinstance(links, Mapping) or not all(isinstance(v, str) for v in links.values()):
        problems.append(Problem(FORM, None, "links", "expected link names and URLs"))
        links = {}
    deadlines = data.get("deadlines")
    if not isinstance(deadlines, list) or not deadlines:
        problems.append(Problem(FORM, None, "deadlines", "expected at least one deadline"))
        deadlines = []
    found = []
    for i, d in enumerate(deadlines):
        path = f"deadlines[{i}]"
        if not isinstance(d, Mapping):
            problems.append(Problem(FORM, None, path, "expected a deadline"))
            continue
        channels = texts(d, "channels", f"{path}.channels") if d.get("channels") is not None else None
        found.append(StarterDeadline(text(d, "id", f"{path}.id") or "", text(d, "label", f"{path}.label") or "",
                                     text(d, "at", f"{path}.at") or "", texts(d, "waves", f"{path}.waves"),
                                     text(d, "skip_if", f"{path}.skip_if", False),
                                     text(d, "link", f"{path}.link", False), channels,
                                     text(d, "where", f"{path}.where", False)))
    window = data.get("window", ["08:00", "21:00"])
    if not isinstance(window, list | tuple) or len(window) != 2 or not all(isinstance(w, str) for w in window):
        problems.append(Problem(FORM, None, "window", "expected two times: [start, end]"))
        window = ("08:00", "21:00")
    local_time = text(data, "local_time", "local_time", False) or "10:00"
    source = text(data, "source_locale", "source_locale", False)
    where = text(data, "where", "where", False)
    holdout = text(data, "holdout", "holdout", False)
    if problems:
        raise CampaignError(problems)
    return Starter(**values, links=dict(links), deadlines=tuple(found), local_time=local_time,
                   window=(window[0], window[1]), source_locale=source, where=where, holdout=holdout)


def _q(value: str) -> str:
    """A YAML scalar that is exactly ``value`` (a JSON string is a YAML double-quoted one)."""
    return json.dumps(value, ensure_ascii=False)


def _flow(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def campaign_yaml(starter: Starter) -> str:
    """The campaign file of a starter, as ``campaign new`` writes one: commented, for the CLI and for git."""
    s = starter
    lines = [f"# {s.name}: made in the studio; `notifier campaign validate` checks it like any campaign file.",
             f"id: {_q(s.id)}", f"name: {_q(s.name)}",
             f"category: {_q(s.category)}             # service | marketing (marketing honours opt-outs)",
             f"templates: {_q(s.id)}", f"locales: {_flow(s.locales)}",
             f"default_locale: {_q(s.default_locale)}   # the language the words are written in",
             f"channels: {_flow(s.channels)}", "sender:", f"  name: {_q(s.sender_name)}",
             f"  email: {_q(s.sender_email)}"]
    if s.countries or s.where or s.holdout:
        lines.append("audience:")
    if s.countries:
        lines.append(f"  countries: {_flow(s.countries)}")
    if s.where:
        lines.append(f"  where: {_q(s.where)}   # only recipients who meet it (their fields and attributes)")
    if s.holdout:
        lines.append(f"  holdout: {_q(s.holdout)}   # this share gets nothing: the results compare them with the rest")
    if s.links:
        lines += ["links:", *(f"  {_q(k)}: {_q(v)}" for k, v in s.links.items())]
    lines += ["delivery:", f"  local_time: {_q(s.local_time)}        # preferred send time in each recipient's zone",
              f"  window: {_flow(s.window)}   # never outside this local window", "  max_per_day: 1",
              "deadlines:"]
    for d in s.deadlines:
        lines += [f"  - id: {_q(d.id)}", f"    label: {_q(d.label)}",
                  f"    at: {_q(d.at)}     # no offset: wall time in each recipient's zone",
                  f"    waves: {_flow(d.waves)}"]
        if d.skip_if:
            lines.append(f"    skip_if: {_q(d.skip_if)}   # a recipient who did it gets no more reminders")
        if d.link:
            lines.append(f"    link: {_q(d.link)}")
        if d.channels is not None:
            lines.append(f"    channels: {_flow(d.channels)}")
        if d.where:
            lines.append(f"    where: {_q(d.where)}   # only recipients who meet it are told about this deadline")
    return "\n".join(lines) + "\n"


# The file's field paths that the form names otherwise.
_TO_FORM = [(re.compile(r"^audience\.countries"), "countries"), (re.compile(r"^audience\.where"), "where"),
            (re.compile(r"^audience\.holdout"), "holdout"), (re.compile(r"^delivery\.local_time"), "local_time"),
            (re.compile(r"^delivery\.window"), "window"), (re.compile(r"^default_locale"), "source_locale"),
            (re.compile(r"^templates"), "id"), (re.compile(r"^sender\.name"), "sender_name"),
            (re.compile(r"^sender\.email"), "sender_email"), (re.compile(r"^audience$"), "countries")]


def form_field(path: str | None) -> str | None:
    """The form's name of a campaign file's field path (``audience.countries[1]`` -> ``countries[1]``)."""
    if path is None:
        return None
    for pattern, name in _TO_FORM:
        if pattern.search(path):
            return pattern.sub(name, path)
    return path


def _on_form(problems: list[Problem] | tuple[Problem, ...]) -> list[Problem]:
    return [Problem(FORM, None, form_field(p.field), p.message) for p in problems]


def check_starter(data: Mapping[str, Any], now: datetime) -> list[Problem]:
    """Every problem ``campaign validate`` would give the form's campaign (its file's and the waves no time zone
    still gets at ``now``), each named by the form's field; empty when it is good to go."""
    from notifier.planner import NOTHING_SENT, outlook
    from notifier.zones import every_zone

    try:
        starter = starter_from_json(data)
        campaign = parse_campaign(campaign_yaml(starter), FORM)
    except CampaignError as exc:
        return _on_form(exc.problems)
    seen = outlook(campaign, every_zone(), now)
    problems = _on_form(seen.not_sent)
    if seen.sends_nothing:
        problems.append(Problem(FORM, None, "deadlines", NOTHING_SENT))
    return problems


def new_bundle(starter: Starter) -> store.Bundle:
    """A new studio campaign: its file, templates made from the default words, the ``.pot`` and every ``.po``
    (the source language's filled in, the others empty, for translators)."""
    from notifier.studio.templating import apply_words
    from notifier.studio.words import default_words

    text = campaign_yaml(starter)
    parse_campaign(text, f"campaigns/{starter.id}.yaml")  # a located CampaignError rather than a broken bundle
    bundle = {f"campaigns/{starter.id}.yaml": text.encode()}
    return apply_words(bundle, default_words(starter.default_locale))
