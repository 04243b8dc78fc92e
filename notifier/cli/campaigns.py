"""Campaign commands: new, validate, plan, list, schedule, retry, pause, resume, cancel."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import click

from notifier.cli._app import NOW, CliContext, campaign_file, cli, pass_ctx
from notifier.cli._app import parse_now as _parse_now
from notifier.errors import CampaignError, Problem, UserError

if TYPE_CHECKING:
    from datetime import datetime

    from notifier.audience import RecipientRecord
    from notifier.campaign import Campaign
    from notifier.timeline import TimelineEntry


@cli.group()
def campaign() -> None:
    """Campaign files: validate, plan, schedule, pause, resume, cancel."""


@campaign.command("new")
@click.argument("campaign_id")
@click.option("--locales", default="en", show_default=True, help="Comma-separated locale tags, e.g. en,id,pt-BR.")
@click.option("--name", help="The campaign's name and sender name (default: from the id).")
@pass_ctx
def campaign_new(c: CliContext, campaign_id: str, locales: str, name: str | None) -> None:
    """Write a new campaign: its file, five templates and its own catalogs, ready to edit and translate."""
    from notifier.scaffold import new_campaign

    tags = [t.strip() for t in locales.split(",") if t.strip()]
    written = new_campaign(campaign_id, tags, campaigns_dir=c.settings.campaigns_dir,
                           templates_dir=c.settings.templates_dir, locales_dir=c.settings.locales_dir, name=name)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: edit {written[0]}, translate the catalogs, then: notifier campaign validate {written[0]}")


ALLOW_EMPTY = click.option("--allow-empty", is_flag=True,
                           help="Accept a campaign that would send nothing (every wave past or never due).")


@campaign.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@NOW
@ALLOW_EMPTY
@pass_ctx
def campaign_validate(c: CliContext, files: tuple[Path, ...], now: str | None, allow_empty: bool) -> None:
    """Check campaign files (or folders of them) and render every message; every problem is reported at once. Then
    name each wave no time zone still gets at --now, and refuse a campaign that would send nothing."""
    from notifier.campaign import load_campaigns
    from notifier.review import review, warnings

    campaigns = load_campaigns(files)
    renderer = c.renderer()
    problems = [p for camp in campaigns for p in review(camp, renderer)]
    if problems:
        raise CampaignError(problems)
    at = _parse_now(now)
    refused: list[Problem] = []
    for camp in campaigns:
        try:
            _not_sent(camp, at, allow_empty)
        except CampaignError as exc:
            refused.extend(exc.problems)
    if refused:
        raise CampaignError(refused)
    for camp in campaigns:
        for warning in warnings(camp, renderer):  # sent as written, but cut on some screens
            click.echo(f"warning: {warning}", err=True)
        waves = sum(len(d.waves) for d in camp.deadlines)
        rules = [f"audience where {camp.where}" if camp.where else "",
                 f"{camp.holdout / 100:g}% held out" if camp.holdout else "",
                 *(f"{d.id} where {d.where}" for d in camp.deadlines if d.where)]
        click.echo(f"{camp.source}: ok — {camp.id}: {len(camp.deadlines)} deadlines, {waves} waves, "
                   f"locales {', '.join(camp.locales)}, channels {', '.join(camp.channels)}; "
                   + "".join(f"{r}; " for r in rules if r) + "every message renders")


def _not_sent(camp: Campaign, now: datetime, allow_empty: bool) -> None:
    """Warn of every wave no time zone gets at or after ``now``; refuse a campaign that would send nothing, unless
    ``allow_empty`` (then say so)."""
    from notifier.planner import NOTHING_SENT, outlook
    from notifier.zones import every_zone

    seen = outlook(camp, every_zone(), now)
    seen.refuse_if_empty(allow_empty)
    for problem in seen.not_sent:
        click.echo(f"warning: {problem}", err=True)
    if seen.sends_nothing:
        click.echo(f"warning: {camp.source}: {NOTHING_SENT} (accepted: --allow-empty)", err=True)


@campaign.command("plan")
@click.argument("campaign_ref", metavar="FILE_OR_ID")
@click.option("--audience", "audience_file", type=click.Path(dir_okay=False, path_type=Path),
              help="An audience file (default: the recipients in the ledger).")
@click.option("--recipient", help="Only this recipient, with why any wave is missing, moved or merged.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per send and line, sorted by send time.")
@NOW
@pass_ctx
def campaign_plan(c: CliContext, campaign_ref: str, audience_file: Path | None, recipient: str | None,
                  as_json: bool, now: str | None) -> None:
    """Show every send the campaign would make to an audience file or the ledger's audience; nothing is written."""
    from notifier.timeline import PlanView, sorted_entries

    planned = _plan_campaign(c, campaign_ref)
    view = PlanView(planned, recipient, _parse_now(now) if now else None)
    if audience_file is not None:
        rows = sorted_entries(view.entries(_file_members(audience_file, recipient)))
        _print_plan(planned, rows, as_json)
        where = str(audience_file)
    else:
        from notifier.ledger.db import transaction
        from notifier.reports import ledger_members

        with transaction(c.sessions()) as s:
            _print_plan(planned, sorted_entries(view.entries(ledger_members(s, recipient))), as_json)
        where = "the ledger"
    if recipient is not None:
        if not view.found:
            raise UserError(f"{where}: no valid recipient with id {recipient!r}")
        out = sys.stderr if as_json else sys.stdout
        click.echo("\nWhy some waves are missing, moved or merged:" if view.notes
                   else "\nEvery wave is sent as planned.", file=out)
        for line in view.notes:
            click.echo(f"  - {line}", file=out)


