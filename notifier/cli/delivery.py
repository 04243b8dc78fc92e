"""Delivery commands: dispatch, the Celery worker, status, the demo and the emulator."""

from __future__ import annotations

import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from notifier.cli._app import NOW, CliContext, cli, pass_ctx
from notifier.cli._app import parse_now as _parse_now
from notifier.errors import UserError

if TYPE_CHECKING:
    from notifier.dispatch import Dispatcher


@cli.command()
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@NOW
@click.option("--interval", default=30.0, show_default=True, help="Seconds between ticks.")
@pass_ctx
def dispatch(c: CliContext, once: bool, now: str | None, interval: float) -> None:
    """Send what is due: materialize due groups, claim, guard, render, send, record.

    SIGTERM or Ctrl-C stops it cleanly: the batch in flight is sent and recorded, nothing more is claimed, and it
    exits 0 (a second signal stops it at once, like SIGKILL: what it held is recovered as uncertain)."""
    from notifier.wiring import build_dispatcher

    if now is not None and not once:
        raise UserError("--now needs --once (a fixed clock cannot tick)")
    dispatcher = build_dispatcher(c.settings, c.sessions(), simulated_clock=now is not None)
    previous = _stop_on_signals(dispatcher)
    try:
        _dispatch_loop(dispatcher, once, now, interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        dispatcher.close()


def _stop_on_signals(dispatcher: Dispatcher) -> dict[int, Any]:
    """The first SIGTERM or SIGINT asks the dispatcher to stop after the batch in hand; the next one is the
    default again (stop at once)."""
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def stop(signum: int, _frame: Any) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        dispatcher.request_stop()
        click.echo(f"{datetime.now(UTC):%H:%M:%S} {signal.Signals(signum).name}: stopping once the batch in flight "
                   f"is sent and recorded (send it again to stop at once)", err=True)

    for sig in signals:
        signal.signal(sig, stop)
    return previous


def _dispatch_loop(dispatcher: Dispatcher, once: bool, now: str | None, interval: float) -> None:
    from notifier.reports import counts_text

    while not dispatcher.stopping.is_set():
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
            dispatcher.stopping.wait(interval)
            continue
        click.echo(f"{datetime.now(UTC):%H:%M:%S} materialized {report.materialized}, claimed {report.claimed}, "
                   f"{counts_text(report.outcomes, 'nothing due')}")
        if report.held:
            click.echo(f"error: nothing sent: {report.held}", err=True)
        for campaign_id, why in report.refused.items():
            click.echo(f"error: campaign {campaign_id}: nothing sent: {why}", err=True)
        for channel, why in report.blocked.items():
            click.echo(f"error: channel {channel}: nothing sent, its messages wait: {why}", err=True)
        if once:
            if report.held or report.refused or report.blocked:
                sys.exit(2)
            return
        dispatcher.stopping.wait(interval)
    click.echo(f"{datetime.now(UTC):%H:%M:%S} stopped: nothing in flight", err=True)


@cli.command()
@click.option("-Q", "--queues", default="email,push,ticks", show_default=True, help="Queues to consume.")
@click.option("-c", "--concurrency", type=int, default=None, help="Worker processes (default: one per core).")
@click.option("--beat", is_flag=True, help="Also run beat: maintenance and the tick, on schedule (one in a fleet).")
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
    """Messages by wave, channel and state; how many of the plan's are done; why any were skipped, failed or wait;
    and whether the campaign is sending, finished, paused, cancelled or blocked (its copy changed)."""
    from notifier.approval import BLOCKED
    from notifier.ledger.db import transaction
    from notifier.ledger.queries import campaign_of, get_campaign
    from notifier.reports import campaign_status, format_table
    from notifier.words import Words

    with transaction(c.sessions()) as s:
        st = campaign_status(s, campaign_id, c.settings)
        campaign = campaign_of(get_campaign(s, campaign_id))
    if as_json:
        click.echo(json.dumps(st.as_dict(), indent=2))
        return
    words = Words()
    shown = st.next_send_at and st.phase not in ("finished", "blocked")  # a blocked campaign sends nothing then
    nxt = f", next at {st.next_send_at:%Y-%m-%d %H:%M} UTC" if shown else ""
    click.echo(f"{st.campaign_id}: {st.phase}; {st.done:,} of {st.planned:,} messages done ({st.percent}%){nxt}")
    if st.copy is not None and st.copy.blocked:
        click.echo(f"blocked: {BLOCKED}")
        for change in st.copy.changed:
            click.echo(f"  {change}")
        click.echo(f"  approve it: {st.copy.command}")
    for why in st.held:
        click.echo(f"held: nothing is sent: {why}")
    rows = [[words.send(campaign, send) if send != "total" else send, *rest] for send, *rest in st.table_rows()]
    click.echo(format_table(["send", "channel", *st.states], rows))
    sections = (("failed because", [(n, ch, why) for ch, why, n in st.failures]),
                ("waiting because", [(n, ch, words.waiting(why)) for ch, why, n in st.waiting]),
                ("skipped because", [(n, "", words.skipped(why)) for why, n in st.skips.items()]))
    for title, lines in sections:
        if lines:
            click.echo(f"\n{title}:")
            for n, channel, why in lines:
                click.echo(f"  {n:>8}  {channel:<5}  {why}")


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo's database and outbox (default: a new notifier-demo-* folder).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("--transport", type=click.Choice(["outbox", "providers"]), default="outbox", show_default=True,
              help="providers: through the SendGrid and FCM SDKs to a local emulator, with faults switched on.")
