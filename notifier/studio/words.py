"""A studio campaign's words, written once in the source language; its templates and catalogs are made from them.

The marketer writes, per stage (announcement, reminder, last_day, and merged for a send that carries several
deadlines), the subject, preheader, heading, paragraphs, button, push title and push body, with placeholders such as
``{date}`` from a menu (:data:`PLACEHOLDERS`). ``notifier.studio.templating.apply_words`` turns them into an
ordinary campaign's files. This module holds the words, their checks (located problems) and ``words.yaml``.

In a merged send, a paragraph or button that names a deadline (``{date}``, ``{days}``, ``{deadline}``, ``{link}``)
is repeated for each of its deadlines; the other fields speak of the first. A paragraph with ``{name}`` or
``{refund}`` is left out for a recipient without one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from notifier.catalogs import expected_plural_forms
from notifier.errors import CampaignError, Problem
from notifier.studio import store

STAGES = ("announcement", "reminder", "last_day", "merged")
FIELDS = ("subject", "preheader", "heading", "paragraphs", "button", "push_title", "push_body")
PLACEHOLDERS: dict[str, str] = {
    "date": "the last day to act (the day before a deadline at 00:00), in the reader's language",
    "days": "the days left, today included (a text with it has one form per plural form)",
    "deadline": "the deadline's label",
    "name": "the recipient's name (a paragraph with it is left out when there is none)",
    "refund": "the refund amount (a paragraph with it is left out when there is none)",
    "sender": "the sender's name",
    "link": "the deadline's page",
}
# What each placeholder is in the templates (``d`` is the deadline spoken of; ``page`` and ``deadline_label`` are
# macros of _copy.j2: the deadline's link, and its label translated like the words).
EXPRESSIONS = {"date": "d.last_day", "deadline": "deadline_label(d)", "name": "recipient_name",
               "refund": "refund_amount", "sender": "sender_name", "link": "page(d)"}
PERSONAL = {"name": "recipient_name", "refund": "refund_amount"}  # only in paragraphs, left out when empty
PER_DEADLINE = {"date", "days", "deadline", "link"}
TOKEN = re.compile(r"\{(\w+)\}")
_FILE = "words"  # the Problem.file of words that do not come from a file
# Every email says why its reader gets it (a sentence of its own, translated like the words).
FOOTER = ("You get this message because you have an account with {sender}.",)
GENERATED = ("_copy.j2", "email_subject.txt", "email.txt", "email.mjml", "push_title.txt", "push_body.txt")


@dataclass(frozen=True)
class StageWords:
    """One stage's words; a field with ``{days}`` also has its forms in ``plurals`` (the field keeps the last)."""

    subject: str
    preheader: str
    heading: str
    paragraphs: tuple[str, ...]
    button: str
    push_title: str
    push_body: str
    plurals: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # "heading" or "paragraphs[1]" -> forms

    def texts(self) -> list[tuple[str, str]]:
        """(field, text) of every text, paragraphs as ``paragraphs[i]``."""
        single = [(name, getattr(self, name)) for name in FIELDS if name != "paragraphs"]
        return single + [(f"paragraphs[{i}]", p) for i, p in enumerate(self.paragraphs)]

    def forms(self, name: str) -> tuple[str, ...]:
        """A field's plural forms, or its one text."""
        return tuple(self.plurals.get(name) or (dict(self.texts())[name],))


@dataclass(frozen=True)
class Words:
    source_locale: str
    stages: Mapping[str, StageWords]


def plural_count(locale: str) -> int:
    """How many plural forms a language has (the project's rule, notifier.catalogs)."""
    return int(re.search(r"nplurals\s*=\s*(\d+)", expected_plural_forms(locale))[1])  # type: ignore[index]


def _days(one: str, other: str, n: int) -> tuple[str, ...]:
    return (one, *(other,) * (n - 1)) if n > 1 else (other,)


def default_words(source_locale: str) -> Words:
    """Words that send as they are (in English), for the marketer to rewrite rather than write from nothing."""
    n = plural_count(source_locale)
    left = _days("{days} day left: {deadline}", "{days} days left: {deadline}", n)
    heading = _days("{days} day left", "{days} days left", n)
    hello = "Hi {name},"
    return Words(source_locale, {
        "announcement": StageWords(
            "{deadline}: the last day to act is {date}", "News from {sender} about your account.", "{deadline}",
            (hello, "{sender} has news that affects you: {deadline}.", "The last day to act is {date}."),
            "Find out more", "{deadline}", "The last day to act is {date}. Tap to find out more."),
        "reminder": StageWords(
            left[-1], "A reminder from {sender}.", heading[-1],
            (hello, "A reminder: {deadline}. The last day to act is {date}."), "Find out more", heading[-1],
            "{deadline}: the last day to act is {date}.",
            {"subject": left, "heading": heading, "push_title": heading}),
        "last_day": StageWords(
            "Last chance: {deadline}", "The last day to act is {date}.", "Last chance",
            (hello, "This is our last reminder: the last day to act is {date}."), "Act now", "Last chance",
            "{deadline}: the last day to act is {date}."),
        "merged": StageWords(
            "Important dates from {sender}", "Several dates are coming up.", "Important dates",
            (hello, "{deadline}: the last day to act is {date}."), "{deadline}", "Important dates",
            "Several dates are coming up. Tap to see them."),
    })


# --- JSON and words.yaml --------------------------------------------------------------------------------------


def words_to_json(words: Words) -> dict[str, Any]:
    """The words as JSON (and as words.yaml): stage -> fields, with ``plurals`` for texts with ``{days}``."""
    stages = {}
    for name in STAGES:
        s = words.stages[name]
        stages[name] = {f: list(s.paragraphs) if f == "paragraphs" else getattr(s, f) for f in FIELDS}
        stages[name]["plurals"] = {k: list(v) for k, v in s.plurals.items()}
    return {"source_locale": words.source_locale, "stages": stages}


