"""The ``notifier`` command: parse options, call one function, print. No logic lives here."""

from __future__ import annotations

import json
import logging
import sys
import time as _time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from notifier import __version__
from notifier.config import Settings, load_settings
from notifier.errors import CampaignError, UserError

if TYPE_CHECKING:
    from notifier.audience import RecipientRecord
    from notifier.campaign import Campaign
    from notifier.timeline import TimelineEntry


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date-time such as 2024-10-01T00:00Z") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class CliContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sessions: Any = None

    def renderer(self) -> Any:
        from notifier.render import Renderer

        return Renderer(self.settings.templates_dir, self.settings.locales_dir, default_sender=self.settings.email_from)

    def sessions(self) -> Any:
        if self._sessions is None:
            from notifier.ledger.db import make_engine, session_factory, upgrade

            engine = make_engine(self.settings.database_url)
            upgrade(engine)  # cheap when already at head; a fresh SQLite file just works
            self._sessions = session_factory(engine)
        return self._sessions


pass_ctx = click.make_pass_decorator(CliContext)
NOW = click.option("--now", "now", metavar="ISO", help="Act as if it were this time (UTC if no offset).")


@click.group()
@click.version_option(__version__, "--version", prog_name="notifier", message="%(prog)s %(version)s")
@click.option("--database-url", envvar="NOTIFIER_DATABASE_URL", help="Ledger database (default: sqlite notifier.db).")
@click.option("-v", "--verbose", is_flag=True, help="Log progress (ids and counts only).")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, verbose: bool) -> None:
    """Localized deadline announcements by email and push, in scheduled waves."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # -v is about our progress, not each migration check
    settings = load_settings()
    if database_url:
        settings = settings.with_(database_url=database_url)
    ctx.obj = CliContext(settings)


# --- db ----------------------------------------------------------------------------------------------


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
@NOW
@click.option("--show", default=50, show_default=True, help="Print at most this many rejected rows.")
@pass_ctx
def audience_import(c: CliContext, file: Path, fmt: str | None, now: str | None, show: int) -> None:
    """Import (upsert) recipients from CSV or JSON Lines; rejected rows are reported with line numbers."""
    from notifier.audience import import_audience

    shown = 0

    def on_reject(rejection: Any) -> None:
        nonlocal shown
        shown += 1
        if shown <= show:
            click.echo(f"rejected {rejection}", err=True)

    report = import_audience(c.sessions(), file, now=_parse_now(now), fmt=fmt, on_reject=on_reject)
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
    from notifier.ledger import queries
    from notifier.ledger.db import transaction

    with transaction(c.sessions()) as s:
        queries.record_action(s, recipient_id, action, _parse_now(at), force=force)
    click.echo(f"recorded {action} for {recipient_id}")


# --- campaign ------------------------------------------------------------------------------------------


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


@campaign.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_ctx
def campaign_validate(c: CliContext, files: tuple[Path, ...]) -> None:
    """Check campaign files (or folders of them) and render every message; every problem is reported at once."""
    from notifier.campaign import load_campaigns
    from notifier.errors import CampaignError
    from notifier.review import review

    campaigns = load_campaigns(files)
    renderer = c.renderer()
    problems = [p for camp in campaigns for p in review(camp, renderer)]
    if problems:
        raise CampaignError(problems)
    for camp in campaigns:
        waves = sum(len(d.waves) for d in camp.deadlines)
        click.echo(f"{camp.source}: ok — {camp.id}: {len(camp.deadlines)} deadlines, {waves} waves, "
                   f"locales {', '.join(camp.locales)}, channels {', '.join(camp.channels)}; every message renders")


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

    view = PlanView(_plan_campaign(c, campaign_ref), recipient, _parse_now(now) if now else None)
    if audience_file is not None:
        rows = sorted_entries(view.entries(_file_members(audience_file, recipient)))
        _print_plan(rows, as_json)
        where = str(audience_file)
    else:
        from notifier.ledger.db import transaction
        from notifier.reports import ledger_members

        with transaction(c.sessions()) as s:
            _print_plan(sorted_entries(view.entries(ledger_members(s, recipient))), as_json)
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


def _print_plan(rows: Iterable[TimelineEntry], as_json: bool) -> None:
    if as_json:
        for e in rows:
            click.echo(e.as_json())
        return
    click.echo(f"{'send at (recipient local time)':<32} {'recipient':<12} {'channel':<7} {'wave':<6} deadlines")
    for e in rows:
        click.echo(f"{e.send_at.strftime('%Y-%m-%d %H:%M %z'):<32} {e.recipient:<12} {e.channel:<7} "
                   f"{e.wave:<6} {', '.join(e.deadlines)}")


@campaign.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per campaign and line.")
@pass_ctx
def campaign_list(c: CliContext, as_json: bool) -> None:
    """Every campaign in the ledger: state, phase, messages sent so far and the next send."""
    from notifier.ledger.db import transaction
    from notifier.reports import campaign_lines, format_table

    with transaction(c.sessions()) as s:
        lines = campaign_lines(s)
    if as_json:
        for line in lines:
            click.echo(json.dumps(line.as_dict()))
        return
    if not lines:
        click.echo("no campaign is scheduled (run: notifier campaign schedule FILE)")
        return
    click.echo(format_table(
        ["campaign", "state", "phase", "sent/total", "send groups", "next send (UTC)"],
        [[ln.campaign_id, ln.state, ln.phase, f"{ln.sent}/{ln.total}", f"{ln.groups_done}/{ln.groups}",
          f"{ln.next_send_at:%Y-%m-%d %H:%M}" if ln.next_send_at else "-"] for ln in lines]))


def campaign_file(c: CliContext, ident: str) -> Path:
    path = Path(ident)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return c.settings.campaigns_dir / f"{ident}.yaml"


@campaign.command("schedule")
@click.argument("campaign_ref", metavar="FILE_OR_ID")
@NOW
@pass_ctx
def campaign_schedule(c: CliContext, campaign_ref: str, now: str | None) -> None:
    """Approve the campaign's copy and schedule it; re-run it after editing the file, templates or catalogs."""
    from notifier.campaign import load_campaign
    from notifier.errors import CampaignError
    from notifier.ledger import queries
    from notifier.ledger.db import transaction
    from notifier.render import Content
    from notifier.review import review

    path = campaign_file(c, campaign_ref)
    camp = load_campaign(path)
    problems = review(camp, c.renderer())
    if problems:
        raise CampaignError(problems)
    content = Content.of(camp, c.settings.templates_dir, c.settings.locales_dir)
    with transaction(c.sessions()) as s:
        result = queries.schedule(s, camp, path.read_text(encoding="utf-8"), _parse_now(now), content)
    verb = "scheduled" if result.created else "updated"
    click.echo(f"{verb} {camp.id}: {result.groups} new send groups over {result.zones} time zones; "
               f"approved copy {content.fingerprint[:12]}")
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
    from notifier.reports import format_table, get_member, recipient_messages

    with transaction(c.sessions()) as s:
        member = get_member(s, recipient_id)
        messages = recipient_messages(s, member, campaign_id)
    if as_json:
        click.echo(json.dumps({"recipient": member.id, "timezone": member.timezone, "country": member.country,
                               "messages": [m.as_dict() for m in messages]}, indent=2))
        return
    reach = [ch for ch, ok in (("email", member.email), ("push", member.push_tokens)) if ok]
    click.echo(f"{member.id}: time zone {member.timezone}, country {member.country or '-'}, "
               f"reachable by {', '.join(reach) or 'nothing'}; {len(messages)} messages")
    if messages:
        click.echo(format_table(
            ["campaign", "send", "channel", "state", "when (recipient local time)", "reason"],
            [[m.campaign_id, m.send_key, m.channel, m.state, f"{m.at:%Y-%m-%d %H:%M %z}", m.reason or "-"]
             for m in messages]))