@click.option("--dashboard", is_flag=True, help="Serve the dashboard instead: schedule, watch, pause and resume the "
                                               "campaign in a browser, on the simulated clock.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="With --dashboard.")
@click.option("--pace", default=0.25, show_default=True, type=click.FloatRange(0, 10),
              help="With --dashboard: real seconds between two ticks of the simulated clock.")
@pass_ctx
def demo(c: CliContext, directory: Path | None, progress: bool, transport: str, dashboard: bool, port: int,
         pace: float) -> None:
    """Play the whole TikTok Music shutdown campaign on a simulated clock, into a local outbox or the emulator."""
    from notifier.demo import run_dashboard_demo, run_demo

    if dashboard:
        if transport != "outbox":
            raise UserError("--dashboard plays into the local outbox; drop --transport")
        run_dashboard_demo(c.settings, directory, port=port, pace=pace, echo=click.echo)
        return
    run_demo(c.settings, directory, progress=progress, echo=click.echo, transport=transport)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
@click.option("--write-credentials", "credentials", type=click.Path(dir_okay=False, path_type=Path),
              help="First write a service-account JSON whose token_uri is this emulator, and trust its key.")
@click.option("--project", default="notifier-demo", show_default=True, help="project_id in the credentials.")
@click.option("--log", "log", type=click.Choice(["full", "ids"]), default="full", show_default=True,
              help="What to keep of accepted messages: everything, or only their delivery ids (for millions).")
@click.option("--events-url", metavar="URL", help="Post SendGrid Event Webhook batches for accepted mail here.")
@click.option("--events-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM ECDSA P-256 private key to sign events with (default: a new key at every start).")
@click.option("--bounce", default=0.0, show_default=True, help="Share of accepted personalizations that bounce.")
@click.option("--drop", default=0.0, show_default=True, help="Share that SendGrid drops (Bounced Address).")
@click.option("--spam", default=0.0, show_default=True, help="Share delivered and then reported as spam.")
def emulator(host: str, port: int, credentials: Path | None, project: str, log: str, events_url: str | None,
             events_key: Path | None, bounce: float, drop: float, spam: float) -> None:
    """Serve a local SendGrid and FCM API with fault injection until Ctrl-C."""
    from notifier.emulator import EventsConfig, EventsError, EventSigner, serve, write_credentials

    flags = {"url": "--events-url", "bounce": "--bounce", "dropped": "--drop", "spamreport": "--spam",
             "shares": "--bounce/--drop/--spam", "events key": "--events-key"}
    try:
        config = EventsConfig.from_json({"url": events_url, "bounce": bounce, "dropped": drop, "spamreport": spam})
        signer = EventSigner.load(events_key) if events_key is not None else None
    except EventsError as exc:
        raise click.BadParameter(exc.reason, param_hint=flags.get(exc.field, exc.field)) from None
    if credentials is not None:
        write_credentials(credentials, f"http://{host}:{port}/token", project)
        click.echo(f"wrote {credentials}")
    serve(host, port, credentials, log=log, events_config=config, events_signer=signer)
