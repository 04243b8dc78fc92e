"""``List-Unsubscribe`` also offers a ``mailto:`` when NOTIFIER_UNSUBSCRIBE_MAILTO is set (in the outbox's files and
in what SendGrid receives), and a mail to it, posted by SendGrid Inbound Parse to the real ``notifier serve``,
unsubscribes exactly as the one-click link does; a forged or absent token changes nothing and is answered alike,
and the server's log holds nothing of the mail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings, load_settings
from notifier.emulator.process import EmulatorProcess
from notifier.errors import ConfigError
from notifier.ledger import suppressions
from notifier.links import unsubscribe_token
from notifier.wiring import build_dispatcher
from tests.conftest import TEST_SECRETS
from tests.unsubscribing import (
    PUBLIC_URL,
    SECRET,
    WAVES,
    OwnContent,
    delivery_id,
    inbound_parse_fields,
    list_unsubscribe,
    outbox_email,
    outcomes,
    own_content,
    post_mail,
    schedule,
    serve_env,
    serving,
    wave_at,
)

SERVICE, OTHER_SERVICE = "svc-closing", "svc-refunds"
MAILTO = "unsubscribe@notify.example.com"
RECEIVED = {"status": "received"}


@pytest.fixture
def content(tmp_path: Path) -> OwnContent:
    return own_content(tmp_path / "content", SERVICE, OTHER_SERVICE)


@pytest.fixture
def settings(tmp_path: Path, content: OwnContent) -> Settings:
    return Settings(outbox_dir=tmp_path / "outbox", templates_dir=content.templates, locales_dir=content.locales,
                    campaigns_dir=content.campaigns, secret_key=SECRET, public_url=PUBLIC_URL,
                    unsubscribe_mailto=MAILTO)


@pytest.fixture
def first_wave(sessions: sessionmaker[Session], add_recipient: Callable[..., int], content: OwnContent,
               settings: Settings) -> None:
    """Ana and Bob, two service campaigns, and their first wave through the outbox."""
    add_recipient("ana", email="ana@example.com", name="Ana Lima", locale="id", tokens=["ana-phone"])
    add_recipient("bob", email="bob@example.com", name="Bob", locale="en", tokens=["bob-phone"])
    now = datetime.now(UTC)
    schedule(sessions, content, SERVICE, "TikTok Music is closing", "service", now)
    schedule(sessions, content, OTHER_SERVICE, "Refunds are open", "service", now)
    assert build_dispatcher(settings, sessions, simulated_clock=True).tick(wave_at("P30D")).outcomes == {"sent": 8}


def uris_of(settings: Settings, sessions: sessionmaker[Session], recipient: str = "ana") -> list[str]:
    message = outbox_email(settings.outbox_dir, SERVICE, delivery_id(sessions, SERVICE, recipient, "P30D"))
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return list_unsubscribe(message["List-Unsubscribe"])


def token_of(settings: Settings, sessions: sessionmaker[Session], recipient: str = "ana") -> str:
    return unsubscribe_token(SECRET, delivery_id(sessions, SERVICE, recipient, "P30D"), issued=wave_at("P30D").date())


def expected_uris(token: str) -> list[str]:
    return [f"{PUBLIC_URL}/u/{token}", f"mailto:{MAILTO}?subject=unsubscribe%20{token}"]


def everything_sent_but_anas_later_service_waves(sessions: sessionmaker[Session]) -> None:
    stopped, sent = ("skipped", "suppressed"), ("sent", None)
    assert outcomes(sessions, SERVICE) == {
        (r, w, c): stopped if r == "ana" and w != WAVES[0] else sent
        for r in ("ana", "bob") for w in WAVES for c in ("email", "push")}
    assert set(outcomes(sessions, OTHER_SERVICE).values()) == {sent}


# --- the header --------------------------------------------------------------------------------------------


def test_the_outbox_email_offers_the_link_then_the_mailto_with_the_same_token(
        sessions: sessionmaker[Session], settings: Settings, first_wave: None) -> None:
    assert uris_of(settings, sessions) == expected_uris(token_of(settings, sessions))


def test_without_an_unsubscribe_address_the_header_has_the_link_only(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int], content: OwnContent,
        settings: Settings) -> None:
    add_recipient("ana", email="ana@example.com")
    schedule(sessions, content, SERVICE, "TikTok Music is closing", "service", datetime.now(UTC))
    without = settings.with_(unsubscribe_mailto=None)
    build_dispatcher(without, sessions, simulated_clock=True).tick(wave_at("P30D"))

    assert uris_of(without, sessions) == expected_uris(token_of(without, sessions))[:1]


def test_sendgrid_receives_both_uris_and_the_one_click_header(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int], content: OwnContent,
        fresh_emulator: EmulatorProcess) -> None:
    add_recipient("ana", email="ana@example.com")
    schedule(sessions, content, SERVICE, "TikTok Music is closing", "service", datetime.now(UTC))
    providers = Settings(transport="providers", sendgrid_api_key="SG.test", sendgrid_host=fresh_emulator.url,
                         google_credentials=fresh_emulator.credentials, fcm_endpoint=fresh_emulator.url,
                         templates_dir=content.templates, locales_dir=content.locales, unsubscribe_mailto=MAILTO,
                         **{**TEST_SECRETS, "secret_key": SECRET, "public_url": PUBLIC_URL})
    dispatcher = build_dispatcher(providers, sessions, simulated_clock=True)
    try:
        assert dispatcher.tick(wave_at("P30D")).outcomes == {"sent": 1}
    finally:
        dispatcher.close()

    [mail] = [entry for kind, entry in fresh_emulator.messages() if kind == "email"]
    token = unsubscribe_token(SECRET, delivery_id(sessions, SERVICE, "ana", "P30D"), issued=wave_at("P30D").date())
    assert list_unsubscribe(mail["headers"]["List-Unsubscribe"]) == expected_uris(token)
    assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_unsubscribe_address_is_read_from_the_environment_and_a_malformed_one_refused() -> None:
    assert load_settings({"NOTIFIER_UNSUBSCRIBE_MAILTO": f" {MAILTO} "}).unsubscribe_mailto == MAILTO
    assert load_settings({}).unsubscribe_mailto is None
    for bad in (f"<{MAILTO}>", f"mailto:{MAILTO}", f"{MAILTO}?subject=x", "unsubscribe", f"a b@{MAILTO[12:]}"):
        with pytest.raises(ConfigError, match="NOTIFIER_UNSUBSCRIBE_MAILTO: expected a plain address"):
            load_settings({"NOTIFIER_UNSUBSCRIBE_MAILTO": bad})


# --- the mail, through SendGrid Inbound Parse and notifier serve ---------------------------------------------


def parsed(subject: str) -> dict[str, str]:
    """Inbound Parse's default: the mail taken apart into fields."""
    return inbound_parse_fields(subject)


