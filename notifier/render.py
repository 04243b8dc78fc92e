"""Rendering: one set of Jinja2 templates per campaign, translated through gettext, in a sandbox.

Each (locale, send, time zone, local day, country) variant is rendered once, with markers where the
recipient's own fields go; filling a variant for one recipient is a string replacement, with the value
HTML-escaped in the HTML part. Recipient data is therefore never template source: a name such as
``{{ 7*7 }}`` is printed literally, and ``<script>`` is escaped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_time
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, pass_context, select_autoescape
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from markupsafe import escape

from notifier.campaign import Campaign, last_day
from notifier.config import Settings
from notifier.display_names import plain_name
from notifier.email_markup import MARKUP_NAMES, MJML, markup_file, to_html
from notifier.errors import RenderError
from notifier.i18n import (
    catalog_digest,
    catalog_path,
    country_name,
    format_count,
    format_day,
    format_money,
    formatting_locale,
    load_translations,
    read_catalog,
)
from notifier.planner import WaveRef
from notifier.refunds import RefundError, refund_of

# email.mjml is the HTML part; a folder without one may have a legacy email.html instead (notifier.email_markup).
TEMPLATE_NAMES = ("email_subject.txt", "email.txt", MJML, "push_title.txt", "push_body.txt")
PUSH_TITLE_MAX, PUSH_BODY_MAX, HTML_MAX_BYTES = 65, 178, 100_000
# Push text that shows whole where most readers see it (docs/templates.md, "Push length"): a body over 110 characters
# is cut in Android's collapsed view, one over 178 in iOS's four lock-screen lines (the gate refuses it); a title
# over 40 is cut on iOS and small Androids, one over 65 on every Android (refused).
PUSH_TITLE_FITS, PUSH_BODY_FITS = 40, 110
NAME, REFUND = "\ue000", "\ue001"  # private-use markers for per-recipient fields; never in real copy


@dataclass(frozen=True)
class DeadlineView:
    """What templates know of one deadline, in the recipient's zone and locale (see docs/templates.md)."""

    id: str
    date: str  # the local date, written the locale's way (28 de outubro de 2024)
    days_left: int  # local calendar days from the day of the send to the deadline's local date
    label: str = ""  # the deadline's label from the campaign file, else its id
    time: str = ""  # the local time of day, written the locale's way (00:00, 12:00 AM)
    stage: str = "n_days"  # today (0 days left), tomorrow (1) or n_days
    # The last day to act (campaign.last_day): the day before a deadline at local midnight, else the deadline's day.
    last_day: str = ""  # written the locale's way (30 January 2030)
    last_day_left: int = 0  # local calendar days from the day of the send to the last day (0: today is the last day)
    last_day_until: str = ""  # the time the last day ends, the locale's way (09:00); empty: all of it (00:00 deadline)
    link: str = ""  # the page a message about it opens: its ``link:`` in the campaign file, an https URL; else empty


def deadline_stage(days_left: int) -> str:
    """What a deadline's day means to the reader: today, tomorrow, or some days away."""
    return "today" if days_left <= 0 else "tomorrow" if days_left == 1 else "n_days"


@dataclass(frozen=True)
class Variant:
    """One rendered message shared by every recipient with the same locale, send, zone, day and country."""

    subject: str
    text: str
    html: str
    push_title: str
    push_body: str
    stage: str
    key: tuple[Any, ...] = ()  # what it was rendered for: messages with equal keys share one provider request
    push_link: str = ""  # the page the push opens: the link of its most urgent deadline that has one (push_link_of)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class RenderedPush:
    title: str
    body: str
    link: str = ""  # the https page a tap opens; empty: the app's home (see docs/templates.md, "Where a push leads")


@dataclass(frozen=True)
class Personal:
    """The recipient's own fields that a message carries (filled into a variant, never rendered as a template)."""

    name: str | None = None
    refund: str | None = None  # already formatted for the locale

    @classmethod
    def of(cls, name: str | None, attributes: dict[str, Any], locale: str, country: str | None = None) -> Personal:
        """The fields as a message may show them: a plain name, and a refund only when it is a real amount in a
        real currency (``notifier.refunds``; otherwise the line is left out rather than shown wrong), written for
        the reader's language and country (S$9.99 for English in Singapore)."""
        try:
            refund = refund_of(attributes.get("refund_amount"), attributes.get("refund_currency"))
        except RefundError:
            refund = None
        return cls(plain_name(name), format_money(*refund, locale, country) if refund else None)


