"""Previews for marketing: one rendered message, or a static gallery of every locale × send × channel."""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from notifier.campaign import Campaign, zone
from notifier.errors import PreviewError
from notifier.i18n import negotiate
from notifier.planner import plan_zone
from notifier.render import (
    HTML_MAX_BYTES,
    PUSH_BODY_FITS,
    PUSH_TITLE_FITS,
    Personal,
    Renderer,
)
from notifier.review import Rendered, Sample, push_limits, push_warnings, render_sample, samples
from notifier.words import Words


def find_sample(campaign: Campaign, locale: str, deadline: str, wave: str, channel: str | None = None) -> Sample:
    """The sample send of ``locale`` that carries ``deadline``'s ``wave`` (merged with others if the plan merges it),
    on ``channel`` when given: a message that is never sent on it is refused, with the reason."""
    if locale not in campaign.locales:
        raise PreviewError(f"--locale {locale}: the campaign's locales are {', '.join(campaign.locales)}")
    try:
        d = campaign.deadline(deadline)
    except KeyError:
        ids = ", ".join(x.id for x in campaign.deadlines)
        raise PreviewError(f"--deadline {deadline}: the campaign's deadlines are {ids}") from None
    if wave.upper() not in {w.label for w in d.waves}:
        raise PreviewError(f"--wave {wave}: {deadline} has waves {', '.join(w.label for w in d.waves)}")
    found = [s for s in samples(campaign)
             if s.locale == locale and any(i.deadline == deadline and i.wave == wave.upper() for i in s.items)]
    if not found:
        raise PreviewError(f"{deadline} {wave} is never sent in the sample zone for {locale} (see campaign plan)")
    on = next((s for s in found if channel is None or channel in s.channels), None)
    if on is None:
        why = Words().never_sent(campaign, found[0], channel or "")
        raise PreviewError(f"--channel {channel}: {deadline} {wave.upper()} is {why}")
    return on


def recipient_sample(campaign: Campaign, sample: Sample, recipient: Any, locale: str | None) -> tuple[Sample, Personal]:
    """The same send as the recipient would get it: their zone, country, send time, name and locale."""
    chosen = locale or negotiate(recipient.locale, campaign.locales, campaign.default_locale)
    wanted = {(i.deadline, i.wave) for i in sample.items}
    plan = plan_zone(campaign, zone(recipient.timezone))
    for send in plan.sends:
        on = plan.channels_of(send.send_key)
        same_channel = not sample.channels or set(on) & set(sample.channels)
        if same_channel and wanted & {(i.deadline, i.wave) for i in send.items}:
            s = Sample(chosen, recipient.timezone, recipient.country or "", send.items, send.send_at, on)
            return s, Personal.of(recipient.name, dict(recipient.attributes or {}), chosen, recipient.country)
    raise PreviewError(f"recipient {recipient.id} never gets {sample.label}: see campaign plan --recipient")


def as_text(r: Rendered, channel: str, fmt: str) -> str:
    """One message the way ``notifier preview`` prints it."""
    if fmt == "json":
        doc = ({"subject": r.email.subject, "text": r.email.text, "html": r.email.html} if channel == "email"
               else {"title": r.push.title, "body": r.push.body, "link": r.push.link})
        return json.dumps(doc, ensure_ascii=False, indent=2)
    if channel == "email":
        return f"Subject: {r.email.subject}\n\n{r.email.text}"
    return f"{r.push.title}\n{r.push.body}" + (f"\nopens {r.push.link}" if r.push.link else "")


def write_gallery(campaign: Campaign, renderer: Renderer, directory: Path, now: datetime) -> Path:
    """A static page with every locale × send × channel side by side; returns its path."""
    rendered = [render_sample(renderer, campaign, s) for s in samples(campaign)]
    labels = list(dict.fromkeys(r.sample.label for r in rendered))
    by_key = {(r.sample.label, r.sample.locale): r for r in rendered}
    rows = []
    app = renderer.sender_name(campaign)  # what the phone shows as the notification's app
    for label in labels:
        cells = "".join(_cell(by_key.get((label, loc)), app, campaign) for loc in campaign.locales)
        rows.append(f'<tr><th class="send">{html.escape(label)}</th>{cells}</tr>')
    head = "".join(f"<th>{html.escape(loc)}</th>" for loc in campaign.locales)
    page = _PAGE.format(title=html.escape(f"{campaign.name}: every message"), campaign=html.escape(campaign.id),
                        generated=html.escape(now.strftime("%Y-%m-%d %H:%M UTC")), head=head, rows="\n".join(rows),
                        count=len(rendered))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _cell(r: Rendered | None, app: str, campaign: Campaign) -> str:
    """One locale's message of one send: the email and the push it goes out as, or why it never goes on one."""
    if r is None:
        return '<td class="none">not sent in this locale\'s sample zone</td>'
    s = r.sample
    size = len(r.email.html.encode())
    flags = [*push_limits(r), *push_warnings(r)] if "push" in s.channels else []  # the gate's own words
    if "email" in s.channels and size > HTML_MAX_BYTES:
        flags.append("email over 100 KB")
    warn = f'<p class="warn">{html.escape("; ".join(flags))}</p>' if flags else ""
    parts = [f'<td><p class="meta">{html.escape(s.zone)} · {html.escape(s.send_at.strftime("%d %b %Y %H:%M %Z"))} · '
             f'{html.escape(r.variant.stage)}</p>{warn}']
    words = Words()
    for channel in campaign.channels:
        if channel not in s.channels:
            parts.append(f'<p class="never">{html.escape(channel)}: '
                         f'{html.escape(words.never_sent(campaign, s, channel))}</p>')
        elif channel == "email":
            parts.append(f'<p class="subject">{html.escape(r.email.subject)}</p>'
                         f'<iframe title="email" sandbox srcdoc="{html.escape(r.email.html, quote=True)}"></iframe>'
                         f'<p class="meta">HTML {size:,} bytes</p>')
        else:
            parts.append(f'<div class="phone"><div class="notification"><div class="app">{html.escape(app)} · now'
                         f'</div><div class="title">{html.escape(r.push.title)}</div><div class="body">'
                         f'{html.escape(r.push.body)}</div></div></div><p class="meta">push title '
                         f"{len(r.push.title)}/{PUSH_TITLE_FITS}, "
                         f"body {len(r.push.body)}/{PUSH_BODY_FITS} characters; opens "
                         f"{html.escape(r.push.link or 'the app')}</p>")
    return "".join(parts) + "</td>"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; background: #fafafa; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ddd; vertical-align: top; padding: 8px; background: #fff; }}
th.send {{ writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; background: #f0f0f0; }}
iframe {{ width: 640px; height: 560px; border: 1px solid #ccc; background: #fff; }}
.subject {{ font-weight: bold; width: 640px; }}
.meta {{ color: #777; font-size: 12px; margin: 4px 0; }}
.warn {{ color: #b00020; font-weight: bold; }}
.phone {{ width: 360px; background: #1c1c1e; border-radius: 24px; padding: 16px; }}
.notification {{ background: rgba(255,255,255,0.92); border-radius: 14px; padding: 10px 12px; }}
.app {{ font-size: 11px; color: #666; text-transform: uppercase; }}
.title {{ font-weight: 600; margin-top: 2px; }}
.none {{ color: #999; }}
.never {{ color: #5f4b00; background: #fff8e1; padding: 8px; width: 340px; }}
</style></head>
<body>
<h1>{title}</h1>
<p>Campaign <code>{campaign}</code>: {count} rendered messages with a sample recipient, generated {generated}.</p>
<table><thead><tr><th></th>{head}</tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""
