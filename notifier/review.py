"""Review before anything is sent: render every locale × send × channel with a sample recipient, report all problems.

``campaign validate``, ``campaign schedule``, ``i18n check`` and the preview gallery all walk the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache

from babel.core import get_global
from babel.languages import get_official_languages
from babel.numbers import get_territory_currencies

from notifier.campaign import Campaign, zone
from notifier.errors import Problem, UserError
from notifier.i18n import format_money, parse_tag
from notifier.planner import WaveRef, plan_zone, send_key
from notifier.render import (
    HTML_MAX_BYTES,
    PUSH_BODY_FITS,
    PUSH_BODY_MAX,
    PUSH_TITLE_FITS,
    PUSH_TITLE_MAX,
    Personal,
    RenderedEmail,
    RenderedPush,
    Renderer,
    RenderError,
    Variant,
)
from notifier.zones import COUNTRY_ZONES, is_iana_zone


@dataclass(frozen=True)
class SamplePlace:
    """Where a sample reader lives: a country, its zone, its currency and a name from there."""

    country: str
    zone: str
    currency: str
    name: str


# Our markets: the zone most of each country's audience is in (as the import guesses it), and a long name from
# there, accented where the country writes accents: the worst case for length and encoding.
SAMPLE_NAME = "Maria Fernanda de Souza Albuquerque"  # Brazil's, and any country's we have no name of
SAMPLE_PLACES = {p.country: p for p in (
    SamplePlace("ID", "Asia/Jakarta", "IDR", "Siti Nurhaliza Kusumawardhani Putri"),
    SamplePlace("BR", "America/Sao_Paulo", "BRL", SAMPLE_NAME),
    SamplePlace("MX", "America/Mexico_City", "MXN", "María Guadalupe Hernández Peñaloza"),
    SamplePlace("AU", "Australia/Sydney", "AUD", "Charlotte Elizabeth Montgomery-Whitfield"),
    SamplePlace("SG", "Asia/Singapore", "SGD", "Tan Wei Ling Rachel Goh"),
)}
HOMES = {"id": "ID", "pt": "BR", "es": "MX", "en": "AU"}  # a language's market when the campaign names no country
SAMPLE_REFUND = Decimal("149900.50")


def sample_place(locale: str, countries: Sequence[str] = ()) -> SamplePlace:
    """Where the sample reader of ``locale`` lives, in a country of that locale: its own region (pt-BR: Brazil);
    else the first of the campaign's ``countries`` that speaks its language (en: Australia for the shutdown
    campaign); else the campaign's first country (an English reader in Brazil); else the language's market."""
    loc = parse_tag(locale)
    language = loc.language if loc else locale
    country = (loc.territory if loc else None) or next(
        (c for c in countries if language in get_official_languages(c, de_facto=True)),
        countries[0] if countries else HOMES.get(language) or _likely_country(language))
    return _place(country) if country else SamplePlace("", "UTC", "USD", SAMPLE_NAME)


@cache
def _place(country: str) -> SamplePlace:
    """One of our markets, else the country's own zone (its first, when it has several) and currency."""
    if country in SAMPLE_PLACES:
        return SAMPLE_PLACES[country]
    zones = [str(z) for z in get_global("territory_zones").get(country, ()) if is_iana_zone(str(z))]
    currencies = get_territory_currencies(country)
    return SamplePlace(country, COUNTRY_ZONES.get(country) or (zones[0] if zones else "UTC"),
                       currencies[0] if currencies else "USD", SAMPLE_NAME)


def _likely_country(language: str) -> str | None:
    """CLDR's most likely region of a language (fr: FR), if any."""
    likely = get_global("likely_subtags").get(language, "")
    parts = likely.split("_")
    return next((p for p in parts[1:] if len(p) == 2 and p.isupper()), None)


@dataclass(frozen=True)
class Sample:
    """One message to render for review: a locale, a zone and a send (possibly reduced by the staleness guard)."""

    locale: str
    zone: str
    country: str
    items: tuple[WaveRef, ...]
    send_at: datetime
    channels: tuple[str, ...] = field(default=(), compare=False)  # those the send goes out on (ZonePlan.channels_of)

    @property
    def label(self) -> str:
        return send_key(self.items)

    def personal(self) -> Personal:
        place = _place(self.country) if self.country else SamplePlace("", "UTC", "USD", SAMPLE_NAME)
        return Personal(place.name, format_money(SAMPLE_REFUND, place.currency, self.locale, self.country))