def words_from_json(data: Mapping[str, Any], source_locale: str) -> Words:
    """Words from JSON, every problem located by field (``reminder.paragraphs[1]``, ``reminder.plurals.heading[0]``)."""
    problems: list[Problem] = []
    n = plural_count(source_locale)
    raw = data.get("stages") if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping):
        raise CampaignError([Problem(_FILE, None, "stages", f"expected the words of each stage: {', '.join(STAGES)}")])
    stages = {}
    for name in STAGES:
        s = raw.get(name)
        if not isinstance(s, Mapping):
            problems.append(Problem(_FILE, None, name, "missing: the words of this stage"))
            continue
        stage = _stage(s, name, n, problems)
        if stage is not None:
            stages[name] = stage
    problems += [Problem(_FILE, None, k, f"unknown stage (known: {', '.join(STAGES)})") for k in raw if k not in STAGES]
    if problems:
        raise CampaignError(problems)
    return Words(source_locale, stages)


def _stage(s: Mapping[str, Any], stage: str, n: int, problems: list[Problem]) -> StageWords | None:
    values: dict[str, Any] = {}
    for name in FIELDS:
        value = s.get(name, [] if name == "paragraphs" else "")
        if name == "paragraphs":
            if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
                problems.append(Problem(_FILE, None, f"{stage}.paragraphs", "expected a list of texts, none empty"))
                value = []
            values[name] = tuple(p.strip() for p in value)
        elif not isinstance(value, str) or (not value.strip() and name != "preheader"):
            problems.append(Problem(_FILE, None, f"{stage}.{name}", "expected a text"))
        else:
            values[name] = value.strip()
    plurals_in = s.get("plurals") or {}
    if not isinstance(plurals_in, Mapping):
        problems.append(Problem(_FILE, None, f"{stage}.plurals", "expected field -> forms"))
        plurals_in = {}
    texts = {f"paragraphs[{i}]": p for i, p in enumerate(values.get("paragraphs", ()))}
    texts.update({k: v for k, v in values.items() if k != "paragraphs"})
    plurals: dict[str, tuple[str, ...]] = {}
    for key, forms in plurals_in.items():
        where = f"{stage}.plurals.{key}"
        if key not in texts:
            problems.append(Problem(_FILE, None, where, "no such field"))
        elif not isinstance(forms, list) or len(forms) != n or not all(isinstance(f, str) and f.strip() for f in forms):
            problems.append(Problem(_FILE, None, where, f"expected {n} texts, one per plural form of the language"))
        else:
            plurals[key] = tuple(f.strip() for f in forms)
            _set_text(values, key, plurals[key][-1])
    for key, text in texts.items():
        if n == 1 and "{days}" in text and key not in plurals:  # one form: the text is it
            plurals[key] = (text,)
        forms = plurals.get(key, (text,))
        for i, form in enumerate(forms):
            where = f"{stage}.plurals.{key}[{i}]" if key in plurals else f"{stage}.{key}"
            problems.extend(_check_text(form, where, key.startswith("paragraphs")))
        if key not in plurals and "{days}" in text:
            problems.append(Problem(_FILE, None, f"{stage}.plurals.{key}",
                                    f"a text with {{days}} needs {n} forms, one per plural form of the language"))
    if any(f not in values for f in FIELDS):
        return None
    return StageWords(**values, plurals=plurals)


def _set_text(values: dict[str, Any], key: str, text: str) -> None:
    if key.startswith("paragraphs["):
        i = int(key[len("paragraphs["):-1])
        values["paragraphs"] = tuple(text if j == i else p for j, p in enumerate(values["paragraphs"]))
    else:
        values[key] = text


def _check_text(text: str, where: str, paragraph: bool) -> list[Problem]:
    """Unknown placeholders (with the likely one), and personal ones outside a paragraph."""
    found = []
    if "<" in text or ">" in text:  # the words are text: the templates escape names, not the marketer's own words
        found.append(Problem(_FILE, None, where, "the words are plain text: no HTML tags or angle brackets "
                                                 "(write the link in the deadline's link, the emphasis in words)"))
    for name in TOKEN.findall(text):
        if name not in PLACEHOLDERS:
            close = difflib.get_close_matches(name, list(PLACEHOLDERS), n=1)
            hint = f"did you mean {{{close[0]}}}?" if close else "known: " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            found.append(Problem(_FILE, None, where, f"unknown placeholder {{{name}}}: {hint}"))
        elif name in PERSONAL and not paragraph:
            found.append(Problem(_FILE, None, where, f"{{{name}}} may only be in a paragraph: a reader without "
                                                     f"one would see a gap"))
    return found


def words_of(bundle: store.Bundle) -> Words | None:
    """The words a studio campaign's templates are made from; None for templates written by hand."""
    campaign = store.campaign_of(bundle)
    data = bundle.get(f"templates/{campaign.templates}/words.yaml")
    if data is None:
        return None
    path = f"templates/{campaign.templates}/words.yaml"
    try:
        loaded = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CampaignError([Problem(path, None, None, f"not the studio's words: {exc}")]) from None
    if not isinstance(loaded, dict):
        raise CampaignError([Problem(path, None, None, "not the studio's words: expected a mapping")])
    try:
        return words_from_json(loaded, loaded.get("source_locale") or campaign.default_locale)
    except CampaignError as exc:
        raise CampaignError([Problem(path, None, p.field, p.message) for p in exc.problems]) from None


# --- templates -----------------------------------------------------------------------------------------------
