"""A campaign's counts, read in one pass over its rows (``campaign_status``), the phase read without counting
(``campaign_phase``) and the campaign list (``campaign_lines``), each against a plain count of every row, on a
ledger whose rows are spread over every state, reason and locale; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignState, DeliveryRow, DeliveryState, SendGroup, SkipReason
from notifier.ledger.states import OPEN_STATES
from notifier.planner import send_channels
from notifier.reports import (
    NO_REASON,
    campaign_lines,
    campaign_phase,
    campaign_status,
    ledger_members,
    recipient_messages,
)
from tests.conftest import CAMPAIGN_FILE

CAMPAIGN = "tiktok-music-shutdown"
SCHEDULED = datetime(2024, 9, 20, tzinfo=UTC)
MIDWAY = datetime(2024, 10, 29, tzinfo=UTC)  # the playlist deadline has passed, the refund one has not
ZONES = ("Asia/Jakarta", "America/Sao_Paulo", "Australia/Sydney", "America/Mexico_City", "Asia/Singapore")
COUNTRY = {"Asia/Jakarta": "ID", "America/Sao_Paulo": "BR", "Australia/Sydney": "AU", "America/Mexico_City": "MX",
           "Asia/Singapore": "SG"}
ERRORS = ("sendgrid: 400 invalid address", "fcm: UNREGISTERED", "sendgrid: 503 try again", None)


@pytest.fixture
def spread(sessions: sessionmaker[Session], add_recipient: Callable[..., int],
           schedule_campaign: Callable[..., queries.ScheduleResult]) -> list[DeliveryRow]:
    """The shipped campaign's rows up to MIDWAY for 40 recipients, then scattered over every state, reason,
    locale and the uncertain flag, at random (a fixed seed); returns them as the ledger holds them."""
    for i in range(40):
        tz = ZONES[i % len(ZONES)]
        add_recipient(f"r{i}", timezone=tz, country=COUNTRY[tz], tokens=[f"token-{i}"] if i % 3 else [])
    schedule_campaign(SCHEDULED)
    with transaction(sessions) as s:
        assert queries.materialize_due(s, MIDWAY, send_channels) > 100
    rng = random.Random(16)
    with transaction(sessions) as s:
        for row in s.scalars(select(DeliveryRow)):
            row.state = rng.choice([s.value for s in DeliveryState])
            row.skip_reason = rng.choice([r.value for r in SkipReason]) \
                if row.state == DeliveryState.SKIPPED else None
            row.last_error = rng.choice(ERRORS) if row.state in ("failed", "pending") else None
            row.uncertain = rng.random() < 0.1
            row.locale = rng.choice(("id", "pt-BR", "es-MX", "en", None))
    with sessions() as s:
        rows = list(s.scalars(select(DeliveryRow)))
        s.expunge_all()
    assert {r.state for r in rows} == {s.value for s in DeliveryState}
    return rows


def first_times(sessions: sessionmaker[Session]) -> dict[str, datetime]:
    with sessions() as s:
        out: dict[str, datetime] = {}
        for key, at in s.execute(select(SendGroup.send_key, SendGroup.send_at)):
            out[key] = min(out.get(key, at), at)
        return out


def test_one_pass_counts_every_row_as_a_row_by_row_count_would(sessions: sessionmaker[Session],
                                                                spread: list[DeliveryRow]) -> None:
    with sessions() as s:
        st = campaign_status(s, CAMPAIGN)
    counts: dict[tuple[str, str], Counter[str]] = {}
    for r in spread:
        c = counts.setdefault((r.send_key, r.channel), Counter())
        c[r.state] += 1
        c["uncertain"] += r.uncertain
    assert {k: Counter(v) for k, v in st.counts.items()} == {k: +v for k, v in counts.items()}
    assert st.skips == Counter(r.skip_reason for r in spread if r.state == "skipped")
    assert list(st.skips) == sorted(st.skips)
    failed = Counter((r.channel, r.last_error or NO_REASON) for r in spread if r.state == "failed")
    waiting = Counter((r.channel, r.last_error) for r in spread if r.state == "pending" and r.last_error)
    assert st.failures == sorted(((ch, why, n) for (ch, why), n in failed.items()), key=lambda f: (-f[2], f[:2]))
    assert st.waiting == sorted(((ch, why, n) for (ch, why), n in waiting.items()), key=lambda f: (-f[2], f[:2]))
    per_locale = Counter((r.send_key, r.locale or "-", r.channel, r.state) for r in spread)
    assert Counter({k[:4]: k[4] for k in st.breakdown}) == per_locale
    assert sum(n for *_, n in st.breakdown) == len(spread)


def test_sends_come_in_the_order_they_go_out(sessions: sessionmaker[Session], spread: list[DeliveryRow]) -> None:
    first = first_times(sessions)
    with sessions() as s:
        st = campaign_status(s, CAMPAIGN)
    sends = [send for send, _ in st.counts]
    assert len(set(sends)) > 1
    assert sends == sorted(sends, key=lambda k: (first[k], k))
    assert [b[0] for b in st.breakdown] == sorted((b[0] for b in st.breakdown), key=lambda k: (first[k], k))


def set_rows(sessions: sessionmaker[Session], **values: object) -> None:
    with transaction(sessions) as s:
        s.execute(update(DeliveryRow).values(**values))


def test_the_phase_without_counting_is_the_phase_of_the_counts(sessions: sessionmaker[Session],
                                                                spread: list[DeliveryRow]) -> None:
    def both() -> tuple[str, str]:
        with sessions() as s:
            return campaign_phase(s, CAMPAIGN), campaign_status(s, CAMPAIGN).phase

    assert both() == ("sending", "sending")  # later sends still to come, and rows open
    set_rows(sessions, state=DeliveryState.SENT)
    assert both() == ("sending", "sending")  # nothing open, but groups not yet materialized
    with transaction(sessions) as s:
        s.execute(update(SendGroup).values(materialized_upto=10_000))
    assert both() == ("finished", "finished")
    for open_state in OPEN_STATES:
        with transaction(sessions) as s:
            one = s.scalars(select(DeliveryRow.id).limit(1)).one()
            s.execute(update(DeliveryRow).where(DeliveryRow.id == one).values(state=open_state))
        assert both() == ("sending", "sending"), open_state
        set_rows(sessions, state=DeliveryState.SENT)
    for state in (CampaignState.PAUSED, CampaignState.CANCELLED):
        with transaction(sessions) as s:
            queries.set_state(s, CAMPAIGN, state, MIDWAY)
        assert both() == (state.value, state.value)


def test_the_campaign_list_counts_as_the_campaign_page_does(sessions: sessionmaker[Session],
                                                             spread: list[DeliveryRow]) -> None:
    with sessions() as s:
        (line,) = campaign_lines(s)
        st = campaign_status(s, CAMPAIGN)
    assert line.sent == sum(r.state == "sent" for r in spread) > 0
    assert line.total == len(spread)
    assert (line.phase, line.groups, line.groups_done) == (st.phase, st.groups, st.groups_done)
    assert line.next_send_at == st.next_send_at is not None


def test_a_campaign_without_rows_counts_nothing(sessions: sessionmaker[Session], add_recipient: Callable[..., int],
                                                schedule_campaign: Callable[..., queries.ScheduleResult]) -> None:
    add_recipient("r1")
    schedule_campaign(SCHEDULED)  # planned, nothing due yet
    with sessions() as s:
        st = campaign_status(s, CAMPAIGN)
        (line,) = campaign_lines(s)
        phase = campaign_phase(s, CAMPAIGN)
    assert (st.counts, st.breakdown, st.skips, st.failures, st.waiting) == ({}, [], {}, [], [])
    assert (line.sent, line.total, line.phase, phase) == (0, 0, "sending", "sending")


# --- the planned total, and one rule for a send's channels -------------------------------------------------------

EMAIL_ONLY_REFUND = CAMPAIGN_FILE.read_text(encoding="utf-8").replace(
    "    skip_if: refund_requested\n", "    skip_if: refund_requested\n    channels: [email]\n")
AFTER_ALL = datetime(2024, 12, 1, tzinfo=UTC)


def planned_by_recipient(sessions: sessionmaker[Session]) -> dict[str, set[tuple[str, str]]]:
    """(send, channel) of every message each recipient's page lists, planned or made."""
    with sessions() as s:
        return {m.id: {(x.send_key, x.channel) for x in recipient_messages(s, m, CAMPAIGN)}
                for m in ledger_members(s)}


