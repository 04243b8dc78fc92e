"""A studio campaign's words, written once in the source language; its templates and catalogs are made from them.

The marketer writes, per stage (announcement, reminder, last_day, and merged for a send that carries several
deadlines), the subject, preheader, heading, paragraphs, button, push title and push body, with placeholders such as
``{date}`` from a menu (:data:`PLACEHOLDERS`). :func:`apply_words` turns them into an ordinary campaign's files: a
``_copy.j2`` of gettext macros (``{date}`` becomes ``%(date)s``; a text with ``{days}`` has one form per plural form
of the source language and becomes ``ngettext``), the five templates that import it, the ``.pot`` and every ``.po``.
A changed sentence is a new entry, missing in every translation: never a fuzzy guess from the old one.

In a merged send, a paragraph or button that names a deadline (``{date}``, ``{days}``, ``{deadline}``, ``{link}``)
is repeated for each of its deadlines; the other fields speak of the first. A paragraph with ``{name}`` or
``{refund}`` is left out for a recipient without one.
"""

from __future__ import annotations

import difflib
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from babel.messages.pofile import read_po, write_po

from notifier.catalogs import expected_plural_forms, extract, pot_path, update
from notifier.errors import CampaignError, Problem
from notifier.i18n import catalog_path, posix
from notifier.scaffold import TEMPLATES as SCAFFOLD
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
# What each placeholder is in the templates (``d`` is the deadline spoken of, ``page`` a macro of _copy.j2).
_EXPR = {"date": "d.last_day", "deadline": "d.label", "name": "recipient_name", "refund": "refund_amount",
         "sender": "sender_name", "link": "page(d)"}
_PERSONAL = {"name": "recipient_name", "refund": "refund_amount"}  # only in paragraphs, left out when empty
_PER_DEADLINE = {"date", "days", "deadline", "link"}
_TOKEN = re.compile(r"\{(\w+)\}")
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
    for name in _TOKEN.findall(text):
        if name not in PLACEHOLDERS:
            close = difflib.get_close_matches(name, list(PLACEHOLDERS), n=1)
            hint = f"did you mean {{{close[0]}}}?" if close else "known: " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            found.append(Problem(_FILE, None, where, f"unknown placeholder {{{name}}}: {hint}"))
        elif name in _PERSONAL and not paragraph:
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


def as_gettext(forms: tuple[str, ...]) -> tuple[str, ...]:
    """The marketer's text as gettext writes it: ``{date}`` -> ``%(date)s``, ``{days}`` -> ``%(num)d``, % -> %%."""
    def one(text: str) -> str:
        text = text.replace("%", "%%")
        return _TOKEN.sub(lambda m: "%(num)d" if m[1] == "days" else f"%({m[1]})s", text)
    return tuple(one(f) for f in forms)


