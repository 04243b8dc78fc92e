"""The content commands of ``notifier``: preview and the translation catalogs (registered on the main group)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from notifier.cli._app import CliContext, campaign_file, cli, pass_ctx


@cli.command()
@click.argument("campaign_ref", metavar="FILE_OR_ID")
@click.option("--locale", help="A campaign locale, e.g. pt-BR (default: the recipient's, else the campaign default).")
@click.option("--deadline", help="Deadline id, e.g. refund.")
@click.option("--wave", help="Wave of that deadline, e.g. P7D.")
@click.option("--channel", type=click.Choice(["email", "push"]), default="email", show_default=True)
@click.option("--recipient", help="Render it as this recipient (from the ledger) gets it.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--gallery", type=click.Path(file_okay=False, path_type=Path),
              help="Write a page with every locale × send × channel to this folder instead.")
@pass_ctx
def preview(c: CliContext, campaign_ref: str, locale: str | None, deadline: str | None, wave: str | None, channel: str,
            recipient: str | None, fmt: str, gallery: Path | None) -> None:
    """Show a rendered message, or write a gallery of all of them, before anything is sent."""
    from notifier.campaign import load_campaign, normalize_locale_tag
    from notifier.preview import PreviewError, as_text, find_sample, recipient_sample, write_gallery
    from notifier.review import render_sample

    camp = load_campaign(campaign_file(c, campaign_ref))
    renderer = c.renderer()
    if gallery is not None:
        path = write_gallery(camp, renderer, gallery, datetime.now(UTC))
        click.echo(f"gallery: {path.resolve()}")
        return
    if not deadline or not wave:
        raise PreviewError("give --deadline and --wave (or --gallery DIR)")
    try:
        chosen = normalize_locale_tag(locale) if locale else None
    except ValueError:
        chosen = locale  # not a locale tag at all: find_sample names the campaign's locales
    sample = find_sample(camp, chosen or camp.default_locale, deadline, wave, channel)
    if recipient is not None:
        from sqlalchemy import select

        from notifier.ledger.models import Recipient

        with c.sessions()() as s:
            rec = s.scalar(select(Recipient).where(Recipient.id == recipient))
        if rec is None:
            raise PreviewError(f"--recipient {recipient}: no such recipient in the ledger")
        sample, personal = recipient_sample(camp, sample, rec, chosen)
        click.echo(as_text(render_sample(renderer, camp, sample, personal), channel, fmt))
    else:
        click.echo(as_text(render_sample(renderer, camp, sample), channel, fmt))


@cli.group()
def i18n() -> None:
    """Translation catalogs, one gettext domain per campaign: extract, update, check (nothing to compile)."""


def _all_campaigns(c: CliContext, refs: tuple[str, ...]) -> list[Any]:
    from notifier.campaign import load_campaigns

    return load_campaigns([campaign_file(c, r) for r in refs] if refs else [c.settings.campaigns_dir])


CAMPAIGNS = click.argument("campaigns", nargs=-1, metavar="[FILE_OR_ID]...")


@i18n.command("extract")
@CAMPAIGNS
@pass_ctx
def i18n_extract(c: CliContext, campaigns: tuple[str, ...]) -> None:
    """Write each campaign's locales/<campaign-id>.pot from its own templates (every campaign when none is given)."""
    from notifier.catalogs import extract, pot_path

    for camp in _all_campaigns(c, campaigns):
        n = extract(c.settings.templates_dir / camp.templates, c.settings.locales_dir, camp.id)
        click.echo(f"{pot_path(c.settings.locales_dir, camp.id)}: {n} messages")


@i18n.command("update")
@CAMPAIGNS
@pass_ctx
def i18n_update(c: CliContext, campaigns: tuple[str, ...]) -> None:
    """Merge each campaign's template into its own catalogs of its locales (new entries need a translator)."""
    from notifier.catalogs import update

    for camp in _all_campaigns(c, campaigns):
        for path in update(c.settings.locales_dir, camp.locales, camp.id):
            click.echo(f"updated {path}")


@i18n.command("check")
@CAMPAIGNS
@pass_ctx
def i18n_check(c: CliContext, campaigns: tuple[str, ...]) -> None:
    """The translation gate, per campaign: untranslated, fuzzy or broken entries, push text over its limits."""
    from notifier.catalogs import check_catalogs
    from notifier.errors import CampaignError
    from notifier.review import review, warnings
    from notifier.web.locales import check_ui_catalogs

    camps = _all_campaigns(c, campaigns)
    problems = [p for camp in camps for p in check_catalogs(c.settings.locales_dir, camp.locales, camp.id)]
    problems += check_ui_catalogs() if not campaigns else []
    if not problems:  # rendering needs sound catalogs; check them first
        renderer = c.renderer()
        problems = [p for camp in camps for p in review(camp, renderer)]
    if problems:
        raise CampaignError(problems)
    for camp in camps:
        for warning in warnings(camp, renderer):  # sent as written, but cut on some screens
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"catalogs ok: {', '.join(sorted(camp.locales))}; every message of {camp.id} renders "
                   "within its limits")
    if not campaigns:
        click.echo("catalogs ok: the pages of notifier serve")