# --- dispatch and status ----------------------------------------------------------------------------------


@cli.command()
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@NOW
@click.option("--interval", default=30.0, show_default=True, help="Seconds between ticks.")
@pass_ctx
def dispatch(c: CliContext, once: bool, now: str | None, interval: float) -> None:
    """Send what is due: materialize due groups, claim, guard, render, send, record."""
    from notifier.reports import counts_text
    from notifier.wiring import build_dispatcher

    if now is not None and not once:
        raise UserError("--now needs --once (a fixed clock cannot tick)")
    dispatcher = build_dispatcher(c.settings, c.sessions())
    while True:
        try:
            report = dispatcher.tick(_parse_now(now))
        except UserError:
            raise  # configuration: one line, and stop
        except Exception as exc:  # anything else: this tick is lost, the ledger is not; a daemon keeps going
            if once:
                raise
            logging.getLogger("notifier.dispatch").exception("tick failed")
            click.echo(f"{datetime.now(UTC):%H:%M:%S} error: the tick failed ({type(exc).__name__}); "
                       f"trying again in {interval:g} s", err=True)
            _time.sleep(interval)
            continue
        click.echo(f"{datetime.now(UTC):%H:%M:%S} materialized {report.materialized}, claimed {report.claimed}, "
                   f"{counts_text(report.outcomes, 'nothing due')}")
        for campaign_id, why in report.refused.items():
            click.echo(f"error: campaign {campaign_id}: nothing sent: {why}", err=True)
        for channel, why in report.blocked.items():
            click.echo(f"error: channel {channel}: nothing sent, its messages wait: {why}", err=True)
        if once:
            if report.refused or report.blocked:
                sys.exit(2)
            return
        _time.sleep(interval)