def raw(subject: str) -> dict[str, str]:
    """"POST the raw, full MIME message": no subject field, the mail whole in ``email``, its Subject RFC 2047-encoded
    (where an ``_`` of the token reads ``=5F``)."""
    fields = {k: v for k, v in inbound_parse_fields(None).items() if k not in ("headers", "text", "attachments")}
    encoded = "=?UTF-8?Q?" + subject.replace("_", "=5F").replace(" ", "_") + "?="
    fields["email"] = (f"From: Ana Lima <ana@example.com>\r\nTo: {MAILTO}\r\nSubject: {encoded}\r\n"
                       "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nunsubscribe\r\n")
    return fields


def forwarded(subject: str) -> dict[str, str]:
    """Someone who forwards the message to the address: the token is in the one-click link the text quotes."""
    return {**inbound_parse_fields("Fwd: TikTok Music is closing"),
            "text": f"Please take me off.\n\n> Unsubscribe: {PUBLIC_URL}/u/{subject.split()[1]}\n"}


@pytest.mark.parametrize("shape", [parsed, raw, forwarded])
def test_a_mail_to_the_mailto_address_unsubscribes_as_the_one_click_link_does(
        sessions: sessionmaker[Session], settings: Settings, content: OwnContent, ledger_url: str,
        first_wave: None, tmp_path: Path, shape: Callable[[str], dict[str, str]]) -> None:
    mailto = urlsplit(uris_of(settings, sessions)[1])
    subject = unquote(parse_qs(mailto.query)["subject"][0])  # what the mail client puts in the subject
    log = tmp_path / "serve.log"

    with serving(serve_env(ledger_url, content, NOTIFIER_UNSUBSCRIBE_MAILTO=MAILTO), log) as base:
        answer = post_mail(base, shape(subject))
        again = post_mail(base, shape(subject))  # SendGrid may post a mail twice
    build_dispatcher(settings, sessions, simulated_clock=True).tick(wave_at("P7D"))
    build_dispatcher(settings, sessions, simulated_clock=True).tick(wave_at("P1D"))

    assert (answer.status_code, answer.json(), again.status_code) == (200, RECEIVED, 200)
    everything_sent_but_anas_later_service_waves(sessions)
    with sessions() as s:
        assert {(e.kind, e.scope, e.source) for e in suppressions.listing(s)} == {
            (kind, f"campaign:{SERVICE}", "unsubscribe-mailto") for kind in ("recipient", "email", "token")}
    served = log.read_text(errors="replace")
    assert "inbound mail: unsubscribed" in served
    for personal in ("ana", "Lima", subject.split()[1]):
        assert personal not in served


