"""``notifier campaign new``: a new campaign that validates, to edit rather than to write from nothing.

It writes the campaign file, the five templates (built from one ``_copy.j2`` of macros, so each sentence is
written and translated once) and the campaign's own catalogs: the template ``locales/<id>.pot`` and a ``.po`` per
locale. The English catalog is the source language, so it is filled in (each message translates to itself); the
others start empty, and ``campaign validate`` names every string still to translate.

The starter's words about a deadline are computed from its ``at`` (``last_day``, ``last_day_left``,
``last_day_until``; docs/templates.md, "What 'last day' means"), never written out, so they stay true whatever date
or time the user gives it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from babel.messages.pofile import read_po, write_po

from notifier.catalogs import extract, update
from notifier.config import writable
from notifier.errors import UserError
from notifier.i18n import catalog_path, parse_tag

_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

CAMPAIGN = """\
# {name}: edit the deadlines, waves, links and sender, then run
#   notifier campaign validate campaigns/{id}.yaml
id: {id}
name: {name}
category: service              # service | marketing (marketing honours opt-outs)
templates: {id}
locales: [{locales}]
default_locale: {default}
channels: [email, push]
sender:
  name: {name}
  email: no-reply@example.com
links:
  details: https://example.com/{id}
delivery:
  local_time: "10:00"          # preferred send time in each recipient's zone
  window: ["08:00", "21:00"]   # never outside this local window
  max_per_day: 1
deadlines:
  - id: change
    label: The change takes effect
    at: "2030-01-31T00:00"     # no offset: wall time in each recipient's zone
    waves: [P30D, P7D, P1D]
"""

COPY = """\
{#- Every sentence once, translated once; the five templates import these macros. Edit the wording here.
    Each deadline's words come from its `at`: d.last_day is the last day to act (the day before a deadline at 00:00,
    else the deadline's own day, until d.last_day_until) and d.last_day_left the days from the send to it; see
    "What 'last day' means" in docs/templates.md. Today counts as a day left: on the last day, 1 day is left. -#}
{% macro news() -%}{{ _("Something is changing, and we want you to know in good time.") }}{%- endmacro %}
{% macro last_day(d) -%}
{%- if d.last_day_until -%}{{ _("%(date)s, until %(time)s", date=d.last_day, time=d.last_day_until) }}
{%- else -%}{{ d.last_day }}{%- endif -%}
{%- endmacro %}
{% macro headline(d) -%}
{%- if d.last_day_left <= 0 -%}{{ _("Today is the last day") }}
{%- elif d.last_day_left == 1 -%}{{ _("Tomorrow is the last day") }}
{%- else -%}{{ ngettext("%(num)d day left", "%(num)d days left", d.last_day_left + 1) }}
{%- endif -%}
{%- endmacro %}
{% macro deadline_line(d) -%}
{%- if d.last_day_left <= 0 -%}{{ _("Today is the last day (%(date)s).", date=last_day(d)) }}
{%- elif d.last_day_left == 1 -%}{{ _("Tomorrow is the last day (%(date)s).", date=last_day(d)) }}
{%- else -%}{{ ngettext("%(num)d day left: the last day is %(date)s.", "%(num)d days left: the last day is %(date)s.",
                        d.last_day_left + 1, date=last_day(d)) }}
{%- endif -%}
{%- endmacro %}
{% macro greeting() -%}
{%- if recipient_name -%}{{ _("Hi %(name)s,", name=recipient_name) }}{%- else -%}{{ _("Hello,") }}{%- endif -%}
{%- endmacro %}
{% macro more() -%}{{ _("Read more:") }}{%- endmacro %}
"""

TEMPLATES = {
    "_copy.j2": COPY,
    "email_subject.txt": '{% import "_copy.j2" as copy with context %}{{ copy.deadline_line(deadlines[0]) }}\n',
    "email.txt": """\
{%- import "_copy.j2" as copy with context -%}
{{ copy.greeting() }}

{{ copy.news() }}
{% for d in deadlines %}
{{ copy.deadline_line(d) }}
{%- endfor %}

{{ copy.more() }} {{ links.details }}

{{ sender_name }}
""",
    "email.html": """\
{%- import "_copy.j2" as copy with context -%}
<!doctype html>
<html lang="{{ locale }}"><head><meta charset="utf-8"><title>{{ subject }}</title>
<style>p { font-family: sans-serif; font-size: 16px; }</style></head>
<body>
<p>{{ copy.greeting() }}</p>
<p>{{ copy.news() }}</p>
{% for d in deadlines %}<p><strong>{{ copy.deadline_line(d) }}</strong></p>
{% endfor %}<p>{{ copy.more() }} <a href="{{ links.details }}">{{ links.details }}</a></p>
<p>{{ sender_name }}</p>
</body></html>
""",
    "push_title.txt": '{% import "_copy.j2" as copy with context %}{{ copy.headline(deadlines[0]) }}\n',
    "push_body.txt": '{% import "_copy.j2" as copy with context %}{{ copy.deadline_line(deadlines[0]) }} '
                     '{{ copy.news() }}\n',
}


def new_campaign(campaign_id: str, locales: Sequence[str], *, campaigns_dir: Path, templates_dir: Path,
                 locales_dir: Path, name: str | None = None) -> list[Path]:
    """Write a new campaign's file, templates and catalogs; returns the paths written. Refuses to overwrite."""
    if not _ID.fullmatch(campaign_id):
        raise UserError(f"{campaign_id!r}: a campaign id is 1 to 63 of a-z, 0-9 and '-', starting with a letter "
                        "or digit")
    unknown = [tag for tag in locales if parse_tag(tag, strict=True) is None]
    if not locales or unknown:
        raise UserError(f"--locales: {', '.join(unknown) or 'none given'}: expected locale tags such as id, pt-BR")
    default = next((tag for tag in locales if tag.split("-")[0] == "en"), locales[0])
    campaigns_dir, templates_dir, locales_dir = (writable(d) for d in (campaigns_dir, templates_dir, locales_dir))
    campaign_file = Path(campaigns_dir) / f"{campaign_id}.yaml"
    folder = Path(templates_dir) / campaign_id
    taken = [p for p in (campaign_file, folder) if p.exists()]
    if taken:
        raise UserError(f"{taken[0]} already exists: choose another id or remove it")
    title = name or campaign_id.replace("-", " ").capitalize()
    written = [_write(campaign_file, CAMPAIGN.format(id=campaign_id, name=title, locales=", ".join(locales),
                                                     default=default))]
    written += [_write(folder / file, text) for file, text in TEMPLATES.items()]
    extract(folder, locales_dir, campaign_id)
    written.append(Path(locales_dir) / f"{campaign_id}.pot")
    written += update(locales_dir, list(locales), campaign_id)
    for tag in locales:
        if tag.split("-")[0] == "en":
            _translate_as_source(catalog_path(locales_dir, tag, domain=campaign_id), tag)
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _translate_as_source(po: Path, tag: str) -> None:
    """The source language's catalog: each message is its own translation (plural forms: singular, plural)."""
    with po.open("rb") as f:
        catalog = read_po(f, locale=tag.replace("-", "_"))
    for message in catalog:
        if message.id:
            message.string = tuple(message.id) if isinstance(message.id, (list, tuple)) else message.id
    with po.open("wb") as f:
        write_po(f, catalog, width=100)
