"""Review before anything is sent: render every locale × send × channel with a sample recipient, report all problems.

``campaign validate``, ``campaign schedule``, ``i18n check`` and the preview gallery all walk the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from notifier.campaign import Campaign, zone
from notifier.errors import Problem, UserError
from notifier.i18n import format_money, parse_tag
from notifier.planner import WaveRef, plan_zone, send_key
from notifier.render import (
    HTML_MAX_BYTES,
    PUSH_BODY_MAX,
    PUSH_TITLE_MAX,
    Personal,
    RenderedEmail,
    RenderedPush,
    Renderer,
    RenderError,
    Variant,
)

# Where a sample reader of each language lives, and what they pay in: the campaign's own markets first.
SAMPLE_PLACES = {"id": ("Asia/Jakarta", "ID", "IDR"), "pt": ("America/Sao_Paulo", "BR", "BRL"),
                 "es": ("America/Mexico_City", "MX", "MXN"), "en": ("Australia/Sydney", "AU", "AUD")}
SAMPLE_NAME = "Maria Fernanda de Souza Albuquerque"  # long, accented: the worst case for length and encoding
SAMPLE_REFUND = Decimal("149900.50")


@dataclass(frozen=True)
class Sample:
    """One message to render for review: a locale, a zone and a send (possibly reduced by the staleness guard)."""

    locale: str
    zone: str
    country: str
    items: tuple[WaveRef, ...]
    send_at: datetime

    @property
    def label(self) -> str:
        return send_key(self.items)

    def personal(self) -> Personal:
        currency = SAMPLE_PLACES.get(_language(self.locale), ("UTC", "", "USD"))[2]
        return Personal(SAMPLE_NAME, format_money(SAMPLE_REFUND, currency, self.locale))


def _language(locale: str) -> str:
    loc = parse_tag(locale)
    return loc.language if loc else locale


def samples(campaign: Campaign) -> Iterator[Sample]:
    """Every send of the plan in each locale's sample zone, plus each deadline of a merged send on its own."""
    for locale in campaign.locales:
        tz_name, country, _ = SAMPLE_PLACES.get(_language(locale), ("UTC", "", "USD"))
        for send in plan_zone(campaign, zone(tz_name)).sends:
            yield Sample(locale, tz_name, country, send.items, send.send_at)
            if len(send.deadlines) > 1:  # the guard may drop one deadline of a merged send
                for d in send.deadlines:
                    yield Sample(locale, tz_name, country, tuple(i for i in send.items if i.deadline == d),
                                 send.send_at)


@dataclass(frozen=True)
class Rendered:
    sample: Sample
    variant: Variant
    email: RenderedEmail
    push: RenderedPush


def render_sample(renderer: Renderer, campaign: Campaign, sample: Sample, personal: Personal | None = None) -> Rendered:
    """One sample rendered in full, with the sample recipient unless ``personal`` is given."""
    personal = personal or sample.personal()
    variant = renderer.variant(campaign, sample.locale, sample.items, zone(sample.zone), sample.send_at,
                               sample.country, personal)
    return Rendered(sample, variant, renderer.email(variant, personal), renderer.push(variant, personal))


def limits(r: Rendered, campaign: Campaign) -> Iterator[str]:
    """What is wrong with one rendered sample's size or shape."""
    if len(r.push.title) > PUSH_TITLE_MAX:
        yield f"push title is {len(r.push.title)} characters (limit {PUSH_TITLE_MAX}): {r.push.title!r}"
    if len(r.push.body) > PUSH_BODY_MAX:
        yield f"push body is {len(r.push.body)} characters (limit {PUSH_BODY_MAX}): {r.push.body!r}"
    if not r.email.subject or not r.email.text.strip() or not r.push.title or not r.push.body:
        yield "a part rendered empty"
    size = len(r.email.html.encode())
    if size > HTML_MAX_BYTES:
        yield f"HTML email is {size:,} bytes (limit {HTML_MAX_BYTES:,})"


def review(campaign: Campaign, renderer: Renderer) -> list[Problem]:
    """The translation gate for the campaign's locales, then every sample rendered; every problem at once.

    A fuzzy or untranslated entry fails here (and so ``campaign validate`` and ``campaign schedule``), since
    gettext would send that sentence in English inside an otherwise translated message.
    """
    from notifier.catalogs import check_catalogs

    problems = check_catalogs(renderer.locales_dir, campaign.locales, campaign.id)
    if problems:  # rendering needs sound catalogs
        return problems
    seen: set[str] = set()
    where = str(Path(renderer.templates_dir) / campaign.templates)
    for sample in samples(campaign):
        field = f"{sample.locale} {sample.label}"
        try:
            rendered = render_sample(renderer, campaign, sample)
        except UserError as exc:
            for error in _every_error(renderer, campaign, sample, exc):
                if str(error) not in seen:  # one broken template fails every sample the same way: say it once
                    seen.add(str(error))
                    problems.append(Problem(where, None, field, str(error)))
            continue
        problems.extend(Problem(where, None, field, msg) for msg in limits(rendered, campaign))
    return problems


def _every_error(renderer: Renderer, campaign: Campaign, sample: Sample, first: UserError) -> list[UserError]:
    """The error a sample's render stopped at, and every other template of it that fails too."""
    if not isinstance(first, RenderError):
        return [first]
    others = renderer.template_errors(campaign, sample.locale, sample.items, zone(sample.zone), sample.send_at,
                                      sample.country, sample.personal())
    return [first, *(e for e in others if str(e) != str(first))]