def _plan_campaign(c: CliContext, ref: str) -> Campaign:
    """A campaign file, or the campaign as the ledger scheduled it when ``ref`` is an id without a file."""
    from notifier.campaign import load_campaign

    path = campaign_file(c, ref)
    if path.exists() or Path(ref).suffix in (".yaml", ".yml"):
        return load_campaign(path)
    from notifier.ledger import queries
    from notifier.ledger.db import transaction

    with transaction(c.sessions()) as s:
        return queries.campaign_of(queries.get_campaign(s, ref))


def _file_members(audience_file: Path, recipient: str | None) -> Iterator[RecipientRecord]:
    """Valid rows of an audience file; rejected rows (of ``recipient`` only, if given) go to stderr."""
    from notifier.audience import Rejection, read_audience

    for rec in read_audience(audience_file):
        if isinstance(rec, Rejection):
            if recipient is None or rec.recipient_id == recipient:
                click.echo(f"rejected {rec}", err=True)
            continue
        yield rec


def _print_plan(campaign: Campaign, rows: Iterable[TimelineEntry], as_json: bool) -> None:
    """One line per send: JSON with the send's codes, or a table with its wave in words."""
    from notifier.words import Words

    if as_json:
        for e in rows:
            click.echo(e.as_json())
        return
    words = Words()
    click.echo(f"{'send at (recipient local time)':<30} {'recipient':<12} {'channel':<7} wave")
    for e in rows:
        # With delivery.spread, the span the message goes out in (its minute is the recipient's own, off the hour).
        end = (e.send_at.astimezone(UTC) + e.spread).astimezone(e.send_at.tzinfo)
        until = f"–{end:%H:%M}" if e.spread else ""
        click.echo(f"{e.send_at.strftime(f'%Y-%m-%d %H:%M{until} %z'):<30} {e.recipient:<12} {e.channel:<7} "
                   f"{words.send(campaign, e.send_key)}")
    if campaign.delivery.spread:
        from notifier.timeline import iso_duration

        click.echo(f"(delivery.spread {iso_duration(campaign.delivery.spread)}: each recipient's message goes out at a "
                   "moment of its own in the span shown, never on the hour)")


@campaign.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per campaign and line.")
@pass_ctx
def campaign_list(c: CliContext, as_json: bool) -> None:
    """Every campaign in the ledger: state, phase, messages sent and done of those planned, and the next send; a
    campaign whose copy changed since it was approved is blocked."""
    from notifier.approval import BLOCKED
    from notifier.ledger.db import transaction
    from notifier.reports import campaign_lines, format_table

    with transaction(c.sessions()) as s:
        lines = campaign_lines(s, c.settings)
    if as_json:
        for line in lines:
            click.echo(json.dumps(line.as_dict()))
        return
    if not lines:
        click.echo("no campaign is scheduled (run: notifier campaign schedule FILE)")
        return
    for why in dict.fromkeys(why for ln in lines for why in ln.held):
        click.echo(f"held: nothing is sent: {why}")
    for ln in lines:
        if ln.copy is not None and ln.copy.blocked:
            click.echo(f"{ln.campaign_id}: blocked: {BLOCKED} ({ln.copy.command})")
    click.echo(format_table(
        ["campaign", "state", "phase", "sent/planned", "done", "next send (UTC)"],
        [[ln.campaign_id, ln.state, ln.phase, f"{ln.sent:,}/{ln.planned:,}", f"{ln.percent}%",
          f"{ln.next_send_at:%Y-%m-%d %H:%M}" if ln.next_send_at else "-"] for ln in lines]))