def forged_mails(settings: Settings, sessions: sessionmaker[Session]) -> dict[str, dict[str, str]]:
    genuine = token_of(settings, sessions)
    issued = wave_at("P30D").date()
    return {
        "another key": parsed(f"unsubscribe {unsubscribe_token('another-secret-of-enough-length', 1, issued=issued)}"),
        "no delivery": parsed(f"unsubscribe {unsubscribe_token(SECRET, 10**9, issued=issued)}"),
        "expired": parsed(f"unsubscribe {unsubscribe_token(SECRET, 1, issued=issued - timedelta(days=3 * 365))}"),
        "altered": parsed(f"unsubscribe {genuine[:-1]}{'A' if genuine[-1] != 'A' else 'B'}"),
        "no token": parsed("unsubscribe"),
        "no subject": inbound_parse_fields(None),
        "nothing": {},
    }


def test_a_forged_or_absent_token_changes_nothing_and_is_answered_like_a_genuine_one(
        sessions: sessionmaker[Session], settings: Settings, content: OwnContent, ledger_url: str,
        first_wave: None, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = serve_env(ledger_url, content, NOTIFIER_UNSUBSCRIBE_MAILTO=MAILTO, NOTIFIER_WEBHOOK_MAX_BYTES="65536")
    with serving(env, log) as base:
        answers = {why: post_mail(base, fields) for why, fields in forged_mails(settings, sessions).items()}
        not_a_form = httpx.post(f"{base}/webhooks/sendgrid/inbound", json={"subject": "unsubscribe"}, timeout=10)
        too_big = post_mail(base, parsed("unsubscribe " + "x" * 70_000))
    build_dispatcher(settings, sessions, simulated_clock=True).tick(wave_at("P7D"))

    assert {why: (a.status_code, a.json()) for why, a in answers.items()} == {
        why: (200, RECEIVED) for why in answers}
    assert not_a_form.status_code == 400
    assert (too_big.status_code, too_big.json()) == (200, RECEIVED)  # not read, and never posted again
    with sessions() as s:
        assert suppressions.listing(s) == []
    assert outcomes(sessions, SERVICE)["ana", "P7D", "email"] == ("sent", None)
    served = log.read_text(errors="replace")
    assert served.count("inbound mail: no genuine unsubscribe token") == len(answers) - 1
    assert "inbound mail: its token names a delivery that is gone" in served
    assert "ana" not in served and "Traceback" not in served
