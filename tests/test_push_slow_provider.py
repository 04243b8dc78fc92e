"""A slow push provider loses nothing: every push waits its turn and goes out once, none is skipped as uncertain.

FCM answering in 3 s is an everyday slowness, not a fault. With the real FCM channel (firebase-admin's requests on
the pooled aiohttp session) against the emulator in its own process, the real Dispatcher and the ledger on SQLite and
PostgreSQL, a push-only campaign with ``on_uncertain: skip`` (the marketing default, so any request flagged uncertain
is lost for good) goes out to every recipient exactly once. Before the channel had one gate, each 100-message slice
had its own, 5 × 64 requests raced for 64 pooled connections, and the 10 s total timeout (``NOTIFIER_HTTP_TIMEOUT``,
the default these settings keep) ran out while requests waited for a connection: 389 to 395 of 1,000 pushes were
skipped (195 to 200 of 500).

``NOTIFIER_SLOW_PUSH_MESSAGES`` sets the number of recipients (default 500, about 25 s per ledger; 1,000: 50 s).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings
from notifier.emulator.process import EmulatorProcess
from notifier.ledger import queries
from notifier.ledger.models import DeliveryRow
from notifier.reports import audit
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, TEST_SECRETS, without_spread

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")

MESSAGES = int(os.environ.get("NOTIFIER_SLOW_PUSH_MESSAGES", "500"))
LATENCY_MS = 3000  # FCM's answer to every request
SCHEDULED = datetime(2024, 9, 27, 12, 0, tzinfo=UTC)  # before anyone's first send
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 28 Sep, 10:00 in Jakarta (UTC+7)
CAMPAIGN_ID = "tiktok-music-shutdown"

AddRecipient = Callable[..., int]
Schedule = Callable[..., queries.ScheduleResult]


def test_a_slow_push_provider_sends_every_push_once_and_skips_none_as_uncertain(
        sessions: sessionmaker[Session], add_recipient: AddRecipient, schedule_campaign: Schedule,
        fresh_emulator: EmulatorProcess) -> None:
    for i in range(MESSAGES):
        add_recipient(f"r{i:05}", email=None, tokens=[f"phone-{i:05}"])
    spec = without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8"))  # ticks at the send's own time
    schedule_campaign(SCHEDULED, text=spec.replace("channels: [email, push]\n", "channels: [push]\n"
                                                                                "on_uncertain: skip\n"))
    fresh_emulator.set_faults({"fcm": {"latency_ms": LATENCY_MS}})
    # Wired as production does, with the defaults: concurrency 64, connect and read timeouts 10 s. Before the fix
    # the push channel took NOTIFIER_HTTP_TIMEOUT (10 s) as aiohttp's total timeout; now only SendGrid reads it.
    settings = Settings(transport="providers", sendgrid_api_key="SG.test", sendgrid_host=fresh_emulator.url,
                        google_credentials=fresh_emulator.credentials, fcm_endpoint=fresh_emulator.url,
                        http_timeout=10.0, **TEST_SECRETS)
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    try:
        report = dispatcher.tick(JAKARTA_FIRST)
    finally:
        dispatcher.close()

    with sessions() as s:
        rows = list(s.scalars(select(DeliveryRow).where(DeliveryRow.channel == "push")))
        result = audit(s, CAMPAIGN_ID, fresh_emulator.messages())
    assert len(rows) == MESSAGES
    outcomes = Counter(f"{r.state}{f' ({r.skip_reason})' if r.skip_reason else ''}{', uncertain' * r.uncertain}"
                       for r in rows)
    assert outcomes == {"sent": MESSAGES}, outcomes
    assert report.outcomes == {"sent": MESSAGES}
    per_delivery = Counter(int(entry["data"]["delivery_id"]) for kind, entry in fresh_emulator.messages()
                           if kind == "push")
    assert per_delivery == dict.fromkeys((r.id for r in rows), 1)  # each push accepted once, none unknown
    assert (result.duplicates, result.missing, result.unexpected) == (0, 0, 0), result
    assert result.sent_rows == result.accepted == {"push": MESSAGES}
    assert fresh_emulator.stats()["requests"]["fcm"] == {"200": MESSAGES}  # one request each, not one retried
