"""Feedback commands: the web server, the suppression list, completed actions, and purging personal data."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from notifier.cli._app import NOW, CliContext, cli, parse_now, pass_ctx
from notifier.errors import UserError

if TYPE_CHECKING:
    from notifier.feedback import ActionRejection

# --- serve -------------------------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--dev", is_flag=True, help="Allow the default secret, a localhost public URL, no webhook key and no "
                                          "API token (never in production).")
@click.option("--access-log", is_flag=True, help="Log every request line (paths carry unsubscribe tokens).")
@click.option("--forwarded-allow-ips", metavar="IPS", default=None,
              help="Trust X-Forwarded-For/-Proto from these proxy addresses (comma separated); by default no "
                   "header is trusted and the login limit counts the connecting address.")
@click.option("--read-timeout", metavar="SECONDS", default=20.0, show_default=True,  # web.server.READ_TIMEOUT
              type=click.FloatRange(0.1, 3600),
              help="Close a connection that takes longer to send a request's head, or pauses its body longer.")
@pass_ctx
def serve(c: CliContext, host: str, port: int, dev: bool, access_log: bool, forwarded_allow_ips: str | None,
          read_timeout: float) -> None:
    """Serve the webhooks, one-click unsubscribe, POST /actions (OpenAPI at /openapi.json) and the dashboard."""
    from notifier.config import require_serving_secrets
    from notifier.web.app import require_web_extra

    require_web_extra("notifier serve")
    if not dev:
        require_serving_secrets(c.settings)  # every missing or weak setting at once
    import uvicorn

    from notifier.web import create_app
    from notifier.web.server import ServeConfig

    app = create_app(c.settings, c.sessions())
    if dev:
        click.echo("notifier serve --dev: for local use only (default secrets are accepted)", err=True)
    click.echo(f"notifier serve on http://{host}:{port} (OpenAPI: /openapi.json)", err=True)
    from notifier.team.people import has_team

    with c.sessions()() as s:
        team = has_team(s)
    click.echo("dashboard: /login" if c.settings.admin_password_hash or team else
               "dashboard: off (add the first admin: notifier people add-admin EMAIL --name NAME)", err=True)
    server = uvicorn.Server(ServeConfig(app, host=host, port=port, read_timeout=read_timeout, access_log=access_log,
                                        proxy_headers=forwarded_allow_ips is not None,
                                        forwarded_allow_ips=forwarded_allow_ips))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has shut down, as uvicorn.run does
        server.run()
    if not server.started:  # uvicorn has logged why (the port is taken, say)
        raise UserError(f"notifier serve could not start on {host}:{port}")


@cli.group()
def admin() -> None:
    """The dashboard's admin."""


@admin.command("hash-password")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from the first line of standard input.")
def admin_hash_password(from_stdin: bool) -> None:
    """Print the hash to put in NOTIFIER_ADMIN_PASSWORD (the password itself is never stored)."""
    from notifier.web.dashboard.auth import hash_password, weak_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Admin password", hide_input=True, confirmation_prompt=True, err=True)
    why = weak_password(password)
    if why:
        raise UserError(f"that password is too weak: {why}")
    click.echo(hash_password(password))


# --- suppressions ------------------------------------------------------------------------------------------


@cli.group()
def suppressions() -> None:
    """The suppression list: hashed addresses and tokens that get no (marketing) messages."""


VALUE = click.argument("value", metavar="ADDRESS_OR_TOKEN")