def test_the_planned_total_is_every_row_the_campaign_then_makes_and_each_page_lists_them(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int],
        schedule_campaign: Callable[..., queries.ScheduleResult]) -> None:
    """A campaign whose refund is announced by email only (push then plans the playlist's first wave alone), over
    someone on both channels, one by email, one by push, one who joins before the refund's last wave only, and one
    outside the audience: the total shown right after scheduling is the rows the ledger makes, recipient by
    recipient; no page lists a push about the refund."""
    add_recipient("both", timezone="Asia/Jakarta", country="ID", tokens=["t-both"])
    add_recipient("mail", timezone="America/Sao_Paulo", country="BR")
    add_recipient("phone", timezone="Australia/Sydney", country="AU", email=None, tokens=["t-phone"])
    add_recipient("late", timezone="America/Mexico_City", country="MX", joined_at=datetime(2024, 11, 22, tzinfo=UTC))
    add_recipient("away", timezone="Europe/Paris", country="FR", tokens=["t-away"])
    schedule_campaign(SCHEDULED, text=EMAIL_ONLY_REFUND)
    with sessions() as s:
        (line,) = campaign_lines(s)
        planned = campaign_status(s, CAMPAIGN).planned
    pages = planned_by_recipient(sessions)
    assert line.total == 0 and line.planned == planned == sum(len(v) for v in pages.values())
    assert not [key for key, ch in pages["both"] | pages["phone"] if ch == "push" and "refund" in key]
    assert pages["away"] == set() and pages["late"] == {("refund@P1D", "email")}

    with transaction(sessions) as s:
        queries.materialize_due(s, MIDWAY, send_channels)
    with sessions() as s:
        assert campaign_status(s, CAMPAIGN).planned == planned  # part made, part to come: the same total
    with transaction(sessions) as s:
        # every send fell due (the late ones skipped: deadline passed)
        queries.materialize_due(s, AFTER_ALL, send_channels)
    with sessions() as s:
        made = s.scalar(select(func.count()).select_from(DeliveryRow))
        st = campaign_status(s, CAMPAIGN)
    assert made == planned and (st.planned, st.to_come) == (planned, 0)
    assert planned_by_recipient(sessions) == pages


def test_a_live_page_keeps_the_count_still_to_come_a_while_but_not_past_an_import(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int],
        schedule_campaign: Callable[..., queries.ScheduleResult]) -> None:
    add_recipient("r1", tokens=["t1"])
    schedule_campaign(SCHEDULED)
    now = [0.0]
    kept = queries.RowsToCome(send_channels, max_age=30, clock=lambda: now[0])

    def both() -> tuple[int, int]:
        with sessions() as s:
            row = queries.get_campaign(s, CAMPAIGN)
            return kept(s, row), queries.rows_to_come(s, row, send_channels)

    assert both() == (12, 12)  # 6 sends × email and push
    with transaction(sessions) as s:
        queries.deactivate_tokens(s, [(1, "t1")], MIDWAY, "test")
    assert both() == (12, 6)  # kept: the page shows it within max_age
    now[0] = 31
    assert both() == (6, 6)
    add_recipient("r2")  # an import: counted at once
    assert both() == (12, 12)
    with transaction(sessions) as s:
        queries.materialize_due(s, MIDWAY, send_channels)  # groups fell due: counted at once
    assert both()[0] == both()[1] < 12
