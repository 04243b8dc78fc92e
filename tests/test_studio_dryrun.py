"""The dry run counts what scheduling and the simulated dispatch then really send; the fast-forward plays any campaign
in a ledger of its own and leaves the live one as it was."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import Campaign, parse_campaign
from notifier.demo import START, SimulatedClock, Simulation
from notifier.eligibility import held_out
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignRow, DeliveryRow, DeliveryState, Recipient, RecipientAction, SendGroup
from notifier.studio import store
from notifier.studio.dryrun import SKIPPED, dry_run, fast_forward
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, DEFAULTS, JOINED, SHIPPED_ID, without_spread

SPEC = without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8"))
CAMPAIGN = parse_campaign(SPEC, source=str(CAMPAIGN_FILE))
LIVE_TABLES = (CampaignRow, SendGroup, DeliveryRow)  # what scheduling and dispatch write


def _audience(add: Callable[..., int], sessions: sessionmaker[Session]) -> None:
    """Every kind of recipient the dry run tells apart."""
    add("jakarta", timezone="Asia/Jakarta", country="ID", locale="id", tokens=["tok-a"])
    add("saopaulo", timezone="America/Sao_Paulo", country="BR", locale="pt")
    add("mexico", timezone="America/Mexico_City", country="MX", locale="es-AR", email=None, tokens=["tok-c"])
    refunded = add("refunded", timezone="Asia/Jakarta", country="ID", locale=None)
    add("chicago", timezone="America/Chicago", country="US", locale="en")  # not one of the campaign's countries
    add("no-channel", timezone="Australia/Sydney", country="AU", email=None, inactive_tokens=["dead"])
    add("late", timezone="Asia/Singapore", country="SG", locale="en", joined_at=START + timedelta(days=20))
    with transaction(sessions) as s:
        s.add(RecipientAction(recipient_seq=refunded, action="refund_requested", at=JOINED))


def _simulate(sessions: sessionmaker[Session], tmp_path: Path, campaign: Campaign = CAMPAIGN,
              spec: str = SPEC) -> Counter[tuple[str, str, str, str]]:
    """Schedule at START and play the demo's simulated clock to the end; (state, send key, locale, channel) counts."""
    from notifier.planner import plan_zone
    from notifier.render import Content

    content = Content.of(campaign, DEFAULTS.templates_dir, DEFAULTS.locales_dir)
    with transaction(sessions) as s:
        queries.schedule(s, campaign, spec, START, content, plan_zone)
    settings = DEFAULTS.with_(transport="outbox", outbox_dir=tmp_path / "outbox", studio_dir=tmp_path / "studio")
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    clock = SimulatedClock(START)
    sim = Simulation(sessions, dispatcher, [])
    try:
        while (wake := sim.step(clock.now())) is not None:
            clock.advance(wake)
    finally:
        dispatcher.close()
    with sessions() as s:
        rows = s.execute(select(DeliveryRow.state, DeliveryRow.send_key, DeliveryRow.locale, DeliveryRow.channel,
                                DeliveryRow.skip_reason)).all()
    return Counter((state if state != DeliveryState.SKIPPED else f"skipped:{reason}", key, locale or "", ch)
                   for state, key, locale, ch, reason in rows)


def test_the_dry_run_counts_what_scheduling_and_the_simulated_dispatch_send(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int], tmp_path: Path) -> None:
    _audience(add_recipient, sessions)
    with sessions() as s:
        dry = dry_run(s, CAMPAIGN, START)
    with sessions() as s:  # it only read
        assert [s.scalar(select(func.count()).select_from(t)) for t in LIVE_TABLES] == [0, 0, 0]
    outcome = _simulate(sessions, tmp_path)
    sent = Counter({(key, locale, ch): n for (state, key, locale, ch), n in outcome.items() if state == "sent"})
    planned = Counter({(r.send_key, r.locale, r.channel): r.messages for r in dry.rows})
    assert planned == sent
    assert sum(planned.values()) == dry.messages == sum(sent.values()) > 0
    assert dry.merged == sum(n for (key, _, _), n in sent.items() if "+" in key) > 0
    assert dry.skipped["action_done"] == sum(n for (state, *_), n in outcome.items() if state == "skipped:action_done")
    assert {state for state, *_ in outcome} <= {"sent", "skipped:action_done"}  # nothing else happened
    assert dry.recipients == 5  # all but chicago (country) and no-channel
    assert {r.locale for r in dry.rows} == {"id", "pt-BR", "es-MX", "en"}  # negotiated as the sender does