def push_link_of(links: Sequence[tuple[datetime, str]]) -> str:
    """The page a push opens: of its deadlines (instant, link), the link of the soonest one that has one (a merged
    push leads where the reader must act first); empty when none has a link."""
    return min(((at, link) for at, link in links if link), default=(None, ""))[1]


def stage_of(campaign: Campaign, items: Sequence[WaveRef], days_left: int) -> str:
    """last_day when the first deadline is a day away or less (today or tomorrow: each deadline's own ``stage``
    tells them apart), announcement for a deadline's first wave, else reminder."""
    if days_left <= 1:
        return "last_day"
    if any(campaign.deadline(i.deadline).waves[0].label == i.wave for i in items):
        return "announcement"
    return "reminder"


def _sandbox_finalize(value: Any) -> Any:
    return "" if value is None else value


class Renderer:
    """Renders one campaign's messages: a sandboxed environment per (templates, locale), variants cached."""

    def __init__(self, templates_dir: Path, locales_dir: Path, cache_size: int = 4096,
                 default_sender: str = Settings.email_from, studio_dir: Path | None = None) -> None:
        self.templates_dir = Path(templates_dir)
        self.locales_dir = Path(locales_dir)
        # Campaigns kept in the ledger are read from this machine's copy of them (Settings.copy_dirs).
        self._settings = Settings(templates_dir=self.templates_dir, locales_dir=self.locales_dir,
                                  studio_dir=Path(studio_dir)) if studio_dir is not None else None
        self.cache_size = cache_size
        self.default_sender = default_sender  # NOTIFIER_EMAIL_FROM, for campaigns without a sender of their own
        self._default_name = parseaddr(default_sender)[0]  # parsed once: every variant lookup asks for it
        self._envs: dict[tuple[str, str, str, str], tuple[SandboxedEnvironment, object]] = {}
        self._variants: OrderedDict[tuple[Any, ...], Variant] = OrderedDict()

    # -- environments ------------------------------------------------------------------------------------

    def dirs(self, campaign: Campaign) -> tuple[Path, Path]:
        """(templates folder, locales folder) this renderer reads the campaign's copy from."""
        if self._settings is None:
            return self.templates_dir, self.locales_dir
        return self._settings.copy_dirs(campaign.id)

    def env(self, campaign: Campaign, locale: str) -> SandboxedEnvironment:
        """The campaign's environment for one locale, with the campaign's own catalog; built again when that
        catalog's file changed (a long-running worker sends the re-approved wording, not the one it started with)."""
        templates_dir, locales_dir = self.dirs(campaign)
        key = (campaign.id, campaign.templates, locale, str(templates_dir))
        catalog = read_catalog(locales_dir, locale, campaign.id)
        cached = self._envs.get(key)
        env = cached[0] if cached is not None and cached[1] is catalog else None
        if env is None and cached is not None:  # the catalog changed: so did every variant rendered from it
            self.forget(campaign.id)
        if env is None:
            folder = templates_dir / campaign.templates
            if not folder.is_dir():
                raise RenderError(f"campaign {campaign.id}: templates folder {folder} does not exist")
            env = SandboxedEnvironment(
                loader=FileSystemLoader(folder),
                extensions=["jinja2.ext.i18n"],
                undefined=StrictUndefined,
                autoescape=select_autoescape(enabled_extensions=("html", "mjml"), default_for_string=False),
                finalize=_sandbox_finalize,
            )
            translations = load_translations(locales_dir, locale, campaign.id)
            env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
            # Numbers, dates and money are written for the reader's language and country (the variant's).
            env.filters["number"] = pass_context(lambda c, v: format_count(v, locale, c.get("country_code")))
            env.filters["day"] = pass_context(lambda c, d: format_day(d, locale, c.get("country_code")))
            env.filters["money"] = pass_context(lambda c, amount, currency: format_money(
                Decimal(str(amount)), currency, locale, c.get("country_code")))
            self._envs[key] = (env, catalog)
        return env

    def forget(self, campaign_id: str) -> None:
        """Drop a campaign's environments and rendered variants (its copy was changed and approved again)."""
        for key in [k for k in self._envs if k[0] == campaign_id]:
            del self._envs[key]
        for key in [k for k in self._variants if k[0] == campaign_id]:
            del self._variants[key]

    def sender_name(self, campaign: Campaign) -> str:
        """The name messages come from: the campaign's sender, else the default sender's, else the campaign's."""
        if campaign.sender is not None:
            return campaign.sender.name
        return self._default_name or campaign.name

    # -- variants ----------------------------------------------------------------------------------------

    def variant(self, campaign: Campaign, locale: str, items: Sequence[WaveRef], tz: tzinfo, now: datetime,
                country: str | None, personal: Personal) -> Variant:
        """The message for this locale, send, zone, local day and country; rendered once, then cached."""
        day = now.astimezone(tz).date()
        key = (campaign.id, campaign.templates, locale, tuple(items), str(tz), day, country,
               personal.name is not None, personal.refund is not None, self.sender_name(campaign))
        found = self._variants.get(key)
        if found is not None:
            self._variants.move_to_end(key)
            return found
        variant = dataclasses.replace(self._render_variant(campaign, locale, items, tz, day, country, personal),
                                      key=key)
        self._variants[key] = variant
        if len(self._variants) > self.cache_size:
            self._variants.popitem(last=False)
        return variant

    def context(self, campaign: Campaign, locale: str, items: Sequence[WaveRef], tz: tzinfo, day: date,
                country: str | None, personal: Personal) -> dict[str, Any]:
        """The template variables of a variant (per-recipient fields as markers)."""
        carried = {i.deadline for i in items}
        deadlines, links = [], []
        for d in campaign.deadlines:  # the file's order, whatever order the send's items are in
            if d.id not in carried:
                continue
            at = d.instant_in(tz)
            left = (at.date() - day).days
            # The clock stays the language's (English: 12-hour); en_ID would write a 24-hour 12.00.
            clock = format_time(at, "short", locale=formatting_locale(locale))
            last, until = last_day(at)
            deadlines.append(DeadlineView(d.id, format_day(at.date(), locale, country), left, d.label or d.id, clock,
                                          deadline_stage(left), format_day(last, locale, country), (last - day).days,
                                          clock if until is not None else "", d.link or ""))
            links.append((at, d.link or ""))
        closing = max(d.instant_in(tz) for d in campaign.deadlines).date()
        return {
            "campaign": campaign.name, "sender_name": self.sender_name(campaign), "locale": locale,
            "deadlines": deadlines, "stage": stage_of(campaign, items, min(d.days_left for d in deadlines)),
            "push_link": push_link_of(links),
            "closing_date": format_day(closing, locale, country), "country_name": country_name(country, locale),
            "country_code": (country or "").upper(), "links": dict(campaign.links),
            "recipient_name": NAME if personal.name is not None else "",
            "refund_amount": REFUND if personal.refund is not None else "",
        }

    def _render_variant(self, campaign: Campaign, locale: str, items: Sequence[WaveRef], tz: tzinfo, day: date,
                        country: str | None, personal: Personal) -> Variant:
        ctx = self.context(campaign, locale, items, tz, day, country, personal)
        subject = self._render(campaign, locale, "email_subject.txt", ctx)
        html = self._html(campaign, locale, {**ctx, "subject": subject})
        return Variant(
            subject=" ".join(subject.split()), text=self._render(campaign, locale, "email.txt", ctx), html=html,
            push_title=" ".join(self._render(campaign, locale, "push_title.txt", ctx).split()),
            push_body=" ".join(self._render(campaign, locale, "push_body.txt", ctx).split()),
            push_link=ctx["push_link"],
            stage=ctx["stage"],
        )

    def template_errors(self, campaign: Campaign, locale: str, items: Sequence[WaveRef], tz: tzinfo, now: datetime,
                        country: str | None, personal: Personal) -> list[RenderError]:
        """Every template of a variant that fails, each rendered on its own: review reports them all at once."""
        ctx = self.context(campaign, locale, items, tz, now.astimezone(tz).date(), country, personal)
        errors = []
        for name in self.template_names(campaign):
            try:
                if name in MARKUP_NAMES:
                    self._html(campaign, locale, {**ctx, "subject": ""})
                else:
                    self._render(campaign, locale, name, {**ctx, "subject": ""})
            except RenderError as exc:
                errors.append(exc)
        return errors

    def template_names(self, campaign: Campaign) -> tuple[str, ...]:
        """The five templates of a campaign's folder: ``email.mjml``, or a legacy ``email.html``, for the HTML."""
        markup = markup_file(self.dirs(campaign)[0] / campaign.templates)
        return tuple(markup if name == MJML else name for name in TEMPLATE_NAMES)

    def _html(self, campaign: Campaign, locale: str, ctx: dict[str, Any]) -> str:
        """The HTML part: email.mjml rendered by Jinja2 then compiled by MRML (or a legacy email.html, inlined)."""
        name = markup_file(self.dirs(campaign)[0] / campaign.templates)
        source = self._render(campaign, locale, name, ctx)
        return to_html(name, source, f"campaign {campaign.id}: template {campaign.templates}/{name} ({locale})")

    def _render(self, campaign: Campaign, locale: str, name: str, ctx: dict[str, Any]) -> str:
        where = f"campaign {campaign.id}: template {campaign.templates}/{name} ({locale})"
        try:
            return self.env(campaign, locale).get_template(name).render(ctx).strip()
        except SecurityError as exc:
            raise RenderError(f"{where}: refused by the sandbox: {exc}") from exc
        except TemplateError as exc:
            line = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
            raise RenderError(f"{where}{line}: {exc}") from exc
        except (KeyError, ValueError, TypeError) as exc:  # a translation whose placeholders do not match
            raise RenderError(f"{where}: a translation does not fit its placeholders: {exc!r}") from exc

    # -- per recipient -----------------------------------------------------------------------------------

    def email(self, variant: Variant, personal: Personal) -> RenderedEmail:
        """The variant filled in for one recipient; the name is escaped where it lands in HTML."""
        return RenderedEmail(
            fill(variant.subject, personal, html=False), fill(variant.text, personal, html=False),
            fill(variant.html, personal, html=True),
        )

    def push(self, variant: Variant, personal: Personal) -> RenderedPush:
        return RenderedPush(fill(variant.push_title, personal, html=False),
                            fill(variant.push_body, personal, html=False), variant.push_link)


