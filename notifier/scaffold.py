"""``notifier campaign new``: a new campaign that validates, to edit rather than to write from nothing.

It writes the campaign file, the five templates (built from one ``_copy.j2`` of macros, so each sentence is
written and translated once; the HTML part is ``email.mjml``, MJML that MRML compiles) and the campaign's own
catalogs: the template ``locales/<id>.pot`` and a ``.po`` per locale. The English catalog is the source language,
so it is filled in (each message translates to itself); the others start empty, and ``campaign validate`` names
every string still to translate.

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
    link: details              # the page its push opens (a name from links, or an https URL)
"""

COPY = """\
{#- Every sentence once, translated once; the five templates import these macros. Edit the wording here.
    Each deadline's words come from its `at`: d.last_day is the last day to act (the day before a deadline at 00:00,
    else the deadline's own day, until d.last_day_until) and d.last_day_left the days from the send to it; see
    "What 'last day' means" in docs/templates.md. Today counts as a day left: on the last day, 1 day is left.
    In email.mjml (which sets html_part) each macro escapes what it prints, and its result counts as markup there:
    every value reaches the HTML escaped exactly once; the text parts get them as they are. -#}
{%- set in_html = html_part|default(false) -%}
{% macro news() -%}{%- autoescape in_html -%}
{{ _("Something is changing, and we want you to know in good time.") }}
{%- endautoescape -%}{%- endmacro %}
{% macro last_day(d) -%}{%- autoescape in_html -%}
{%- if d.last_day_until -%}{{ _("%(date)s, until %(time)s", date=d.last_day, time=d.last_day_until) }}
{%- else -%}{{ d.last_day }}{%- endif -%}
{%- endautoescape -%}{%- endmacro %}
{% macro headline(d) -%}{%- autoescape in_html -%}
{%- if d.last_day_left <= 0 -%}{{ _("Today is the last day") }}
{%- elif d.last_day_left == 1 -%}{{ _("Tomorrow is the last day") }}
{%- else -%}{{ ngettext("%(num)d day left", "%(num)d days left", d.last_day_left + 1) }}
{%- endif -%}
{%- endautoescape -%}{%- endmacro %}
{% macro deadline_line(d) -%}{%- autoescape in_html -%}
{%- if d.last_day_left <= 0 -%}{{ _("Today is the last day (%(date)s).", date=last_day(d)) }}
{%- elif d.last_day_left == 1 -%}{{ _("Tomorrow is the last day (%(date)s).", date=last_day(d)) }}
{%- else -%}{{ ngettext("%(num)d day left: the last day is %(date)s.", "%(num)d days left: the last day is %(date)s.",
                        d.last_day_left + 1, date=last_day(d)) }}
{%- endif -%}
{%- endautoescape -%}{%- endmacro %}
{% macro greeting() -%}{%- autoescape in_html -%}
{%- if recipient_name -%}{{ _("Hi %(name)s,", name=recipient_name) }}{%- else -%}{{ _("Hello,") }}{%- endif -%}
{%- endautoescape -%}{%- endmacro %}
{% macro more() -%}{%- autoescape in_html -%}{{ _("Read more:") }}{%- endautoescape -%}{%- endmacro %}
{% macro button() -%}{%- autoescape in_html -%}{{ _("Read more") }}{%- endautoescape -%}{%- endmacro %}
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
    "email.mjml": """\
{#- The HTML part, in MJML (compiled by MRML): columns that stack on phones, a button Outlook draws, the <style>
    block kept for phones and dark mode. Every text colour pair is at least 4.5:1, in light and in dark mode; see
    docs/templates.md, "The HTML part". -#}
{%- set html_part = true -%}
{%- import "_copy.j2" as copy with context -%}
<mjml lang="{{ locale }}">
  <mj-head>
    <mj-title>{{ subject }}</mj-title>
    <mj-preview>{{ copy.news() }}</mj-preview>
    <mj-raw>
      <meta name="color-scheme" content="light dark" />
      <meta name="supported-color-schemes" content="light dark" />
    </mj-raw>
    <mj-attributes>
      <mj-all font-family="Helvetica, Arial, sans-serif" />
      <mj-section padding="0" background-color="#ffffff" css-class="card" />
      <mj-column padding="0" />
      <mj-text font-size="16px" line-height="1.5" color="#1f2328" padding="0 32px 16px 32px" css-class="copy" />
      <mj-button background-color="#0b57d0" color="#ffffff" font-size="16px" font-weight="bold"
                 inner-padding="14px 28px" border-radius="6px" align="left" padding="8px 32px 32px 32px"
                 css-class="button" />
    </mj-attributes>
    <mj-style>
      :root { color-scheme: light dark; supported-color-schemes: light dark; }
      @media only screen and (max-width: 479px) {
        .copy, .button { padding-left: 20px !important; padding-right: 20px !important; }
        .brand > table > tbody > tr > td, .footer > table > tbody > tr > td { padding: 20px !important; }
        .button table { width: 100% !important; }
        .button a { display: block !important; }
      }
      @media (prefers-color-scheme: dark) {
        body, .page, .page > div, .footer, .footer > table { background: #0b0b0c !important; }
        .card, .card > table { background: #1c1c1e !important; }
        .copy div { color: #f1f1f2 !important; }
        .copy a { color: #8ab4f8 !important; }
        .footer div, .footer a { color: #a8aab0 !important; }
      }
    </mj-style>
  </mj-head>
  <mj-body width="600px" background-color="#f6f8fa" css-class="page">
    <mj-section background-color="#1f2328" css-class="brand" padding="20px 32px">
      <mj-column>
        <mj-text color="#ffffff" font-size="20px" font-weight="bold" padding="0" css-class="brand">
          {{ sender_name }}
        </mj-text>
      </mj-column>
    </mj-section>
    <mj-section padding="32px 0 0 0">
      <mj-column>
        <mj-text padding="0 32px 20px 32px">
          <h1 style="margin:0;font-size:28px;line-height:1.25;">{{ copy.headline(deadlines[0]) }}</h1>
        </mj-text>
        <mj-text>{{ copy.greeting() }}</mj-text>
        <mj-text>{{ copy.news() }}</mj-text>
        {%- for d in deadlines %}
        <mj-text><strong>{{ copy.deadline_line(d) }}</strong></mj-text>
        {%- endfor %}
        <mj-button href="{{ links.details }}">{{ copy.button() }}</mj-button>
      </mj-column>
    </mj-section>
    <mj-section background-color="#f6f8fa" css-class="footer" padding="24px 32px 32px 32px">
      <mj-column>
        <mj-text font-size="13px" color="#57606a" padding="0" css-class="footer">
          {{ copy.more() }} <a href="{{ links.details }}" style="color:#57606a;">{{ links.details }}</a><br />
          {{ sender_name }}
        </mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
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
