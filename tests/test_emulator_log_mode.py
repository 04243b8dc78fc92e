"""The emulator's ids-only log mode: counts and delivery ids, never a body, an address or a token."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from notifier.channels.base import EmailMessage, PushMessage
from notifier.channels.fcm import FcmPush
from notifier.channels.sendgrid import SendGridEmail
from notifier.emulator import EmulatorState, make_app, trust_credentials, write_credentials
from notifier.emulator.process import run_emulator
from notifier.emulator.state import NO_ID, delivery_id_of
from notifier.events import Outcome

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")

CAMPAIGN = "tiktok-music-shutdown"
SUBJECT, TEXT, HTML = "TikTok Music is closing", "Hello,\nyour playlists ...", "<p>Hello,</p><p>your playlists</p>"
TITLE, BODY = "TikTok Music is closing", "Transfer your playlists before 28 October 2024."


def ledger_ids(delivery_id: int) -> dict[str, str]:
    return {"delivery_id": str(delivery_id), "campaign_id": CAMPAIGN, "send_key": "playlist-transfer@P7D"}


def email(delivery_id: int) -> EmailMessage:
    return EmailMessage(delivery_id, f"user{delivery_id}@example.com", None, SUBJECT, TEXT, HTML, variant="en",
                        tags=(CAMPAIGN,), metadata=ledger_ids(delivery_id))


def push(delivery_id: int, *tokens: str) -> PushMessage:
    return PushMessage(delivery_id, tokens, TITLE, BODY, expires_at=datetime(2024, 10, 27, 17, tzinfo=UTC),
                       collapse_key=f"{CAMPAIGN}:playlist-transfer", metadata=ledger_ids(delivery_id),
                       ttl=timedelta(days=3))


@contextmanager
def serving(state: EmulatorState) -> Iterator[str]:
    """make_app(state) on a free port in a background loop, so the test can look into the state afterwards."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(state), access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def strings_in(value: Any, seen: set[int] | None = None) -> Iterator[str]:
    """Every string reachable from a value through containers and object attributes."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key, seen)
            yield from strings_in(item, seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from strings_in(item, seen)
    elif hasattr(value, "__dict__"):
        yield from strings_in(vars(value), seen)


@pytest.fixture
def ids_emulator(tmp_path: Path) -> Iterator[tuple[EmulatorState, str, Path]]:
    """An in-process emulator in ids mode, with a trusted credentials file for the push channel."""
    state = EmulatorState(log="ids")
    with serving(state) as url:
        credentials = tmp_path / "fcm-credentials.json"
        trust_credentials(state, write_credentials(credentials, f"{url}/token"))
        yield state, url, credentials


def test_ids_mode_counts_what_the_channels_sent_and_keeps_only_their_delivery_ids(
        ids_emulator: tuple[EmulatorState, str, Path]) -> None:
    state, url, credentials = ids_emulator
    emails = [email(i) for i in range(1, 1201)]  # two requests: a thousand personalizations to a request
    pushes = [push(5000 + i, f"token-{i}-a", f"token-{i}-b") for i in range(1, 51)]

    sender = SendGridEmail("SG.test", url, "TikTok Music <no-reply@music.example.com>")
    assert {r.outcome for r in sender.send(emails)} == {Outcome.SENT}
    channel = FcmPush(credentials, url)
    try:
        assert {r.outcome for r in channel.send(pushes)} == {Outcome.SENT}
    finally:
        channel.close()

    stats = get(f"{url}/_emulator/stats")
    assert (stats["log"], stats["emails_accepted"], stats["pushes_accepted"]) == ("ids", 1200, 100)
    assert stats["requests"]["sendgrid"] == {"202": 2}
    assert sorted(state.email_ids) == list(range(1, 1201))
    assert sorted(state.push_ids) == sorted(5000 + i for i in range(1, 51) for _ in "ab")
    assert state.emails == [] and state.pushes == []
    kept = " ".join(strings_in({k: v for k, v in vars(state).items() if k not in ("access_tokens", "public_keys")}))
    for forbidden in ("@example.com", "token-", SUBJECT, TEXT, HTML, TITLE, BODY, CAMPAIGN):
        assert forbidden not in kept


def test_ids_mode_messages_answer_only_the_ids_paged_like_the_full_log(
        ids_emulator: tuple[EmulatorState, str, Path]) -> None:
    _, url, _ = ids_emulator
    SendGridEmail("SG.test", url, "no-reply@music.example.com").send([email(i) for i in (7, 8, 9)])

    page = get(f"{url}/_emulator/messages?since_email=1&limit=1")

    assert page["log"] == "ids"
    assert page["emails"] in ([{"delivery_id": 8}], [{"delivery_id": 7}], [{"delivery_id": 9}])
    assert (page["next_email"], page["total_emails"], page["pushes"]) == (2, 3, [])
    all_ids = sorted(e["delivery_id"] for e in get(f"{url}/_emulator/messages")["emails"])
    assert all_ids == [7, 8, 9]


def test_a_message_without_a_usable_delivery_id_is_counted_with_a_null_id() -> None:
    state = EmulatorState(log="ids")
    state.email_ids.append(delivery_id_of(None))
    state.push_ids.append(delivery_id_of("not-a-number"))

    assert state.email_page(0, None) == [{"delivery_id": None}]
    assert state.push_page(0, None) == [{"delivery_id": None}]
    assert (state.stats()["emails_accepted"], state.stats()["pushes_accepted"]) == (1, 1)
    assert [delivery_id_of(v) for v in ("42", "", "4" * 19, "٤٢", 42)] == [42, NO_ID, NO_ID, NO_ID, NO_ID]


def test_reset_forgets_the_ids_and_keeps_the_mode() -> None:
    state = EmulatorState(log="ids")
    state.email_ids.append(1)
    state.reset()
    assert (state.log, state.emails_accepted) == ("ids", 0)


def test_full_is_the_default_mode_and_an_unknown_mode_is_refused() -> None:
    assert EmulatorState().stats()["log"] == "full"
    with pytest.raises(ValueError, match="full, ids"):
        EmulatorState(log="bodies")


def test_the_emulator_command_takes_the_log_mode(tmp_path: Path) -> None:
    with run_emulator(tmp_path, log="ids") as emulator:
        assert emulator.stats()["log"] == "ids"