def samples(campaign: Campaign) -> Iterator[Sample]:
    """Every send of the plan in each locale's sample zone, plus each deadline of a merged send on its own, once
    each, with every channel that may send it (a deadline alone: its own send's, and its merged send's, whose
    guard may drop the others)."""
    for locale in campaign.locales:
        place = sample_place(locale, campaign.countries)
        plan = plan_zone(campaign, zone(place.zone))
        found: dict[tuple[WaveRef, ...], Sample] = {}
        for send in plan.sends:
            on = plan.channels_of(send.send_key)
            alone = [tuple(i for i in send.items if i.deadline == d) for d in send.deadlines] \
                if len(send.deadlines) > 1 else []
            for items in (send.items, *alone):
                seen = found.get(items)
                channels = tuple(ch for ch in campaign.channels if ch in on or (seen and ch in seen.channels))
                found[items] = Sample(locale, place.zone, place.country, items,
                                      seen.send_at if seen else send.send_at, channels)
        yield from found.values()


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


def push_limits(r: Rendered) -> Iterator[str]:
    """What of a rendered push is over the limit the gate refuses (docs/templates.md)."""
    if len(r.push.title) > PUSH_TITLE_MAX:
        yield f"push title is {len(r.push.title)} characters (limit {PUSH_TITLE_MAX}): {r.push.title!r}"
    if len(r.push.body) > PUSH_BODY_MAX:
        yield f"push body is {len(r.push.body)} characters (limit {PUSH_BODY_MAX}): {r.push.body!r}"


def limits(r: Rendered, campaign: Campaign) -> Iterator[str]:
    """What is wrong with one rendered sample's size or shape."""
    yield from push_limits(r)
    if not r.email.subject or not r.email.text.strip() or not r.push.title or not r.push.body:
        yield "a part rendered empty"
    size = len(r.email.html.encode())
    if size > HTML_MAX_BYTES:
        yield f"HTML email is {size:,} bytes (limit {HTML_MAX_BYTES:,})"


def push_warnings(r: Rendered) -> Iterator[str]:
    """What of a rendered push is within its limits but cut where most readers see it (docs/templates.md)."""
    if PUSH_TITLE_FITS < len(r.push.title) <= PUSH_TITLE_MAX:
        yield (f"push title is {len(r.push.title)} characters: iOS and small Androids cut it after "
               f"{PUSH_TITLE_FITS}: {r.push.title!r}")
    if PUSH_BODY_FITS < len(r.push.body) <= PUSH_BODY_MAX:
        yield (f"push body is {len(r.push.body)} characters: Android's collapsed view cuts it after "
               f"{PUSH_BODY_FITS}: {r.push.body!r}")


def warnings(campaign: Campaign, renderer: Renderer) -> list[Problem]:
    """Every push the gate lets through that is cut on some screens, per locale and send: the copy should be
    shortened, but it can be sent. A sample that does not render is review()'s to report."""
    where = str(renderer.dirs(campaign)[0] / campaign.templates)
    found = []
    for sample in samples(campaign):
        try:
            rendered = render_sample(renderer, campaign, sample)
        except UserError:
            continue
        found.extend(Problem(where, None, f"{sample.locale} {sample.label}", m) for m in push_warnings(rendered))
    return found


def review(campaign: Campaign, renderer: Renderer) -> list[Problem]:
    """The translation gate for the campaign's locales, then every sample rendered; every problem at once.

    A fuzzy or untranslated entry fails here (and so ``campaign validate`` and ``campaign schedule``), since
    gettext would send that sentence in English inside an otherwise translated message.
    """
    from notifier.catalogs import check_catalogs

    problems = check_catalogs(renderer.dirs(campaign)[1], campaign.locales, campaign.id)
    if problems:  # rendering needs sound catalogs
        return problems
    seen: set[str] = set()
    where = str(renderer.dirs(campaign)[0] / campaign.templates)
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
