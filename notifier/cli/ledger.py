"""Commands on the ledger itself: its schema, the audience, and what one recipient got."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from notifier.cli._app import NOW, CliContext, cli, pass_ctx
from notifier.cli._app import parse_now as _parse_now

if TYPE_CHECKING:
    from notifier.audience import ExtraColumns


@cli.group()
def db() -> None:
    """The ledger database."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(c: CliContext) -> None:
    """Create or migrate the ledger schema to the latest version."""
    from notifier.ledger.db import current_revision, make_engine, upgrade

    engine = make_engine(c.settings.database_url)
    upgrade(engine)
    click.echo(f"ledger at revision {current_revision(engine)}: {engine.url.render_as_string(hide_password=True)}")


# --- audience ------------------------------------------------------------------------------------------


@cli.group()
def audience() -> None:
    """Recipients: import them, record what they did."""


@audience.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: from the file extension.")
@click.option("--extra-columns", "extra_columns", type=click.Choice(["error", "attributes"]), default="error",
              show_default=True, help="A column that names no field: refuse the file, or keep it as an attribute "
                                      "that skip_if can test. One that looks like a field (tz, e-mail) is refused "
                                      "either way; a column named attributes.NAME is always an attribute.")
@NOW
@click.option("--show", default=50, show_default=True, help="Print at most this many rejected rows.")
@pass_ctx
def audience_import(c: CliContext, file: Path, fmt: str | None, extra_columns: ExtraColumns,
                    now: str | None, show: int) -> None:
    """Import (upsert) recipients from CSV or JSON Lines; rejected rows are reported with line numbers.

    Every column must be a field (id, email, name, locale, timezone, country, push_tokens, joined_at, refund_amount,
    refund_currency) or attributes.NAME; a header with any other column is refused before anything is stored.
    """
    from notifier.audience import import_audience

    shown = 0

    def on_reject(rejection: Any) -> None:
        nonlocal shown
        shown += 1
        if shown <= show:
            click.echo(f"rejected {rejection}", err=True)

    report = import_audience(c.sessions(), file, now=_parse_now(now), fmt=fmt, on_reject=on_reject,
                             extra_columns=extra_columns)
    if report.rejected > show:
        click.echo(f"... and {report.rejected - show} more rejected rows", err=True)
    click.echo(f"{file}: {report.accepted} accepted ({report.inserted} new, {report.updated} updated), "
               f"{report.rejected} rejected, {report.guessed_timezones} time zones guessed from the country, "
               f"{report.cleaned_names} names cleaned")


@audience.command("action")
@click.argument("recipient_id")
@click.argument("action")
@click.option("--at", "at", metavar="ISO", help="When it happened (default: now).")
@click.option("--force", is_flag=True, help="Record it even if no campaign's skip_if uses ACTION.")
@pass_ctx
def audience_action(c: CliContext, recipient_id: str, action: str, at: str | None, force: bool) -> None:
    """Record that a recipient did ACTION (e.g. refund_requested), which skip_if reminders honour."""
    from notifier.feedback import record_action
    from notifier.ledger.db import transaction

    with transaction(c.sessions()) as s:
        new = record_action(s, recipient_id, action, _parse_now(at), force=force)
    click.echo(f"recorded {action} for {recipient_id}" if new else
               f"{recipient_id} had already done {action}: the first time is kept")


# --- campaign ------------------------------------------------------------------------------------------



@cli.group()
def recipient() -> None:
    """One recipient as the ledger sees them."""


@recipient.command("show")
@click.argument("recipient_id")
@click.option("--campaign", "campaign_id", metavar="ID", help="Only this campaign's messages.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def recipient_show(c: CliContext, recipient_id: str, campaign_id: str | None, as_json: bool) -> None:
    """Every planned and actual message of the recipient, in their own time zone, with why any was skipped or failed."""
    from notifier.ledger.db import transaction
    from notifier.ledger.queries import campaign_of, get_campaign
    from notifier.reports import cap_notes, format_table, get_member, recipient_messages
    from notifier.words import Words

    with transaction(c.sessions()) as s:
        member = get_member(s, recipient_id)
        messages = recipient_messages(s, member, campaign_id)
        campaigns = {cid: campaign_of(get_campaign(s, cid)) for cid in {m.campaign_id for m in messages}}
        notes = cap_notes(s, member, dict(c.settings.daily_cap))
    if as_json:
        click.echo(json.dumps({"recipient": member.id, "timezone": member.timezone, "country": member.country,
                               "messages": [m.as_dict() for m in messages], "notes": notes}, indent=2))
        return
    reach = [ch for ch, ok in (("email", member.email), ("push", member.push_tokens)) if ok]
    click.echo(f"{member.id}: time zone {member.timezone}, country {member.country or '-'}, "
               f"reachable by {', '.join(reach) or 'nothing'}; {len(messages)} messages")
    if messages:
        words = Words()
        click.echo(format_table(
            ["campaign", "send", "channel", "state", "when (recipient local time)", "reason"],
            [[m.campaign_id, words.send(campaigns[m.campaign_id], m.send_key), m.channel, m.state,
              f"{m.at:%Y-%m-%d %H:%M %z}", words.reason(m.state, m.skip_reason, m.last_error)] for m in messages]))
    for note in notes:
        click.echo(f"note: {note}")


# --- dispatch and status ----------------------------------------------------------------------------------