def test_the_dry_run_says_why_messages_are_not_planned(sessions: sessionmaker[Session],
                                                       add_recipient: Callable[..., int]) -> None:
    _audience(add_recipient, sessions)
    with sessions() as s:
        dry = dry_run(s, CAMPAIGN, START)
        later = dry_run(s, CAMPAIGN, datetime(2024, 11, 1, tzinfo=UTC))
    waves = 6  # P61D and playlist P30D merge on 28 Sep: 6 messages per recipient and channel
    assert dry.skipped["country"] == waves  # chicago, by email
    assert dry.skipped["no_email"] == waves * 2  # mexico, no-channel
    assert dry.skipped["no_push"] == waves * 3 + 5  # saopaulo, refunded, no-channel; late after joining
    assert dry.skipped["joined_later"] == 2  # late: the 28 Sep message, by email and by push (it has a token)
    assert dry.skipped["joined_later"] > 0 and dry.skipped["merged"] > 0 and dry.skipped["action_done"] > 0
    assert set(dry.skipped) <= set(SKIPPED)
    assert later.skipped["deadline_passed"] > 0 and later.messages < dry.messages
    first = next(r for r in dry.rows if "+" in r.send_key)
    assert first.words == "30 days before Playlist transfer, and 61 days before Refund requests and service closure"
    spans = {z.zone: z for z in dry.zones}
    assert set(spans) == {"Asia/Jakarta", "America/Sao_Paulo", "America/Mexico_City", "Asia/Singapore"}
    jakarta = spans["Asia/Jakarta"]
    assert jakarta.recipients == 2 and jakarta.first is not None and jakarta.last is not None
    assert (jakarta.first.strftime("%Y-%m-%d %H:%M %Z"), jakarta.last.strftime("%Y-%m-%d %H:%M %Z")) == (
        "2024-09-28 10:00 WIB", "2024-11-27 10:00 WIB")


def test_fast_forward_plays_a_file_campaign_in_its_own_ledger(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int], tmp_path: Path) -> None:
    _audience(add_recipient, sessions)
    settings = DEFAULTS.with_(studio_dir=tmp_path / "studio")
    with sessions() as s:
        dry = dry_run(s, CAMPAIGN, START)
    result = fast_forward(settings, sessions, SHIPPED_ID, tmp_path / "ff", start=START)
    assert result.counts["sent"] == dry.messages  # the shipped file has a spread: the same messages, later
    assert result.counts.get("skipped") == dry.skipped["action_done"]
    assert len(result.messages) == dry.messages
    email = next(m for m in result.messages if m.channel == "email" and m.locale == "pt-BR")
    assert email.path.is_file() and email.path.suffix == ".eml" and email.subject
    push = next(m for m in result.messages if m.channel == "push")
    assert push.path.suffix == ".json" and push.subject
    with sessions() as s:  # the live ledger only read
        assert [s.scalar(select(func.count()).select_from(t)) for t in LIVE_TABLES] == [0, 0, 0]
    again = fast_forward(settings, sessions, SHIPPED_ID, tmp_path / "ff", start=START, limit=1)
    assert again.counts["sent"] < result.counts["sent"]  # a fresh ledger, one recipient


