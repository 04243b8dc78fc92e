"""The studio's HTML forms as the JSON that ``notifier.studio.service`` takes, and back: a starter form, the words of
every stage, a translation page, a seed list. Plain data in, plain data out; the routes live in ``studio.py``.

A form works without a script: a wave is a checkbox or a line of "other waves" ("14" is 14 days, "6h" six hours,
an ISO duration as it is), a date is ``<input type=date>`` plus a time, a text with ``{days}`` gets one field per
plural form of the language on the next render.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from babel import Locale, UnknownLocaleError
from starlette.datastructures import FormData

CHIPS = (("P30D", 30), ("P7D", 7), ("P1D", 1))  # the waves a starter offers as chips: (duration, days)
CATEGORIES = ("service", "marketing")
CHANNELS = ("email", "push")
STAGES = ("announcement", "reminder", "last_day", "merged")
EMAIL_FIELDS = ("subject", "preheader", "heading", "paragraphs", "button")
PUSH_FIELDS = ("push_title", "push_body")
MAX_DEADLINES = 8
_CLDR_ORDER = ("zero", "one", "two", "few", "many", "other")
_DURATION = re.compile(r"^P(?:\d+[YMWD])*(?:T(?:\d+[HMS])+)?$")


def _text(form: FormData | Mapping[str, Any], name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _list(text: str) -> list[str]:
    """``"en, pt-BR id"`` -> ``["en", "pt-BR", "id"]``."""
    return [p for p in re.split(r"[\s,;]+", text) if p]


def duration(text: str) -> str:
    """A wave as the marketer types it: ``14`` or ``14d`` (days), ``6h`` (hours), ``2w`` (weeks), or ISO as is."""
    t = text.strip().upper().replace(" ", "")
    m = re.fullmatch(r"(\d+)([DHW]?)", t) or re.fullmatch(r"(\d+)(DAYS?|HOURS?|WEEKS?)", t)
    if m:
        unit = (m[2] or "D")[0]
        return f"PT{m[1]}H" if unit == "H" else f"P{m[1]}{unit}"
    return t if _DURATION.match(t) else text.strip()


def holdout(text: str) -> str:
    """A holdout as the marketer types it: ``10`` or ``10 %`` -> ``10%``, ``2,5`` -> ``2.5%``; else as typed (the
    campaign's check names what is wrong with it)."""
    t = text.strip().replace(" ", "")
    m = re.fullmatch(r"(\d{1,2})(?:[.,](\d+))?%?", t)
    return f"{m[1]}.{m[2]}%" if m and m[2] else f"{m[1]}%" if m else text.strip()


def deadline_count(form: FormData | Mapping[str, Any]) -> int:
    found = [int(m[1]) for k in form if (m := re.match(r"deadlines\[(\d+)\]\.id$", k))]
    return min(MAX_DEADLINES, max(found, default=-1) + 1)


def starter_json(form: FormData | Mapping[str, Any]) -> dict[str, Any]:
    """The starter JSON of a posted starter form (names as in ``notifier.studio.starter``)."""
    getlist = getattr(form, "getlist", lambda name: [form[name]] if name in form else [])
    data: dict[str, Any] = {k: _text(form, k) for k in ("id", "name", "category", "sender_name", "sender_email")}
    data["locales"] = _list(_text(form, "locales"))
    data["channels"] = [c for c in getlist("channels") if c in CHANNELS]
    data["countries"] = [c.upper() for c in _list(_text(form, "countries"))]
    data["source_locale"] = _text(form, "source_locale") or None
    for name, value in (("where", _text(form, "where")), ("holdout", holdout(_text(form, "holdout")))):
        if value:
            data[name] = value
    link = _text(form, "link_url")
    data["links"] = {"details": link} if link else {}
    for name in ("local_time",):
        if _text(form, name):
            data[name] = _text(form, name)
    deadlines = []
    for i in range(deadline_count(form)):
        p = f"deadlines[{i}]"
        day, time = _text(form, f"{p}.date"), _text(form, f"{p}.time") or "00:00"
        waves = [w for w in getlist(f"{p}.waves") if isinstance(w, str) and w]
        waves += [duration(w) for w in re.split(r"[,;]+", _text(form, f"{p}.other")) if w.strip()]
        deadline = {"id": _text(form, f"{p}.id"), "label": _text(form, f"{p}.label"),
                    "at": f"{day}T{time}" if day else "", "waves": list(dict.fromkeys(waves)),
                    "skip_if": _text(form, f"{p}.skip_if") or None, "link": "details" if link else None}
        if _text(form, f"{p}.where"):
            deadline["where"] = _text(form, f"{p}.where")
        deadlines.append(deadline)
    data["deadlines"] = deadlines
    return data


def starter_form(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the starter page shows for a starter JSON (the inverse of :func:`starter_json`)."""
    deadlines = []
    for d in data.get("deadlines") or []:
        at = str(d.get("at") or "")
        waves = list(d.get("waves") or [])
        chips = [w for w, _days in CHIPS]
        deadlines.append({"id": d.get("id") or "", "label": d.get("label") or "", "date": at[:10],
                          "time": at[11:16] or "00:00", "waves": [w for w in waves if w in chips],
                          "other": ", ".join(w for w in waves if w not in chips), "skip_if": d.get("skip_if") or "",
                          "where": d.get("where") or ""})
    links = data.get("links") or {}
    return {"id": data.get("id") or "", "name": data.get("name") or "", "category": data.get("category") or "service",
            "sender_name": data.get("sender_name") or "", "sender_email": data.get("sender_email") or "",
            "locales": ", ".join(data.get("locales") or []), "channels": list(data.get("channels") or []),
            "countries": ", ".join(data.get("countries") or []), "source_locale": data.get("source_locale") or "",
            "where": data.get("where") or "", "holdout": data.get("holdout") or "",
            "link_url": next(iter(links.values()), ""), "deadlines": deadlines or [_blank_deadline()]}


def _blank_deadline() -> dict[str, Any]:
    return {"id": "", "label": "", "date": "", "time": "00:00", "waves": [w for w, _ in CHIPS], "other": "",
            "skip_if": "", "where": ""}


def with_another_deadline(form: dict[str, Any]) -> dict[str, Any]:
    if len(form["deadlines"]) < MAX_DEADLINES:
        form["deadlines"].append(_blank_deadline())
    return form


def plural_names(locale: str, count: int) -> list[str]:
    """The CLDR names of a language's plural forms ("one", "other"), or "form 1" ... when they do not match."""
    try:
        tags = set(Locale.parse(locale.replace("-", "_")).plural_form.tags) | {"other"}
    except (UnknownLocaleError, ValueError):
        tags = set()
    names = [t for t in _CLDR_ORDER if t in tags]
    return names if len(names) == count else [f"form {i + 1}" for i in range(count)]


def words_json(form: FormData, source_locale: str, forms: int) -> dict[str, Any]:
    """Words JSON from the words form: ``STAGE.FIELD``, ``STAGE.paragraphs`` (one value per paragraph) and
    ``STAGE.plurals.FIELD`` (one value per plural form). A text that gained ``{days}`` gets its text in every form,
    for the marketer to rewrite on the next render."""
    stages: dict[str, Any] = {}
    for stage in STAGES:
        s: dict[str, Any] = {f: _text(form, f"{stage}.{f}", 4000) for f in (*EMAIL_FIELDS, *PUSH_FIELDS)
                             if f != "paragraphs"}
        s["paragraphs"] = [p.strip() for p in form.getlist(f"{stage}.paragraphs") if isinstance(p, str) and p.strip()]
        plurals: dict[str, list[str]] = {}
        keys = [f for f in s if f not in ("paragraphs",)] + [f"paragraphs[{i}]" for i in range(len(s["paragraphs"]))]
        for key in keys:
            given = [v.strip() for v in form.getlist(f"{stage}.plurals.{key}") if isinstance(v, str)]
            text = s["paragraphs"][int(key[11:-1])] if key.startswith("paragraphs[") else s[key]
            if given and any(given) and forms > 1:
                plurals[key] = (given + [given[-1]] * forms)[:forms]
            elif "{days}" in text and forms > 1:
                plurals[key] = [text] * forms
        s["plurals"] = plurals
        stages[stage] = s
    return {"source_locale": source_locale, "stages": stages}


_GETTEXT = re.compile(r"%%|%\((\w+)\)([sd])")


def _token(name: str, kind: str) -> str:
    return "{days}" if (name, kind) == ("num", "d") else f"{{{name}}}"


def readable(text: str) -> str:
    """A catalog's text as the words page writes it: ``%(date)s`` -> ``{date}``, ``%(num)d`` -> ``{days}``,
    ``%%`` -> ``%`` (a translator sees the placeholders the marketer chose, not gettext's)."""
    return _GETTEXT.sub(lambda m: "%" if m[0] == "%%" else _token(m[1], m[2]), text)


def as_catalog_text(text: str, sources: Sequence[str]) -> str:
    """The inverse of :func:`readable` for a translation of ``sources``: ``%`` -> ``%%``, and each placeholder the
    source has, written ``{date}``, back to ``%(date)s`` (a brace the source has no placeholder for stays as typed,
    and the gate names a placeholder that is missing or added)."""
    out = text.replace("%", "%%")
    for m in (m for source in sources for m in _GETTEXT.finditer(source) if m[0] != "%%"):
        out = out.replace(_token(m[1], m[2]), f"%({m[1]}){m[2]}")
    return out


def translation_changes(form: FormData, keys: list[str],
                        sources: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """``{entry key: forms}`` from a translation page (``t.N`` holds the forms of the N-th entry shown, written
    with ``{placeholders}``; ``sources``: each entry's source texts, to write them back as the catalog does)."""
    changes = {}
    for i, key in enumerate(keys):
        values = [v for v in form.getlist(f"t.{i}") if isinstance(v, str)]
        if values:
            source = (sources or {}).get(key)
            changes[key] = [as_catalog_text(v.strip(), source) if source is not None else v.strip() for v in values]
    return changes


def typed_translations(form: FormData, keys: list[str]) -> dict[str, tuple[str, ...]]:
    """``{entry key: forms}`` as the translator typed them (``{placeholders}``), to show again when a save is
    refused: nothing typed is lost."""
    typed = {}
    for i, key in enumerate(keys):
        values = tuple(v[:4000] for v in form.getlist(f"t.{i}") if isinstance(v, str))
        if values:
            typed[key] = values
    return typed


def seeds_json(form: FormData) -> list[dict[str, Any]]:
    """The seed rows of the seeds form; a row without an address is left out."""
    rows = []
    channels, addresses = form.getlist("seed.channel"), form.getlist("seed.address")
    names, locales = form.getlist("seed.name"), form.getlist("seed.locale")
    for i, address in enumerate(addresses):
        if isinstance(address, str) and address.strip():
            def at(values: list[Any], i: int = i) -> str | None:
                v = values[i] if i < len(values) else ""
                return v.strip() or None if isinstance(v, str) else None
            rows.append({"channel": at(channels) or "email", "address": address.strip(), "name": at(names),
                         "locale": at(locales)})
    return rows
