"""``notifier campaign report``: did the campaign work (``notifier.results``)."""

from __future__ import annotations

import csv
import json
import sys
from typing import TYPE_CHECKING

import click

from notifier.cli._app import CliContext, pass_ctx
from notifier.cli.campaigns import campaign

if TYPE_CHECKING:
    from notifier.results import Holdout


@campaign.command("report")
@click.argument("campaign_id")
@click.option("--json", "as_json", is_flag=True, help="The whole report as one JSON object.")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV line per send, locale and channel.")
@click.option("--not-acted", "deadline_id", metavar="DEADLINE",
              help="Instead: the ids of the audience who have not done DEADLINE's skip_if action, one per line.")
@pass_ctx
def campaign_report(c: CliContext, campaign_id: str, as_json: bool, as_csv: bool, deadline_id: str | None) -> None:
    """What became of the campaign's messages per send, locale and channel (delivered, bounced, opened, clicked,
    unsubscribed, complained, converted), and per deadline who has acted, day by day."""
    from notifier.ledger.db import transaction
    from notifier.reports import format_table
    from notifier.results import COLUMNS, csv_lines, not_acted, results, table_rows

    if as_json + as_csv + (deadline_id is not None) > 1:
        raise click.UsageError("--json, --csv and --not-acted: pick one (--not-acted writes CSV)")
    with transaction(c.sessions()) as s:
        if deadline_id is not None:
            out = csv.writer(sys.stdout, lineterminator="\n")
            out.writerow(["recipient_id"])
            for rid in not_acted(s, campaign_id, deadline_id):
                out.writerow([rid])
            return
        res = results(s, campaign_id)
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2))
        return
    if as_csv:
        csv.writer(sys.stdout, lineterminator="\n").writerows(csv_lines(res))
        return
    click.echo(f"{res.campaign_id}: {res.name}")
    click.echo(format_table(list(COLUMNS), [*table_rows(res, "-"),
                                            ["all", "", "", *(res.total(m) for m in COLUMNS[3:])]]))
    if res.links:
        click.echo("unique clicks by link: " + ", ".join(f"{k} {n:,}" for k, n in res.links.items()))
    for f in res.funnels:
        share = f"{100 * f.acted / f.audience:.1f}%" if f.audience else "-"
        click.echo(f"\n{f.label} ({f.action}): {f.acted:,} of {f.audience:,} have acted ({share}), "
                   f"{f.acted - f.late:,} before the deadline and {f.late:,} after; {f.not_acted:,} have not")
        if f.holdout is not None:
            click.echo(holdout_line(f.action, f.holdout))
        waves = {at.date(): w for w, at in f.waves}
        if f.days:
            click.echo(format_table(["day (UTC)", "acted", "total", "share", "wave"], [
                [d.day.isoformat(), d.acted, d.total, f"{100 * d.total / f.audience:.1f}%" if f.audience else "-",
                 waves.get(d.day, "")] for d in f.days]))


def holdout_line(action: str, h: Holdout) -> str:
    """A funnel's holdout against the rest, in one line: the share who acted in each group and the difference."""
    def rate(r: float | None) -> str:
        return "-" if r is None else f"{100 * r:.1f}%"

    lift = "-" if h.lift is None else f"{h.lift:+.1f}"
    return (f"held out (got nothing): {h.held:,} people, {rate(h.held_rate)} did {action}; "
            f"sent to: {h.sent:,} people, {rate(h.sent_rate)} did it; difference: {lift} points")
