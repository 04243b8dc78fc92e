"""Test sends: seeds kept with the campaign and checked like the audience; a test goes through the real transport,
marked as a test, recorded in test_sends and never in deliveries."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings
from notifier.emulator.process import EmulatorProcess
from notifier.errors import CampaignError, PreviewError, UserError
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignSeed, DeliveryRow, TestSend
from notifier.studio.testsend import Seed, seeds_of, set_seeds, test_send
from tests.conftest import DEFAULTS, SHIPPED_ID, TEST_SECRETS

NOW = datetime(2024, 9, 20, 9, 0, tzinfo=UTC)
MERGED = "playlist-transfer@P30D+refund@P61D"
SEEDS = [Seed("email", "Marketing@Example.COM", "Ana\u202e Lima", "pt-br"), Seed("push", "  phone-token-1  "),
         Seed("email", "qa@bücher.example")]


def test_seeds_are_checked_like_the_audience_and_kept_with_the_campaign(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        set_seeds(s, SHIPPED_ID, SEEDS)
    with sessions() as s:
        kept = seeds_of(s, SHIPPED_ID)
        assert seeds_of(s, "another-campaign") == []
    assert kept == [Seed("email", "Marketing@example.com", "Ana Lima", "pt-BR"), Seed("push", "phone-token-1"),
                    Seed("email", "qa@xn--bcher-kva.example")]
    with transaction(sessions) as s:
        set_seeds(s, SHIPPED_ID, kept[:1])
    with sessions() as s:
        assert seeds_of(s, SHIPPED_ID) == kept[:1]


def test_bad_seeds_are_each_located_and_none_is_stored(sessions: sessionmaker[Session]) -> None:
    bad = [Seed("email", "ok@example.com"), Seed("email", "not-an-address"), Seed("sms", "+15550100"),
           Seed("push", "x" * 2000), Seed("email", "jörg@example.com")]
    with sessions() as s, pytest.raises(CampaignError) as caught:
        set_seeds(s, SHIPPED_ID, bad)
    fields = [p.field for p in caught.value.problems]
    assert fields == ["seeds[1].address", "seeds[2].channel", "seeds[3].address", "seeds[4].address"]
    assert "SMTPUTF8" in caught.value.problems[3].message
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(CampaignSeed)) == 0


def _outbox_settings(tmp_path: Path) -> Settings:
    return DEFAULTS.with_(transport="outbox", outbox_dir=tmp_path / "outbox", studio_dir=tmp_path / "studio")


def test_a_test_send_lands_in_the_outbox_marked_and_never_counted(sessions: sessionmaker[Session],
                                                                   tmp_path: Path) -> None:
    settings = _outbox_settings(tmp_path)
    with transaction(sessions) as s:
        set_seeds(s, SHIPPED_ID, SEEDS)
    with transaction(sessions) as s:
        results = test_send(settings, s, SHIPPED_ID, locale="pt-BR", send_key=MERGED, channel="email", now=NOW)
    assert [(r.address, r.outcome) for r in results] == [("Marketing@example.com", "sent"),
                                                          ("qa@xn--bcher-kva.example", "sent")]
    files = sorted((tmp_path / "outbox" / "email" / SHIPPED_ID).glob("*.eml"))
    assert len(files) == 2 and all(f.name.startswith("-") for f in files)  # never a delivery's file name
    mail = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert str(mail["Subject"]).startswith("[Test] ")
    assert "Marketing@example.com" in str(mail["To"])
    assert "List-Unsubscribe" not in mail  # no delivery to unsubscribe from
    texts = {str(email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["To"]):
             email.message_from_bytes(f.read_bytes(), policy=email.policy.default).get_body(("plain",)).get_content()
             for f in files}
    named = next(t for to, t in texts.items() if "Ana Lima" in to)
    assert "Ana Lima" in named  # the seed's own name, not the sample reader's
    with transaction(sessions) as s:
        [note] = test_send(settings, s, SHIPPED_ID, locale="id", send_key="refund@P1D", channel="push", now=NOW)
    assert note.outcome == "sent"
    doc = json.loads(next((tmp_path / "outbox" / "push" / SHIPPED_ID).glob("*.json")).read_text(encoding="utf-8"))
    assert doc["notification"]["title"].startswith("[Test] ") and doc["tokens"] == ["phone-token-1"]
    assert doc["data"]["test"] == "1" and "delivery_id" not in doc["data"]
    with sessions() as s:
        rows = s.execute(select(TestSend.channel, TestSend.locale, TestSend.send_key, TestSend.outcome)
                         .order_by(TestSend.id)).all()
        assert s.scalar(select(func.count()).select_from(DeliveryRow)) == 0
    assert [tuple(r) for r in rows] == [("email", "pt-BR", MERGED, "sent")] * 2 + [("push", "id", "refund@P1D",
                                                                                     "sent")]


def test_a_test_send_refuses_what_the_campaign_never_sends_and_needs_seeds(sessions: sessionmaker[Session],
                                                                          tmp_path: Path) -> None:
    settings = _outbox_settings(tmp_path)
    with sessions() as s, pytest.raises(UserError, match="no email seeds"):
        test_send(settings, s, SHIPPED_ID, locale="en", send_key=MERGED, channel="email", now=NOW)
    with transaction(sessions) as s:
        set_seeds(s, SHIPPED_ID, SEEDS)
    with sessions() as s, pytest.raises(PreviewError, match="fr"):
        test_send(settings, s, SHIPPED_ID, locale="fr", send_key=MERGED, channel="email", now=NOW)
    with sessions() as s, pytest.raises(PreviewError, match="P5D"):
        test_send(settings, s, SHIPPED_ID, locale="en", send_key="refund@P5D", channel="email", now=NOW)


def test_a_test_send_goes_through_the_providers_to_the_emulator(sessions: sessionmaker[Session],
                                                                fresh_emulator: EmulatorProcess) -> None:
    settings = DEFAULTS.with_(transport="providers", sendgrid_api_key="SG.test", sendgrid_host=fresh_emulator.url,
                              google_credentials=fresh_emulator.credentials, fcm_endpoint=fresh_emulator.url,
                              **TEST_SECRETS)
    with transaction(sessions) as s:
        set_seeds(s, SHIPPED_ID, SEEDS)
    with transaction(sessions) as s:
        mails = test_send(settings, s, SHIPPED_ID, locale="es-MX", send_key="refund@P7D", channel="email", now=NOW)
        [note] = test_send(settings, s, SHIPPED_ID, locale="en", send_key=MERGED, channel="push", now=NOW)
    assert [r.outcome for r in [*mails, note]] == ["sent"] * 3
    accepted = list(fresh_emulator.messages())
    emails = [entry for kind, entry in accepted if kind == "email"]
    pushes = [entry for kind, entry in accepted if kind == "push"]
    assert sorted(m["to"][0] for m in emails) == ["Marketing@example.com", "qa@xn--bcher-kva.example"]
    assert all(m["subject"].startswith("[Test] ") for m in emails)
    assert all(m["custom_args"] == {"campaign_id": SHIPPED_ID, "send_key": "refund@P7D", "test": "1"} for m in emails)
    assert {m["message_id"] for m in emails} == {r.provider_message_id for r in mails}
    [push] = pushes
    assert push["token"] == "phone-token-1" and push["notification"]["title"].startswith("[Test] ")
    assert push["data"]["test"] == "1" and push["name"] == note.provider_message_id
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(TestSend).where(TestSend.outcome == "sent")) == 3
        assert s.scalar(select(func.count()).select_from(DeliveryRow)) == 0