def _scope(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """all, marketing or campaign:<id>, refused in one line otherwise."""
    from notifier.ledger import suppressions as sup

    try:
        return None if value is None else sup.check_scope(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@suppressions.command("list")
@click.option("--reason", help="Only entries with this reason (bounced, complained, unsubscribed, manual, ...).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def suppressions_list(c: CliContext, reason: str | None, limit: int, as_json: bool) -> None:
    """The newest entries (hashes only: the list keeps no address)."""
    from notifier.ledger import suppressions as sup
    from notifier.reports import format_table

    with c.sessions()() as s:
        entries = sup.listing(s, reason=reason, limit=limit)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    click.echo(format_table(["hash", "kind", "scope", "reason", "source", "campaign", "since (UTC)"],
                            [[e.digest[:16], e.kind, e.scope, e.reason, e.source, e.campaign_id or "-",
                              f"{e.created_at:%Y-%m-%d %H:%M}"] for e in entries]) if entries else "no suppressions")


@suppressions.command("add")
@VALUE
@click.option("--scope", default="all", show_default=True, callback=_scope, metavar="all|marketing|campaign:ID",
              help="all: no message on its channel from any campaign; marketing: no marketing on any channel; "
                   "campaign:ID: nothing more of that campaign on any channel.")
@click.option("--reason", default="manual", show_default=True)
@pass_ctx
def suppressions_add(c: CliContext, value: str, scope: str, reason: str) -> None:
    """Suppress an address (with an @) or a push token."""
    from notifier.ledger import suppressions as sup
    from notifier.ledger.db import transaction

    kind = sup.kind_of(value)
    with transaction(c.sessions()) as s:
        added = sup.suppress_by_hand(s, kind, value, scope=scope, reason=reason, source="cli", now=datetime.now(UTC))
    click.echo(f"suppressed ({scope}, {reason})" if added else f"already suppressed ({scope})")


@suppressions.command("remove")
@VALUE
@click.option("--scope", callback=_scope, metavar="all|marketing|campaign:ID",
              help="Only this scope (default: every one). Lifting an address lifts its recipient's opt-outs too.")
@pass_ctx
def suppressions_remove(c: CliContext, value: str, scope: str | None) -> None:
    """Lift a suppression (someone fixed their mailbox, or asked to hear from us again)."""
    from notifier.ledger import suppressions as sup
    from notifier.ledger.db import transaction

    with transaction(c.sessions()) as s:
        removed = sup.lift(s, sup.kind_of(value), value, scope)
    if not removed:
        raise UserError("not suppressed: nothing removed")
    click.echo(f"removed {removed} entr{'y' if removed == 1 else 'ies'}")


@suppressions.command("check")
@VALUE
@pass_ctx
def suppressions_check(c: CliContext, value: str) -> None:
    """Exit 0 and print why when the address or token is suppressed; exit 1 when it is not."""
    from notifier.ledger import suppressions as sup

    with c.sessions()() as s:
        entries = sup.find(s, sup.kind_of(value), value)
    if not entries:
        click.echo("not suppressed")
        raise SystemExit(1)
    for e in entries:
        campaign = f" (campaign {e.campaign_id})" if e.campaign_id else ""
        click.echo(f"suppressed ({e.scope}): {e.reason}, from {e.source}{campaign}, "
                   f"since {e.created_at:%Y-%m-%d %H:%M} UTC")


# --- actions -----------------------------------------------------------------------------------------------


@cli.group()
def actions() -> None:
    """Completed actions (playlist_transferred, refund_requested) that make later reminders pointless."""


@actions.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Record actions that no campaign's skip_if uses.")
@click.option("--show", default=20, show_default=True, help="Rejected rows to print.")
@pass_ctx
def actions_import(c: CliContext, file: Path, force: bool, show: int) -> None:
    """Record the actions of a CSV file with columns recipient_id, action and (optional) at; bad rows are
    rejected alone, with their line."""
    from notifier.feedback import record_actions
    from notifier.ledger.db import transaction

    with transaction(c.sessions()) as s:
        recorded, rejected = record_actions(s, _action_rows(file), force=force)
    for r in rejected[:show]:
        click.echo(f"{file}:{r.line}: {r.reason}", err=True)
    if len(rejected) > show:
        click.echo(f"... and {len(rejected) - show} more rejected rows", err=True)
    click.echo(f"{file}: {recorded} actions recorded, {len(rejected)} rejected")


def _action_rows(file: Path) -> Iterator[tuple[int | None, str, str, datetime] | ActionRejection]:
    from notifier.feedback import ActionRejection

    now = datetime.now(UTC)
    try:
        with file.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"recipient_id", "action"} - set(reader.fieldnames or ())
            if missing:
                raise UserError(f"{file}:1: missing column(s) {', '.join(sorted(missing))} "
                                "(expected recipient_id, action and optionally at)")
            for row in reader:
                rid, action, at = ((row.get(k) or "").strip() for k in ("recipient_id", "action", "at"))
                if not rid or not action:
                    yield ActionRejection(reader.line_num, "recipient_id and action are required")
                    continue
                try:
                    yield reader.line_num, rid, action, parse_now(at) if at else now
                except click.BadParameter:
                    yield ActionRejection(reader.line_num, f"at: {at[:40]!r} is not an ISO date-time")
    except UnicodeDecodeError:
        raise UserError(f"{file}: not UTF-8 text") from None


# --- purge -------------------------------------------------------------------------------------------------


@cli.command()
@click.argument("campaign_id")
@click.option("--rows", is_flag=True,
              help="Also delete the campaign's delivery rows and events; its counts stay (also after a purge).")
@NOW
@pass_ctx
def purge(c: CliContext, campaign_id: str, rows: bool, now: str | None) -> None:
    """Delete the personal data of an ended campaign's recipients who are in no other live campaign."""
    from notifier.purge import purge as run_purge

    report = run_purge(c.sessions(), campaign_id, parse_now(now), c.settings.outbox_dir, rows=rows)
    if rows:
        click.echo(f"removed {report.rows} delivery rows of {campaign_id} and their events; its counts are kept")
    if report.earlier:
        return  # its personal data went in an earlier purge
    click.echo(f"purged {campaign_id}: {report.recipients} recipients ({report.emails} emails, {report.names} names, "
               f"{report.tokens} push tokens, their attributes), {report.outbox_files} outbox files; "
               f"{report.kept} recipients kept for other live campaigns; counts and hashed suppressions kept")
