"""The emulator's SendGrid Event Webhook: signed batches of events for every accepted personalization, posted to a
receiver of the test's own, checked with the sendgrid SDK's own verifier."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sendgrid
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.mail import Asm, Category, CustomArg, Mail, Personalization, To

from notifier.cli import cli
from notifier.emulator.events import SIGNATURE_HEADER, TIMESTAMP_HEADER, EventsConfig
from notifier.emulator.process import EmulatorProcess, free_port, run_emulator
from notifier.i18n import share_for

FAST = {"interval": 0.05}


class Receiver:
    """A webhook endpoint that records every post and answers the statuses it is given, then 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.posts.append((dict(self.headers), body))
                    status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/sendgrid"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def clear(self, *answers: int) -> None:
        with self.lock:
            self.posts.clear()
            self.answers = list(answers)

    def batches(self) -> list[list[dict[str, Any]]]:
        with self.lock:
            return [json.loads(body) for _, body in self.posts]

    def events(self) -> list[dict[str, Any]]:
        return [event for batch in self.batches() for event in batch]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with run_emulator(tmp_path_factory.mktemp("emulator-events")) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _fresh(emulator: EmulatorProcess, receiver: Receiver) -> None:
    emulator.reset()
    receiver.clear()


def mail_body(n: int, start: int = 0, **extra: Any) -> dict[str, Any]:
    """One request with ``n`` personalizations, each with the ledger's custom_args."""
    return {"personalizations": [{"to": [{"email": f"user{i}@example.com"}],
                                  "custom_args": {"delivery_id": str(i), "campaign_id": "tiktok-music-shutdown"}}
                                 for i in range(start, start + n)],
            "from": {"email": "news@example.com"}, "subject": "TikTok Music is closing",
            "content": [{"type": "text/plain", "value": "Hello"}], **extra}