_MARKERS = re.compile(f"([{NAME}{REFUND}])")


@lru_cache(maxsize=4096)
def _pieces(text: str) -> tuple[str, ...]:
    """A variant's text cut at its markers (text, marker, text, …), once per variant: an email is 20 KB, and
    joining its pieces costs a copy where scanning it for every recipient cost 40 µs."""
    return tuple(_MARKERS.split(text))


def fill(text: str, personal: Personal, *, html: bool) -> str:
    """A variant's text with the recipient's own fields in place of the markers (escaped for HTML), in one pass,
    so a value is never scanned for markers again."""
    if NAME not in text and REFUND not in text:
        return text
    values = {NAME: personal.name or "", REFUND: personal.refund or ""}
    if html:
        values = {k: str(escape(v)) for k, v in values.items()}
    return "".join(values.get(piece, piece) if len(piece) == 1 else piece for piece in _pieces(text))


@dataclass(frozen=True)
class Content:
    """The approved copy of a campaign: a digest of its templates and catalogs, and each file's digest.

    A template counts by its bytes; a catalog by the translations it makes us send (``i18n.catalog_digest``),
    so re-saving a ``.po`` with another Babel or new line numbers does not freeze a campaign. So ``email.mjml``
    counts as written (or a legacy ``email.html``), not as MRML compiles it: a newer MRML changes markup, not words.
    """

    fingerprint: str
    manifest: dict[str, str]

    @classmethod
    def of(cls, campaign: Campaign, templates_dir: Path, locales_dir: Path) -> Content:
        folder = Path(templates_dir) / campaign.templates
        manifest = {}
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                manifest[f"templates/{campaign.templates}/{path.relative_to(folder)}"] = hashlib.sha256(
                    path.read_bytes()).hexdigest()
        for locale in campaign.locales:
            name = f"locales/{catalog_path(locales_dir, locale, domain=campaign.id).relative_to(locales_dir)}"
            manifest[name] = catalog_digest(locales_dir, locale, campaign.id)
        digest = hashlib.sha256("\n".join(f"{k} {v}" for k, v in sorted(manifest.items())).encode()).hexdigest()
        return cls(digest, manifest)