@cli.command()
@click.option("-Q", "--queues", default="email,push,ticks", show_default=True, help="Queues to consume.")
@click.option("-c", "--concurrency", type=int, default=None, help="Worker processes (default: one per core).")
@click.option("--beat", is_flag=True, help="Also publish the tick (run exactly one of these in a fleet).")
@pass_ctx
def worker(c: CliContext, queues: str, concurrency: int | None, beat: bool) -> None:
    """A Celery worker of the fleet (same as: celery -A celery_app worker -Q email,push,ticks)."""
    from notifier.distributed import check_services

    try:
        import celery_app
    except ImportError:
        raise UserError("celery_app.py is not importable: run notifier worker from the project folder") from None
    check_services(c.settings, celery_app.app)
    argv = ["worker", "-Q", queues, "--loglevel", "INFO"]
    if concurrency:
        argv += ["-c", str(concurrency)]
    if beat:
        argv.append("-B")
    celery_app.app.worker_main(argv)


@cli.command()
@click.argument("campaign_id")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def status(c: CliContext, campaign_id: str, as_json: bool) -> None:
    """Counts of messages by wave, channel and state."""
    from notifier.ledger.db import transaction
    from notifier.reports import campaign_status, format_table

    with transaction(c.sessions()) as s:
        st = campaign_status(s, campaign_id)
    if as_json:
        click.echo(json.dumps(st.as_dict(), indent=2))
        return
    nxt = f", next at {st.next_send_at:%Y-%m-%d %H:%M} UTC" if st.next_send_at and st.phase != "finished" else ""
    click.echo(f"{st.campaign_id}: {st.phase}; {st.groups_done}/{st.groups} send groups due so far{nxt}")
    click.echo(format_table(["send", "channel", *st.states], st.table_rows()))
    for title, rows in (("failed because", st.failures), ("waiting because", st.waiting)):
        if rows:
            click.echo(f"\n{title}:")
            for channel, why, n in rows:
                click.echo(f"  {n:>8}  {channel:<5}  {why}")


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo's database and outbox (default: a new notifier-demo-* folder).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("--transport", type=click.Choice(["outbox", "providers"]), default="outbox", show_default=True,
              help="providers: through the SendGrid and FCM SDKs to a local emulator, with faults switched on.")
@pass_ctx
def demo(c: CliContext, directory: Path | None, progress: bool, transport: str) -> None:
    """Play the whole TikTok Music shutdown campaign on a simulated clock, into a local outbox or the emulator."""
    from notifier.demo import run_demo

    run_demo(c.settings, directory, progress=progress, echo=click.echo, transport=transport)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
@click.option("--write-credentials", "credentials", type=click.Path(dir_okay=False, path_type=Path),
              help="First write a service-account JSON whose token_uri is this emulator, and trust its key.")
@click.option("--project", default="notifier-demo", show_default=True, help="project_id in the credentials.")
def emulator(host: str, port: int, credentials: Path | None, project: str) -> None:
    """Serve a local SendGrid and FCM API with fault injection until Ctrl-C."""
    from notifier.emulator import serve, write_credentials

    if credentials is not None:
        write_credentials(credentials, f"http://{host}:{port}/token", project)
        click.echo(f"wrote {credentials}")
    serve(host, port, credentials)


from notifier import _cli_content  # noqa: E402,F401  (registers preview and i18n on the group above)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except CampaignError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        from notifier.ledger.db import database_error

        message = database_error(exc)
        if message is None:
            raise
        click.echo(f"error: {message}", err=True)
        for note in getattr(exc, "__notes__", []):  # e.g. how many rows an import had stored when it failed
            click.echo(f"  {note}", err=True)
        sys.exit(2)