def send(emulator: EmulatorProcess, body: dict[str, Any]) -> str:
    request = urllib.request.Request(f"{emulator.url}/v3/mail/send", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": "Bearer SG.test", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 202
        return str(answer.headers["X-Message-Id"])


def by_email(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        out.setdefault(event["email"], []).append(event)
    return out


def test_the_public_key_is_base64_der_that_the_sdk_verifier_accepts(emulator: EmulatorProcess) -> None:
    key = emulator.events_public_key()
    loaded = serialization.load_der_public_key(base64.b64decode(key))
    assert isinstance(loaded, ec.EllipticCurvePublicKey) and loaded.curve.name == "secp256r1"
    assert EventWebhook(key).public_key.public_numbers() == loaded.public_numbers()


def test_every_batch_is_signed_over_timestamp_and_body_and_an_altered_body_fails(
        emulator: EmulatorProcess, receiver: Receiver) -> None:
    emulator.set_events({"url": receiver.url, "batch": 3, **FAST})
    send(emulator, mail_body(4))
    emulator.wait_events_posted(8, timeout=10)
    verifier = EventWebhook(emulator.events_public_key())
    assert len(receiver.posts) == 3  # 8 events, at most 3 a batch
    for headers, body in receiver.posts:
        assert headers["Content-Type"] == "application/json"
        timestamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
        assert timestamp.isdigit() and abs(int(timestamp) - time.time()) < 60
        assert verifier.verify_signature(body.decode(), signature, timestamp)
        assert not verifier.verify_signature(body.decode().replace("user", "usex"), signature, timestamp)
        assert not verifier.verify_signature(body.decode(), signature, str(int(timestamp) + 1))


def test_each_personalization_gets_processed_then_delivered_with_its_custom_args_at_the_top_level(
        emulator: EmulatorProcess, receiver: Receiver) -> None:
    emulator.set_events({"url": receiver.url, **FAST})
    message = Mail(from_email="news@example.com", subject="TikTok Music is closing", plain_text_content="Hello")
    for i in (1, 2):
        p = Personalization()
        p.add_to(To(f"user{i}@example.com"))
        p.add_custom_arg(CustomArg("delivery_id", str(40 + i)))
        p.add_custom_arg(CustomArg("campaign_id", "tiktok-music-shutdown"))
        message.add_personalization(p)
    message.category = [Category("tiktok-music-shutdown"), Category("en")]
    message.asm = Asm(1234)
    answer = sendgrid.SendGridAPIClient(api_key="SG.test", host=emulator.url).send(message)
    message_id = answer.headers["X-Message-Id"]
    emulator.wait_events_posted(4, timeout=10)
    events = by_email(receiver.events())
    assert sorted(events) == ["user1@example.com", "user2@example.com"]
    for i, email in enumerate(sorted(events), start=1):
        processed, delivered = events[email]
        assert [processed["event"], delivered["event"]] == ["processed", "delivered"]
        for event in (processed, delivered):
            assert event["delivery_id"] == str(40 + i) and event["campaign_id"] == "tiktok-music-shutdown"
            assert sorted(event["category"]) == ["en", "tiktok-music-shutdown"] and event["asm_group_id"] == 1234
            assert event["sg_message_id"].startswith(f"{message_id}.filterdrecv-")
            assert message_id in event["smtp-id"]
            assert type(event["timestamp"]) is int and abs(event["timestamp"] - time.time()) < 60
        assert processed["sg_message_id"] == delivered["sg_message_id"]
    assert events["user1@example.com"][0]["sg_message_id"] != events["user2@example.com"][0]["sg_message_id"]


def test_a_seed_gives_the_same_outcomes_in_the_shares_asked_for(emulator: EmulatorProcess,
                                                                 receiver: Receiver) -> None:
    outcomes = []
    for _ in range(2):
        emulator.reset()
        receiver.clear()
        emulator.set_events({"url": receiver.url, "bounce": 0.1, "seed": 1, **FAST})
        send(emulator, mail_body(1000))
        status = emulator.events_status()
        emulator.wait_events_posted(status["generated"], timeout=20)
        outcomes.append({email: events[-1]["event"] for email, events in by_email(receiver.events()).items()})
    first, again = outcomes
    assert first == again and len(first) == 1000
    draws = random.Random(1)
    expected = sum(draws.random() < 0.1 for _ in range(1000))  # one draw per personalization, in order
    assert Counter(first.values()) == {"bounce": expected, "delivered": 1000 - expected}
    assert 70 <= expected <= 130


def test_every_outcome_looks_as_sendgrid_sends_it(emulator: EmulatorProcess, receiver: Receiver) -> None:
    emulator.set_events({"url": receiver.url, "bounce": 0.2, "blocked": 0.2, "dropped": 0.2, "spamreport": 0.2,
                         "unsubscribe": 0.1, "seed": 7, **FAST})
    send(emulator, mail_body(500))
    emulator.wait_events_posted(emulator.events_status()["generated"], timeout=20)
    sequences = Counter(tuple(e["event"] for e in events) for events in by_email(receiver.events()).values())
    assert set(sequences) == {("processed", "delivered"), ("processed", "bounce"), ("processed", "dropped"),
                              ("processed", "delivered", "spamreport"), ("processed", "delivered", "unsubscribe")}
    assert sum(sequences.values()) == 500
    bounces = Counter((e["type"], e["status"], e["bounce_classification"]) for e in receiver.events()
                      if e["event"] == "bounce")
    assert set(bounces) == {("bounce", "5.1.1", "Invalid Address"), ("blocked", "4.7.1", "Reputation")}
    hard = next(e for e in receiver.events() if e.get("type") == "bounce")
    assert hard["reason"] == "550 5.1.1 The email account that you tried to reach does not exist"
    assert {e["reason"] for e in receiver.events() if e["event"] == "dropped"} == {"Bounced Address"}


def html_mail(lang: str, n: int, start: int = 0) -> dict[str, Any]:
    """A mail in ``lang`` with two campaign links and an unsubscribe link, as the notifier's html carries them."""
    html = (f'<!doctype html><html lang="{lang}" dir="auto"><body><a href="https://music.tiktok.com/transfer">x</a>'
            '<a href="https://support.tiktok.com/music-closing">y</a>'
            '<a href="https://notifier.example/u/abc.def">unsubscribe</a></body></html>')
    return mail_body(n, start, content=[{"type": "text/plain", "value": "Hello"}, {"type": "text/html", "value": html}])


def test_opens_and_clicks_come_at_the_shares_set_for_the_mails_locale(emulator: EmulatorProcess,
                                                                      receiver: Receiver) -> None:
    emulator.set_events({"url": receiver.url, "seed": 3, "opens": {"id": 0.8, "*": 0.1},
                         "clicks": {"id": 0.5, "*": 0.0}, "machine_opens": 0.2, **FAST})
    send(emulator, html_mail("id", 400))
    send(emulator, html_mail("en", 400, start=400))
    emulator.wait_events_posted(emulator.events_status()["generated"], timeout=20)
    by_lang: dict[str, Counter[str]] = {"id": Counter(), "en": Counter()}
    for email, events in by_email(receiver.events()).items():
        lang = "id" if int(email[4:].split("@")[0]) < 400 else "en"
        assert [e["event"] for e in events][:2] == ["processed", "delivered"]  # opens and clicks come after
        kinds = [("machine_open" if e["sg_machine_open"] else "open") if e["event"] == "open" else e["event"]
                 for e in events[2:]]
        by_lang[lang].update(set(kinds))
        clicks = [e for e in events if e["event"] == "click"]
        assert all(c["url"] != "https://notifier.example/u/abc.def" for c in clicks)  # never the unsubscribe link
        assert all(c["url"].startswith("https://") for c in clicks)
        if clicks:
            assert "open" in kinds  # a click comes from a reader who opened it
    assert 0.7 * 400 < by_lang["id"]["open"] < 0.9 * 400 and 0.03 * 400 < by_lang["en"]["open"] < 0.18 * 400
    assert 0.3 * 0.8 * 400 < by_lang["id"]["click"] < 0.7 * 0.8 * 400 and by_lang["en"]["click"] == 0
    for lang in by_lang:
        assert 0.1 * 400 < by_lang[lang]["machine_open"] < 0.3 * 400


def test_shares_by_locale_fall_back_from_region_to_language_to_any() -> None:
    config = EventsConfig.from_json({"url": None, "opens": {"pt": 0.4, "pt-BR": 0.6, "*": 0.1}})
    assert [share_for(config.opens, loc) for loc in ("pt-BR", "pt-PT", "es-MX", None)] == [0.6, 0.4, 0.1, 0.1]
    assert share_for({"id": 0.5}, "en") == 0.0


def test_sg_event_ids_are_unique_and_url_safe(emulator: EmulatorProcess, receiver: Receiver) -> None:
    emulator.set_events({"url": receiver.url, "spamreport": 0.5, "seed": 3, **FAST})
    send(emulator, mail_body(300))
    send(emulator, mail_body(300, start=300))
    emulator.wait_events_posted(emulator.events_status()["generated"], timeout=20)
    ids = [e["sg_event_id"] for e in receiver.events()]
    assert len(ids) == len(set(ids)) > 1200
    assert all(len(i) == 22 and i.replace("-", "").replace("_", "").isalnum() for i in ids)


def test_a_receiver_that_fails_first_still_gets_every_event_exactly_once(
        emulator: EmulatorProcess, receiver: Receiver) -> None:
    receiver.clear(500, 503)
    emulator.set_events({"url": receiver.url, "batch": 5, **FAST})
    send(emulator, mail_body(10))
    emulator.wait_events_posted(20, timeout=10)
    ids = [e["sg_event_id"] for e in receiver.events()]
    assert len(ids) == 30  # the first batch three times
    assert Counter(Counter(ids).values()) == {3: 5, 1: 15}
    assert receiver.posts[0][1] == receiver.posts[1][1] == receiver.posts[2][1]  # the same batch again
    status = emulator.events_status()
    assert (status["posted_batches"], status["posted_events"], status["failed_posts"]) == (4, 20, 2)


def test_a_receiver_that_is_not_there_gets_the_events_once_it_is(emulator: EmulatorProcess,
                                                                  receiver: Receiver) -> None:
    emulator.set_events({"url": f"http://127.0.0.1:{free_port()}/nobody", **FAST})
    send(emulator, mail_body(3))
    deadline = time.monotonic() + 10
    while emulator.events_status()["failed_posts"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert emulator.events_status()["pending"] == 6
    emulator.set_events({"url": receiver.url, **FAST})
    emulator.wait_events_posted(6, timeout=10)
    assert len(receiver.events()) == 6


def test_a_batch_refused_with_4xx_is_dropped_after_three_tries(emulator: EmulatorProcess,
                                                                receiver: Receiver) -> None:
    receiver.clear(400, 401, 403)
    emulator.set_events({"url": receiver.url, "batch": 2, **FAST})
    send(emulator, mail_body(2))
    emulator.wait_events_posted(2, timeout=10)
    status = emulator.events_status()
    assert (status["failed_posts"], status["dropped_batches"], status["dropped_events"]) == (3, 1, 2)
    assert (status["posted_events"], status["pending"]) == (2, 0)
    assert len(receiver.posts) == 4
    assert emulator.stats()["emails_accepted"] == 2  # and the emulator goes on serving


def test_without_a_url_events_wait_and_reset_forgets_them(emulator: EmulatorProcess, receiver: Receiver) -> None:
    send(emulator, mail_body(2))
    time.sleep(0.3)
    assert emulator.events_status()["pending"] == 4 and not receiver.posts
    emulator.reset()
    assert emulator.events_status()["pending"] == emulator.events_status()["generated"] == 0
    assert emulator.events_status()["url"] is None


@pytest.mark.parametrize(("config", "field"), [
    ({"url": "ftp://127.0.0.1/x"}, "url"),
    ({"url": "127.0.0.1:8000/webhooks"}, "url"),
    ({"url": None, "bounce": 1.5}, "bounce"),
    ({"url": None, "dropped": -0.1}, "dropped"),
    ({"url": None, "spamreport": "0.1"}, "spamreport"),
    ({"url": None, "bounce": 0.6, "blocked": 0.5}, "shares"),
    ({"url": None, "batch": 0}, "batch"),
    ({"url": None, "interval": 0}, "interval"),
    ({"url": None, "seed": "one"}, "seed"),
    ({"url": None, "colour": "blue"}, "colour"),
    ({"bounce": 0.1}, "url"),
    ({"url": None, "opens": 0.3}, "opens"),
    ({"url": None, "opens": {"id": 1.5}}, "opens.id"),
    ({"url": None, "clicks": {"<script>": 0.1}}, "clicks.<script>"),
    ({"url": None, "machine_opens": -1}, "machine_opens"),
])
def test_an_invalid_configuration_is_refused_naming_the_field(emulator: EmulatorProcess, config: dict[str, Any],
                                                              field: str) -> None:
    request = urllib.request.Request(f"{emulator.url}/_emulator/events", data=json.dumps(config).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    answer = json.loads(refused.value.read())
    assert refused.value.code == 400 and answer["field"] == field and answer["error"].startswith(f"{field}: ")
    with pytest.raises(ValueError, match=f"^{field}: "):
        emulator.set_events(config)
    assert emulator.events_status() == {**EventsConfig().as_json(), **{k: 0 for k in (
        "generated", "posted_batches", "posted_events", "failed_posts", "dropped_batches", "dropped_events",
        "pending")}}


@pytest.mark.parametrize(("args", "flag"), [
    (["--bounce", "1.5"], "--bounce"),
    (["--bounce", "0.6", "--spam", "0.6"], "--bounce/--drop/--spam"),
    (["--events-url", "ftp://127.0.0.1/x"], "--events-url"),
    (["--events-key", "RSA"], "--events-key"),
])
def test_the_command_refuses_bad_event_options(tmp_path: Path, args: list[str], flag: str) -> None:
    if "RSA" in args:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path = tmp_path / "rsa.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        args = ["--events-key", str(path)]
    result = CliRunner().invoke(cli, ["emulator", "--port", str(free_port()), *args])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.output or f"Invalid value for {flag}" in result.output


def test_the_command_takes_the_events_url_and_key(tmp_path: Path, receiver: Receiver) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "events.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with run_emulator(tmp_path, events_url=receiver.url, events_key=path) as emulator:
        assert emulator.events_public_key() == base64.b64encode(public).decode()
        send(emulator, mail_body(2))
        emulator.wait_events_posted(4, timeout=10)
        headers, body = receiver.posts[-1]
        assert EventWebhook(emulator.events_public_key()).verify_signature(
            body.decode(), headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER])


def test_ids_mode_makes_events_only_while_a_url_is_set(tmp_path: Path, receiver: Receiver) -> None:
    with run_emulator(tmp_path, log="ids") as emulator:
        send(emulator, mail_body(3))
        assert emulator.events_status()["generated"] == 0
        emulator.set_events({"url": receiver.url, **FAST})
        send(emulator, mail_body(3, start=10))
        emulator.wait_events_posted(6, timeout=10)
        assert {e["delivery_id"] for e in receiver.events()} == {"10", "11", "12"}
        assert [m["delivery_id"] for _, m in emulator.messages()] == [0, 1, 2, 10, 11, 12]