@campaign.command("schedule")
@click.argument("campaign_ref", metavar="FILE_OR_ID")
@NOW
@ALLOW_EMPTY
@pass_ctx
def campaign_schedule(c: CliContext, campaign_ref: str, now: str | None, allow_empty: bool) -> None:
    """Approve the campaign's copy and schedule it; re-run it after editing the file, templates or catalogs. Each wave
    no time zone will get is named; a campaign that would send nothing is refused unless --allow-empty."""
    from notifier.campaign import load_campaign
    from notifier.ledger import queries
    from notifier.ledger.db import transaction
    from notifier.planner import plan_zone
    from notifier.render import Content
    from notifier.reports import campaign_status
    from notifier.results import recount_funnel
    from notifier.review import review
    from notifier.team import approvals

    path = campaign_file(c, campaign_ref)
    camp = load_campaign(path)
    problems = review(camp, c.renderer())
    if problems:
        raise CampaignError(problems)
    at = _parse_now(now)
    _not_sent(camp, at, allow_empty)
    content = Content.of(camp, *c.settings.copy_dirs(camp.id))
    spec = path.read_text(encoding="utf-8")
    with transaction(c.sessions()) as s:
        approvals.gate(s, c.settings, camp, spec, content.fingerprint)  # four eyes, once the ledger has a team
        result = queries.schedule(s, camp, spec, at, content, plan_zone)
        recount_funnel(s, camp.id)  # actions recorded before count in its Results
    with c.sessions()() as s:
        planned = campaign_status(s, camp.id, c.settings).planned
    verb = "scheduled" if result.created else "updated"
    click.echo(f"{verb} {camp.id}: {planned:,} messages planned to today's audience, over {result.zones} time zones; "
               f"approved copy {content.fingerprint[:12]}")
    if camp.delivery.spread:
        from notifier.timeline import iso_duration

        click.echo(f"  each send's messages spread over the {iso_duration(camp.delivery.spread)} after its time "
                   "(delivery.spread), never on the hour")
    for change in result.content_changes:
        click.echo(f"  copy changed: {change}")


@campaign.command("retry")
@click.argument("campaign_id")
@click.option("--reason", metavar="TEXT", help="Only failed rows whose error contains TEXT (see notifier status).")
@click.option("--channel", type=click.Choice(["email", "push"]), help="Only this channel.")
@click.option("--json", "as_json", is_flag=True)
@NOW
@pass_ctx
def campaign_retry(c: CliContext, campaign_id: str, reason: str | None, channel: str | None, as_json: bool,
                   now: str | None) -> None:
    """Put failed messages back to pending for one more round (not those whose deadline has passed)."""
    from notifier.ledger import queries
    from notifier.ledger.db import transaction

    with transaction(c.sessions()) as s:
        result = queries.retry_failed(s, campaign_id, _parse_now(now), reason=reason, channel=channel)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(f"{campaign_id}: {result.retried} failed messages are pending again"
               + (f"; {result.too_late} left failed: their deadline has passed" if result.too_late else ""))


def _state_command(name: str, state: str, help_text: str) -> None:
    @campaign.command(name, help=help_text)
    @click.argument("campaign_id")
    @NOW
    @pass_ctx
    def command(c: CliContext, campaign_id: str, now: str | None) -> None:
        from notifier.ledger import queries
        from notifier.ledger.db import transaction
        from notifier.ledger.models import CampaignState

        with transaction(c.sessions()) as s:
            row = queries.set_state(s, campaign_id, CampaignState(state), _parse_now(now))
        click.echo(f"{row.id} is {row.state}")


_state_command("pause", "paused", "Stop sending until resumed; nothing due is lost.")
_state_command("resume", "scheduled", "Send again; what fell due while paused goes out unless its deadline passed.")
_state_command("cancel", "cancelled", "Stop for good; every message not yet sent is skipped.")


# --- recipients ------------------------------------------------------------------------------------------




@campaign.command("export")
@click.argument("campaign_id")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--version", "version", type=int, help="A stored version (default: the latest).")
@pass_ctx
def campaign_export(c: CliContext, campaign_id: str, directory: Path, version: int | None) -> None:
    """Write a campaign kept in the ledger (made in the studio) into DIRECTORY, as files to review in git:
    campaigns/ID.yaml, templates/ID/, locales/ID.pot and locales/*/LC_MESSAGES/ID.po, byte for byte."""
    from notifier.studio import store

    with c.sessions()() as s:
        written = store.export_campaign(s, campaign_id, directory, version)
    click.echo(f"wrote {len(written)} files of {campaign_id} into {directory}")


@campaign.command("import")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
@NOW
@pass_ctx
def campaign_import(c: CliContext, directory: Path, now: str | None) -> None:
    """Store the campaign in DIRECTORY (as `campaign export` writes it) as its next version in the ledger, for every
    server and worker; nothing new when no byte changed. Schedule it again to approve a changed copy."""
    from notifier.ledger.db import transaction
    from notifier.studio import store

    with transaction(c.sessions()) as s:
        before = store.latest_version(s, store.check_bundle(store.bundle_from_directory(directory), str(directory)))
        version = store.import_campaign(s, directory, now=_parse_now(now))
    same = before is not None and before.version == version.version
    click.echo(f"{version.campaign_id}: {'unchanged, still' if same else 'stored as'} version {version.version} "
               f"({version.fingerprint[:12]})")
