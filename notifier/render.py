"""Rendering: campaign templates (Jinja2 sandbox, strict undefined) → subject, text, HTML and push text.

This is the minimal English renderer of the foundation; localized gettext content replaces the
templates, not this interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from babel.dates import format_date
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from notifier.campaign import Campaign
from notifier.errors import UserError

TEMPLATE_NAMES = ("email_subject.txt", "email.txt", "email.html", "push_title.txt", "push_body.txt")


class RenderError(UserError):
    """A template is missing or failed to render; names the template and campaign."""


@dataclass(frozen=True)
class DeadlineView:
    """What templates know of one deadline, in the recipient's zone and locale."""

    id: str
    label: str
    date: str
    days_left: int


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class RenderedPush:
    title: str
    body: str


class Renderer:
    """Renders one campaign's templates; one sandboxed environment per templates folder."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = Path(templates_dir)
        self._envs: dict[str, SandboxedEnvironment] = {}

    def _env(self, campaign: Campaign) -> SandboxedEnvironment:
        env = self._envs.get(campaign.templates)
        if env is None:
            folder = self.templates_dir / campaign.templates
            if not folder.is_dir():
                raise RenderError(f"campaign {campaign.id}: templates folder {folder} does not exist")
            env = SandboxedEnvironment(
                loader=FileSystemLoader(folder),
                undefined=StrictUndefined,
                autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
                keep_trailing_newline=False,
            )
            self._envs[campaign.templates] = env
        return env

    def context(self, campaign: Campaign, *, deadlines: Sequence[str], wave: str, locale: str,
                tz: tzinfo, now: datetime, recipient_name: str | None) -> dict[str, Any]:
        """The template variables for one recipient's message."""
        babel_locale = locale.replace("-", "_")
        today = now.astimezone(tz).date()
        views = []
        for d_id in deadlines:
            d = campaign.deadline(d_id)
            at = d.instant_in(tz)
            views.append(DeadlineView(d.id, d.label or d.id, format_date(at.date(), "long", locale=babel_locale),
                                      (at.date() - today).days))
        closing = campaign.deadlines[-1].instant_in(tz).date()
        return {
            "campaign": campaign.name, "locale": locale, "wave": wave, "deadlines": views,
            "closing_date": format_date(closing, "long", locale=babel_locale),
            "links": dict(campaign.links), "recipient_name": recipient_name,
        }

    def _render(self, campaign: Campaign, name: str, ctx: dict[str, Any]) -> str:
        try:
            return self._env(campaign).get_template(name).render(ctx).strip()
        except TemplateError as exc:
            raise RenderError(f"campaign {campaign.id}: template {campaign.templates}/{name}: {exc}") from exc

    def email(self, campaign: Campaign, ctx: dict[str, Any]) -> RenderedEmail:
        subject = self._render(campaign, "email_subject.txt", ctx)
        return RenderedEmail(subject, self._render(campaign, "email.txt", ctx),
                             self._render(campaign, "email.html", {**ctx, "subject": subject}))

    def push(self, campaign: Campaign, ctx: dict[str, Any]) -> RenderedPush:
        return RenderedPush(self._render(campaign, "push_title.txt", ctx), self._render(campaign, "push_body.txt", ctx))
