"""The team from the command line: ``notifier people`` (the first admin, invitations, roles, disabling) and
``notifier audit`` (the audit log, filtered, as a table, JSON or CSV, and whether its chain holds). What these
commands change is done by ``cli:<os user>`` in the audit log."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime

import click

from notifier.cli._app import CliContext, cli, pass_ctx
from notifier.errors import UserError

ROLE = click.Choice(["viewer", "editor", "approver", "admin"])


@cli.group()
def people() -> None:
    """People of the team, their roles and their invitations (the dashboard's People page)."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))


def _person_id(c: CliContext, who: str) -> int:
    """A person by id or email."""
    from notifier.team import people as team

    with c.sessions()() as s:
        for m in team.listing(s):
            if who == str(m.id) or who.strip().lower() == m.email:
                return m.id
    raise UserError(f"no such person: {who!r} (notifier people list)")


@people.command("add-admin")
@click.argument("email")
@click.option("--name", required=True, help="Their name, as the dashboard and the audit log show it.")
@click.option("--password-stdin", "from_stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def add_admin(c: CliContext, email: str, name: str, from_stdin: bool) -> None:
    """Add an admin who logs in with EMAIL and the password typed now: how the first person comes to be. From
    then on the dashboard asks for an email address, and NOTIFIER_ADMIN_PASSWORD no longer logs in."""
    from notifier.ledger.db import transaction
    from notifier.team import people as team

    with transaction(c.sessions()) as s:
        member = team.add_admin(s, email, name, _password(from_stdin), datetime.now(UTC))
    click.echo(f"added {member.email} (person {member.id}) as admin: log in at {c.settings.public_url}/login")


@people.command("invite")
@click.argument("email")
@click.option("--name", required=True)
@click.option("--role", type=ROLE, default="editor", show_default=True)
@pass_ctx
def invite(c: CliContext, email: str, name: str, role: str) -> None:
    """Invite someone: prints their one-time link (valid 7 days, shown only now)."""
    from notifier.ledger.db import transaction
    from notifier.team import people as team

    with transaction(c.sessions()) as s:
        member, token = team.invite(s, email, name, role, datetime.now(UTC))
    click.echo(f"invited {member.email} as {member.role}; send them: {team.invite_url(c.settings.public_url, token)}")


@people.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per person and line.")
@pass_ctx
def list_people(c: CliContext, as_json: bool) -> None:
    """Everyone in the team, with their role and state."""
    from notifier.reports import format_table
    from notifier.team import people as team

    with c.sessions()() as s:
        found = team.listing(s)
    if as_json:
        for m in found:
            click.echo(json.dumps(m.as_dict()))
        return
    if not found:
        click.echo("no team yet: notifier people add-admin EMAIL --name NAME")
        return
    click.echo(format_table(["id", "email", "name", "role", "state"],
                            [[str(m.id), m.email, m.name, m.role, m.state] for m in found]))


@people.command("role")
@click.argument("who", metavar="ID_OR_EMAIL")
@click.argument("role", type=ROLE)
@pass_ctx
def set_role(c: CliContext, who: str, role: str) -> None:
    """Give someone another role (their sessions end)."""
    from notifier.ledger.db import transaction
    from notifier.team import people as team

    person_id = _person_id(c, who)
    with transaction(c.sessions()) as s:
        member = team.set_role(s, person_id, role, datetime.now(UTC), None)
    click.echo(f"{member.email} is {member.role}")


def _enabled_command(name: str, enabled: bool, help_text: str) -> None:
    @people.command(name, help=help_text)
    @click.argument("who", metavar="ID_OR_EMAIL")
    @pass_ctx
    def command(c: CliContext, who: str) -> None:
        from notifier.ledger.db import transaction
        from notifier.team import people as team

        person_id = _person_id(c, who)
        with transaction(c.sessions()) as s:
            member = team.set_enabled(s, person_id, enabled, datetime.now(UTC), None)
        click.echo(f"{member.email} is {member.state}")


_enabled_command("disable", False, "Disable someone: their sessions and API tokens stop working at once.")
_enabled_command("enable", True, "Enable someone again.")


@cli.command("audit")
@click.option("--campaign", "campaign_id", metavar="ID", help="Only lines about this campaign.")
@click.option("--user", metavar="WHO", help="Only what this person did (their email, person:<id>, or cli:<name>).")
@click.option("--action", help="Only this action (schedule, approve, edit, login, ...).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="At most this many lines.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, newest first.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV of every matching line (no limit), newest first.")
@click.option("--verify", is_flag=True, help="Only check the chain; exit 1 when a line was removed or changed.")
@pass_ctx
def audit_log(c: CliContext, campaign_id: str | None, user: str | None, action: str | None, limit: int,
              as_json: bool, as_csv: bool, verify: bool) -> None:
    """Who did what, when and from where: logins, edits (with their diff), approvals, schedules, pauses,
    cancels, retries, purges, suppressions, tokens and roles. Newest first."""
    from notifier.ledger import audit
    from notifier.reports import format_table

    if as_json + as_csv + verify > 1:
        raise click.UsageError("--json, --csv and --verify: pick one")
    with c.sessions()() as s:
        if verify:
            check = audit.verify(s)
            if not check.intact:
                click.echo(f"audit log: BROKEN after {check.lines} good lines: {check.problem}")
                sys.exit(1)
            click.echo(f"audit log: {check.lines} lines, chain intact; last hash {check.head}")
            return
        found = audit.entries(s, campaign_id=campaign_id, actor=user, action=action,
                              limit=None if as_csv else limit)
        if as_csv:
            csv.writer(sys.stdout, lineterminator="\n").writerows(audit.csv_rows(found))
            return
        if as_json:
            for e in found:
                click.echo(json.dumps(e.as_dict(), ensure_ascii=False))
            return
        rows = [[str(e.seq), f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor_name, e.address, e.action, e.campaign_id or "",
                 " ".join(f"{k}={v}" for k, v in e.detail.items() if k != "diff")[:80]] for e in found]
    if not rows:
        click.echo("no line matches")
        return
    click.echo(format_table(["#", "UTC", "who", "from", "action", "campaign", "detail"], rows))


@cli.command("api")
@click.argument("method", type=click.Choice(["GET", "POST", "PUT", "PATCH", "DELETE"], case_sensitive=False))
@click.argument("path")
@click.option("--server", envvar="NOTIFIER_SERVER", required=True, metavar="URL",
              help="The notifier serve to talk to (env NOTIFIER_SERVER), e.g. https://notifier.example.com.")
@click.option("--token", envvar="NOTIFIER_TOKEN", required=True, metavar="TOKEN",
              help="Your personal API token (env NOTIFIER_TOKEN; make one on the dashboard's account page).")
@click.option("--data", metavar="JSON|@FILE", help="The request's JSON body, or @file to read it from a file.")
def api_call(method: str, path: str, server: str, token: str, data: str | None) -> None:
    """Call the JSON API of a server as yourself, with your token and its role: notifier api GET
    /api/v1/campaigns/ID/progress. Prints the answer; exits 1 on an HTTP error, with the server's reason."""
    import urllib.error
    import urllib.request
    from pathlib import Path

    if not path.startswith("/"):
        raise click.UsageError("PATH starts with /, e.g. /api/v1/me")
    body = None
    if data is not None:
        body = Path(data[1:]).read_bytes() if data.startswith("@") else data.encode("utf-8")
    request = urllib.request.Request(f"{server.rstrip('/')}{path}", data=body, method=method.upper(), headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json",
        **({"Content-Type": "application/json"} if body is not None else {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # the server the operator named
            click.echo(answer.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        click.echo(exc.read().decode("utf-8", "replace"), err=True)
        raise SystemExit(1) from None
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"cannot reach {server}: {getattr(exc, 'reason', exc)}") from None