def test_fast_forward_plays_a_stored_campaigns_latest_version(sessions: sessionmaker[Session],
                                                             add_recipient: Callable[..., int], tmp_path: Path) -> None:
    _audience(add_recipient, sessions)
    settings = DEFAULTS.with_(studio_dir=tmp_path / "studio")
    bundle = store.bundle_from_disk(settings, SHIPPED_ID)
    yaml_path = f"campaigns/{SHIPPED_ID}.yaml"
    bundle[yaml_path] = bundle[yaml_path].replace(b"waves: [P61D, P30D, P7D, P1D]", b"waves: [P61D, P30D, P7D]")
    with transaction(sessions) as s:
        store.save_version(s, SHIPPED_ID, bundle, now=START)
    result = fast_forward(settings, sessions, SHIPPED_ID, tmp_path / "ff", start=START)
    keys = {m.send_key for m in result.messages}
    assert "refund@P7D" in keys and "refund@P1D" not in keys


def test_the_studio_bench_smoke_run_prints_its_summary(tmp_path: Path) -> None:
    """bench/studio.py end to end at 2,000 recipients on SQLite: the harness works (speed: --recipients 1000000)."""
    import re
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, "bench/studio.py", "--recipients", "2000"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"studio: recipients=2000 upload_s=[\d.]+ upload_peak_mib=\d+ import_s=[\d.]+ "
                        r"import_peak_mib=\d+ dry_run_s=[\d.]+ count_s=[\d.]+ planner_per_recipient_s=[\d.]+", last)
    assert "studio upload: " in result.stdout and "(done, " in result.stdout


# A marketing variant of the shipped campaign with the audience rules: a condition on the audience, one on the refund
# deadline (only paying subscribers can ask for one), and a fifth of the audience held out.
RULES_SPEC = (SPEC.replace("category: service", "category: marketing", 1)
              .replace("  countries: [ID, BR, AU, SG, MX]\n",
                       "  countries: [ID, BR, AU, SG, MX]\n  where: 'plan != \"closed\"'\n  holdout: 20%\n", 1)
              .replace("    skip_if: refund_requested\n", "    skip_if: refund_requested\n"
                       "    where: 'plan in [\"premium\", \"family\"] or paid == true'\n", 1))
RULES = parse_campaign(RULES_SPEC, source=str(CAMPAIGN_FILE))


def test_the_dry_run_counts_what_is_sent_with_conditions_and_a_holdout(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int], tmp_path: Path) -> None:
    assert RULES.where is not None and RULES.holdout == 2000 and RULES.deadline("refund").where is not None
    zones = ("Asia/Jakarta", "America/Sao_Paulo", "Australia/Sydney", "America/Mexico_City")
    plans = ("free", "premium", "family", "closed", None)
    for i in range(60):
        attributes = {k: v for k, v in (("plan", plans[i % 5]), ("paid", "yes" if i % 7 == 0 else None)) if v}
        add_recipient(f"r{i:02d}", timezone=zones[i % 4], country=("ID", "BR", "AU", "MX", "US")[i % 5],
                      tokens=[f"t{i}"] if i % 3 else [], attributes=attributes)
    with sessions() as s:
        dry = dry_run(s, RULES, START)
    outcome = _simulate(sessions, tmp_path, RULES, RULES_SPEC)
    sent = Counter({(key, locale, ch): n for (state, key, locale, ch), n in outcome.items() if state == "sent"})
    planned = Counter({(r.send_key, r.locale, r.channel): r.messages for r in dry.rows})
    assert planned == sent and sum(sent.values()) > 0
    for reason in ("condition", "holdout", "deadline_condition", "country"):
        assert dry.skipped.get(reason), reason  # each rule left someone out
    in_audience = [i for i in range(60) if ("ID", "BR", "AU", "MX", "US")[i % 5] != "US" and plans[i % 5] != "closed"]
    assert dry.matching == len(in_audience)
    with sessions() as s:
        got = set(s.scalars(select(Recipient.id).join(DeliveryRow, DeliveryRow.recipient_seq == Recipient.seq)))
        held = {f"r{i:02d}" for i in in_audience if held_out(RULES, f"r{i:02d}")}
    assert dry.held_out == len(held) > 0
    assert not got & held, "the holdout gets nothing"
    assert {f"r{i:02d}" for i in in_audience} - held == got