def _lit(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _call(forms: tuple[str, ...], plural: bool) -> str:
    """The gettext call that prints a text, with its placeholders as arguments."""
    whole = _TOKEN.fullmatch(forms[0])
    if len(forms) == 1 and whole and whole[1] != "days":  # a placeholder alone: nothing to translate
        return _EXPR[whole[1]]
    names = sorted({m for f in forms for m in _TOKEN.findall(f)} - {"days"})
    args = "".join(f", {n}={_EXPR[n]}" for n in names)
    ids = as_gettext(forms)
    if plural:
        return f"ngettext({_lit(ids[0])}, {_lit(ids[-1])}, d.last_day_left + 1{args})"
    return f"_({_lit(ids[0])}{args})"


def _macro(name: str, words: Words, key: str, args: str = "d") -> str:
    """A macro printing one field in whichever stage the send is (merged when it carries several deadlines)."""
    lines = [f"{{% macro {name}({args}) -%}}{{%- autoescape in_html -%}}"]
    branches = [("merged", "deadlines|length > 1"), ("last_day", 'stage == "last_day"'),
                ("announcement", 'stage == "announcement"'), ("reminder", None)]
    for i, (stage, test) in enumerate(branches):
        s = words.stages[stage]
        texts = dict(s.texts())
        head = "{%- if " + test + " -%}" if i == 0 else "{%- elif " + test + " -%}" if test else "{%- else -%}"
        body = "{{ " + _call(s.forms(key), key in s.plurals) + " }}" if texts.get(key) else ""
        lines.append(head + body)
    lines.append("{%- endif -%}{%- endautoescape -%}{%- endmacro %}")
    return "\n".join(lines)


def _copy(words: Words) -> str:
    """``_copy.j2``: every text once, as macros of the deadline ``d`` they speak of."""
    parts = ["{#- Generated from words.yaml by the studio (notifier.studio.words): edit the words there. Each macro "
             "prints one\n    field in the send's stage; in email.mjml (html_part) it escapes what it prints. -#}",
             "{%- set in_html = html_part|default(false) -%}",
             "{% macro page(d) -%}{%- autoescape in_html -%}{{ d.link or (links.values()|list|first "
             "if links else '') }}{%- endautoescape -%}{%- endmacro %}"]
    parts += [_macro(name, words, name) for name in FIELDS if name != "paragraphs"]
    parts.append("{% macro footer() -%}{%- autoescape in_html -%}{{ " + _call(FOOTER, False)
                 + " }}{%- endautoescape -%}{%- endmacro %}")
    for stage in STAGES:
        s = words.stages[stage]
        for i in range(len(s.paragraphs)):
            key = f"paragraphs[{i}]"
            parts.append(f"{{% macro {stage}_paragraph_{i}(d) -%}}{{%- autoescape in_html -%}}"
                         f"{{{{ {_call(s.forms(key), key in s.plurals)} }}}}"
                         "{%- endautoescape -%}{%- endmacro %}")
    return "\n".join(parts) + "\n"


def _body(words: Words, wrap: str) -> str:
    """The paragraphs of each stage, each in ``wrap`` (``{}`` is the macro call); repeated per deadline when they
    speak of one, left out when a personal field is empty."""
    out = ['{%- set st = "merged" if deadlines|length > 1 else stage %}']
    for n, stage in enumerate(STAGES):
        out.append(("{%- if" if n == 0 else "{%- elif") + f' st == "{stage}" %}}')
        s = words.stages[stage]
        for i, _ in enumerate(s.paragraphs):
            used = {m for f in s.forms(f"paragraphs[{i}]") for m in _TOKEN.findall(f)}
            call = wrap.format(f"{{{{ copy.{stage}_paragraph_{i}(d) }}}}")
            guard = " and ".join(_PERSONAL[p] for p in sorted(used & set(_PERSONAL)))
            if guard:
                call = f"{{%- if {guard} %}}{call}{{%- endif %}}"
            if used & _PER_DEADLINE:
                out.append(f"{{%- for d in deadlines %}}{call}{{%- endfor %}}")
            else:
                out.append(f"{{%- with d = deadlines[0] %}}{call}{{%- endwith %}}")
    out.append("{%- endif %}")
    return "\n".join(out)


def _mjml(words: Words) -> str:
    """``email.mjml``: the scaffold's head (styles for phones and dark mode), then heading, paragraphs, buttons."""
    shipped = SCAFFOLD["email.mjml"]
    head = shipped[:shipped.index("  <mj-body")].replace("{{ copy.news() }}", "{{ copy.preheader(deadlines[0]) }}")
    body = _body(words, "\n        <mj-text>{}</mj-text>")
    return head + f"""\
  <mj-body width="600px" background-color="#f6f8fa" css-class="page">
    <mj-section background-color="#1f2328" css-class="brand" padding="20px 32px">
      <mj-column>
        <mj-text color="#ffffff" font-size="20px" font-weight="bold" padding="0">{{{{ sender_name }}}}</mj-text>
      </mj-column>
    </mj-section>
    <mj-section padding="32px 0 0 0">
      <mj-column>
        <mj-text padding="0 32px 20px 32px">
          <h1 style="margin:0;font-size:28px;line-height:1.25;">{{{{ copy.heading(deadlines[0]) }}}}</h1>
        </mj-text>
{body}
        {{%- for d in deadlines %}}
        <mj-button href="{{{{ copy.page(d) }}}}">{{{{ copy.button(d) }}}}</mj-button>
        {{%- endfor %}}
      </mj-column>
    </mj-section>
    <mj-section background-color="#f6f8fa" css-class="footer" padding="24px 32px 32px 32px">
      <mj-column>
        <mj-text font-size="13px" line-height="1.5" color="#57606a" padding="0" css-class="footer">
          {{{{ copy.footer() }}}}
        </mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""


def templates_of(words: Words) -> dict[str, str]:
    """The generated files of a studio campaign's templates folder (words.yaml included)."""
    imp = '{%- import "_copy.j2" as copy with context -%}\n'
    buttons = "\n{% for d in deadlines %}\n{{ copy.button(d) }}: {{ copy.page(d) }}{% endfor %}"
    text = (imp + "{{ copy.heading(deadlines[0]) }}\n" + _body(words, "\n\n{}") + buttons
            + "\n\n--\n{{ copy.footer() }}\n")
    return {
        "words.yaml": yaml.safe_dump(words_to_json(words), allow_unicode=True, sort_keys=False, width=120),
        "_copy.j2": _copy(words),
        "email_subject.txt": imp + "{{ copy.subject(deadlines[0]) }}\n",
        "email.txt": text,
        "email.mjml": _mjml(words),
        "push_title.txt": imp + "{{ copy.push_title(deadlines[0]) }}\n",
        "push_body.txt": imp + "{{ copy.push_body(deadlines[0]) }}\n",
    }


def source_strings(words: Words) -> dict[str, tuple[str, ...]]:
    """Each msgid the words make, and its translation in the source language (one per plural form)."""
    found: dict[str, tuple[str, ...]] = {as_gettext(FOOTER)[0]: as_gettext(FOOTER)}
    for s in words.stages.values():
        for key, _ in s.texts():
            forms = s.forms(key)
            whole = _TOKEN.fullmatch(forms[0])
            if forms[0] and not (len(forms) == 1 and whole and whole[1] != "days"):
                found[as_gettext(forms)[0]] = as_gettext(forms)
    return found


# --- catalogs ------------------------------------------------------------------------------------------------


def apply_words(bundle: store.Bundle, words: Words) -> store.Bundle:
    """The bundle with its templates made from ``words``, a new ``.pot`` and every ``.po`` updated: unchanged
    sentences keep their translations, a changed one is a new, missing entry; the source locale's is filled."""
    campaign = store.campaign_of(bundle)
    if words.source_locale not in campaign.locales:
        raise CampaignError([Problem(f"campaigns/{campaign.id}.yaml", None, "locales",
                                     f"the words are in {words.source_locale}, which is not one of the campaign's "
                                     f"locales ({', '.join(campaign.locales)})")])
    folder = f"templates/{campaign.templates}/"
    out = {k: v for k, v in bundle.items() if not (k.startswith(folder) and k[len(folder):] in GENERATED)}
    out.update({folder + name: text.encode() for name, text in templates_of(words).items()})
    with store.unpacked(out) as u:
        extract(u.templates_dir / campaign.templates, u.locales_dir, campaign.id)
        for locale in campaign.locales:
            _merge_exact(u.locales_dir, locale, campaign.id)
        update(u.locales_dir, list(campaign.locales), campaign.id)  # new catalogs, plural headers
        _fill_source(catalog_path(u.locales_dir, words.source_locale, domain=campaign.id), words)
        for path in [pot_path(u.locales_dir, campaign.id),
                     *(catalog_path(u.locales_dir, tag, domain=campaign.id) for tag in campaign.locales)]:
            out[path.relative_to(u.root).as_posix()] = path.read_bytes()
    return out


def _key(message: Any) -> tuple[str, str | None]:
    return (message.id if isinstance(message.id, str) else message.id[0], message.context)


def _merge_exact(locales_dir: Path, locale: str, domain: str) -> None:
    """Bring one ``.po`` to the template without fuzzy matching: a sentence that changed (its plural too) is new."""
    path = catalog_path(locales_dir, locale, domain=domain)
    if not path.exists():
        return
    with pot_path(locales_dir, domain).open("rb") as f:
        template = read_po(f)
    with path.open("rb") as f:
        catalog = read_po(f, locale=posix(locale))
    before = {_key(m): m.id for m in catalog if m.id}
    catalog.update(template, no_fuzzy_matching=True)
    for m in catalog:
        if m.id and _key(m) in before and before[_key(m)] != m.id:
            m.string = ("",) * catalog.num_plurals if isinstance(m.id, (list, tuple)) else ""
            m.flags.discard("fuzzy")
    with path.open("wb") as f:
        write_po(f, catalog, width=100, ignore_obsolete=True)


def _fill_source(po: Path, words: Words) -> None:
    """The source language's catalog says what the words say (each plural form as written)."""
    strings = source_strings(words)
    with po.open("rb") as f:
        catalog = read_po(f, locale=posix(words.source_locale))
    for m in catalog:
        if not m.id:
            continue
        key = _key(m)[0]
        plural = isinstance(m.id, (list, tuple))
        forms = strings.get(key, tuple(m.id) if plural else (m.id,))
        m.string = tuple(forms) if plural else forms[0]
        m.flags.discard("fuzzy")
    buf = io.BytesIO()
    write_po(buf, catalog, width=100)
    po.write_bytes(buf.getvalue())
