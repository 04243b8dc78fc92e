"""The ``notifier`` command group, its shared context and options, and the entry point that turns user errors
into one line."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from notifier import __version__
from notifier.config import Settings, load_settings
from notifier.errors import CampaignError, UserError

if TYPE_CHECKING:
    pass



def parse_now(value: str | None) -> datetime:
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

        return Renderer(self.settings.templates_dir, self.settings.locales_dir, default_sender=self.settings.email_from,
                            studio_dir=self.settings.studio_dir)

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
    from notifier.ledger import audit

    # The audit log's "who" of everything this command does: its operator; a daemon's own work is the system's (a
    # server's requests name their person, the dispatcher's purges nobody's).
    daemon = ctx.invoked_subcommand in ("serve", "dispatch", "worker", "demo", "emulator")
    ctx.with_resource(audit.acting(audit.SYSTEM if daemon else audit.command_line()))


# --- db ----------------------------------------------------------------------------------------------



def campaign_file(c: CliContext, ident: str) -> Path:
    path = Path(ident)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    local = c.settings.campaigns_dir / f"{ident}.yaml"
    if local.is_file():
        return local
    from notifier.ledger.db import transaction
    from notifier.studio import store

    with transaction(c.sessions()) as s:  # a campaign made in the studio: this machine's copy of the ledger's
        store.sync(s, c.settings)
    stored = store.campaign_file(c.settings, ident)
    return stored if stored.is_file() else local



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
