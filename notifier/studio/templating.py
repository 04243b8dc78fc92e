"""A studio campaign's words made into an ordinary campaign's files: ``_copy.j2`` (gettext macros: ``{date}`` becomes
``%(date)s``, a text with ``{days}`` becomes ``ngettext``), the five templates that import it, the ``.pot`` and every
``.po`` (a changed sentence is a new entry, missing in every translation: never a fuzzy guess from the old one).
The words themselves, and their checks, are :mod:`notifier.studio.words`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from babel.messages.pofile import read_po, write_po

from notifier.catalogs import extract, pot_path, update
from notifier.errors import CampaignError, Problem
from notifier.i18n import catalog_path, posix
from notifier.scaffold import TEMPLATES as SCAFFOLD
from notifier.studio import store
from notifier.studio.words import (
    EXPRESSIONS,
    FIELDS,
    FOOTER,
    GENERATED,
    PER_DEADLINE,
    PERSONAL,
    STAGES,
    TOKEN,
    Words,
    words_to_json,
)


def as_gettext(forms: tuple[str, ...]) -> tuple[str, ...]:
    """The marketer's text as gettext writes it: ``{date}`` -> ``%(date)s``, ``{days}`` -> ``%(num)d``, % -> %%."""
    def one(text: str) -> str:
        text = text.replace("%", "%%")
        return TOKEN.sub(lambda m: "%(num)d" if m[1] == "days" else f"%({m[1]})s", text)
    return tuple(one(f) for f in forms)


def _lit(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _call(forms: tuple[str, ...], plural: bool) -> str:
    """The gettext call that prints a text, with its placeholders as arguments."""
    whole = TOKEN.fullmatch(forms[0])
    if len(forms) == 1 and whole and whole[1] != "days":  # a placeholder alone: nothing to translate
        return EXPRESSIONS[whole[1]]
    names = sorted({m for f in forms for m in TOKEN.findall(f)} - {"days"})
    args = "".join(f", {n}={EXPRESSIONS[n]}" for n in names)
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


def _label(labels: Sequence[tuple[str, str]]) -> str:
    """``deadline_label(d)``: each deadline's label from the campaign file, translated like the words (a label is
    a sentence the reader sees: "Cancel before the new price"), else as written."""
    lines = ["{% macro deadline_label(d) -%}{%- autoescape in_html -%}"]
    for i, (ident, label) in enumerate(labels):
        lines.append(("{%- if" if i == 0 else "{%- elif") + f" d.id == {_lit(ident)} -%}}"
                     + "{{ _(" + _lit(label.replace("%", "%%")) + ") }}")
    lines.append(("{%- else -%}" if labels else "") + "{{ d.label }}" + ("{%- endif -%}" if labels else ""))
    lines.append("{%- endautoescape -%}{%- endmacro %}")
    return "\n".join(lines)


def _copy(words: Words, labels: Sequence[tuple[str, str]] = ()) -> str:
    """``_copy.j2``: every text once, as macros of the deadline ``d`` they speak of."""
    parts = ["{#- Generated from words.yaml by the studio (notifier.studio.words): edit the words there. Each macro "
             "prints one\n    field in the send's stage; in email.mjml (html_part) it escapes what it prints. -#}",
             "{%- set in_html = html_part|default(false) -%}",
             "{% macro page(d) -%}{%- autoescape in_html -%}{{ d.link or (links.values()|list|first "
             "if links else '') }}{%- endautoescape -%}{%- endmacro %}", _label(labels)]
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
            used = {m for f in s.forms(f"paragraphs[{i}]") for m in TOKEN.findall(f)}
            call = wrap.format(f"{{{{ copy.{stage}_paragraph_{i}(d) }}}}")
            guard = " and ".join(PERSONAL[p] for p in sorted(used & set(PERSONAL)))
            if guard:
                call = f"{{%- if {guard} %}}{call}{{%- endif %}}"
            if used & PER_DEADLINE:
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


def templates_of(words: Words, labels: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """The generated files of a studio campaign's templates folder (words.yaml included); ``labels``: (deadline
    id, label) of the campaign's deadlines that have one, translated like the words."""
    imp = '{%- import "_copy.j2" as copy with context -%}\n'
    buttons = "\n{% for d in deadlines %}\n{{ copy.button(d) }}: {{ copy.page(d) }}{% endfor %}"
    text = (imp + "{{ copy.heading(deadlines[0]) }}\n" + _body(words, "\n\n{}") + buttons
            + "\n\n--\n{{ copy.footer() }}\n")
    return {
        "words.yaml": yaml.safe_dump(words_to_json(words), allow_unicode=True, sort_keys=False, width=120),
        "_copy.j2": _copy(words, labels),
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
            whole = TOKEN.fullmatch(forms[0])
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
    labels = [(d.id, d.label) for d in campaign.deadlines if d.label]
    out.update({folder + name: text.encode() for name, text in templates_of(words, labels).items()})
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
