"""The FCM push channel: the SDK's own requests on a pooled client, and every answer FCM gives, against the emulator."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import pytest
import requests
import requests.adapters
from firebase_admin import messaging
from requests.structures import CaseInsensitiveDict

from notifier.channels.base import PushMessage
from notifier.channels.fcm import (
    ERRORS,
    REFUSALS,
    FcmPush,
    TokenFate,
    TokenResult,
    _aggregate,
    _parse,
    _unanswered,
    analytics_label,
)
from notifier.emulator.process import EmulatorProcess, free_port
from notifier.events import Outcome, SendResult
from tests.conftest import ROOT

# firebase-admin 7.7 deprecates Message.token in favour of Message.fid; FCM registration tokens still go in token.
pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")

CAMPAIGN = "tiktok-music-shutdown"
EXPIRES = datetime(2024, 10, 27, 17, 0, tzinfo=UTC)  # 28 Oct 00:00 in Jakarta
COLLAPSE = f"{CAMPAIGN}:playlist-transfer"
TRANSFER_PAGE = "https://music.tiktok.com/transfer"
COMPARED_HEADERS = ("Authorization", "X-GOOG-API-FORMAT-VERSION", "X-FIREBASE-CLIENT", "x-goog-api-client",
                    "Content-Type")


def ledger_ids(delivery_id: int) -> dict[str, str]:
    return {"delivery_id": str(delivery_id), "campaign_id": CAMPAIGN, "send_key": "playlist-transfer@P7D"}


def push(delivery_id: int, *tokens: str, title: str = "TikTok Music is closing",
         body: str = "Transfer your playlists before 28 October 2024.", tags: tuple[str, ...] = (f"{CAMPAIGN}-P7D",),
         ttl: timedelta = timedelta(days=3), link: str | None = None) -> PushMessage:
    """One recipient's push the way the dispatcher builds it: ledger ids only, TTL and collapse key per deadline."""
    return PushMessage(delivery_id, tokens, title, body, expires_at=EXPIRES, collapse_key=COLLAPSE,
                       metadata=ledger_ids(delivery_id), tags=tags, ttl=ttl, link=link)


@pytest.fixture
def channel(fresh_emulator: EmulatorProcess) -> Iterator[FcmPush]:
    """The push channel on the emulator, authorized by the emulator's credentials file."""
    ch = FcmPush(fresh_emulator.credentials, fresh_emulator.url)
    yield ch
    ch.close()


def fcm_requests(emulator: EmulatorProcess, endpoint: str = "fcm") -> Counter[str]:
    return Counter(emulator.stats()["requests"].get(endpoint, {}))


def logged(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    return [entry for kind, entry in emulator.messages() if kind == "push"]


# --- the same request the SDK sends ------------------------------------------------------------------


class _Capture(BaseHTTPRequestHandler):
    """Stores each request (path, headers, raw body) and answers like FCM does for an accepted message."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the pooled client expects
    server: _CaptureServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append((self.path, CaseInsensitiveDict(self.headers.items()), body))
        reply = b'{"name": "projects/notifier-demo/messages/1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _CaptureServer(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, CaseInsensitiveDict[str], bytes]]


@pytest.fixture
def capture() -> Iterator[_CaptureServer]:
    server = _CaptureServer(("127.0.0.1", 0), _Capture)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class _Recorder(requests.adapters.BaseAdapter):
    """A requests transport that keeps every PreparedRequest and answers 200 without touching the network."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response.url, response.request = 200, request.url or "", request
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        response._content, response.encoding = b'{"name": "x"}', "utf-8"
        return response

    def close(self) -> None:
        pass


@pytest.mark.parametrize("message", [
    push(41, "device-token-1"),
    push(42, "device-token-2", title="Halo Ana — TikTok Music ditutup", body="Sebelum 28 Oktober 2024 ✓", tags=(),
         ttl=timedelta(hours=5, seconds=0.25)),
    push(43, "device-token-3", link=TRANSFER_PAGE),
], ids=["plain", "non-ascii-no-label", "with-link"])
def test_our_request_is_byte_for_byte_what_the_sdk_sends(
        emulator: EmulatorProcess, capture: _CaptureServer, message: PushMessage) -> None:
    ours = FcmPush(emulator.credentials, f"http://127.0.0.1:{capture.server_address[1]}")
    try:
        sdk_message = ours.build(message, message.tokens[0], message.ttl)
        assert [r.outcome for r in ours.send([message])] == [Outcome.SENT]
        service = messaging._get_messaging_service(ours.app)
        assert service is ours._service
        service._fcm_url = "https://fcm.example.invalid/v1/projects/notifier-demo/messages:send"
        recorder = _Recorder()
        service._client.session.mount("https://fcm.example.invalid", recorder)

        assert messaging.send(sdk_message, app=ours.app) == "x"
    finally:
        ours.close()

    [(path, headers, body)] = capture.seen
    [sdk] = recorder.sent
    assert sdk.method == "POST"
    assert path == requests.utils.urlparse(sdk.url).path == "/v1/projects/notifier-demo/messages:send"
    assert body == sdk.body
    assert json.loads(body)["message"]["token"] == message.tokens[0]
    for name in COMPARED_HEADERS:
        assert headers.get(name) == sdk.headers.get(name), name
    assert str(headers["Authorization"]).startswith("Bearer emu-")
    assert headers["Content-Type"] == "application/json"


def test_messages_of_one_variant_share_the_sdks_encoding_and_each_body_is_still_the_sdks_own(
        channel: FcmPush) -> None:
    first, second = push(41, "device-token-1", link=TRANSFER_PAGE), push(977, "tok-a", "tok-b", link=TRANSFER_PAGE)
    other = push(978, "tok-c", title="Another title")
    for m in (first, second, other, first):  # the second and the last come from the kept encoding
        assert channel.bodies(m) == [channel.body(channel.build(m, t, m.ttl)) for t in m.tokens]
    assert len(channel._encoded) == 2


# --- what FCM receives -------------------------------------------------------------------------------


def test_the_push_expires_at_the_deadline_and_collapses_per_deadline(
        fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    results = channel.send([push(7, "ana-phone")])

    [entry] = logged(fresh_emulator)
    assert results == [SendResult.sent(7, entry["name"])]
    assert entry["token"] == "ana-phone"
    assert entry["android"] == {"ttl": "259200s", "priority": "normal", "collapse_key": COLLAPSE,
                                "notification": {"tag": COLLAPSE}}
    assert entry["apns"]["headers"] == {"apns-collapse-id": COLLAPSE, "apns-priority": "5",
                                        "apns-expiration": str(int(EXPIRES.timestamp()))}
    assert entry["apns"]["headers"]["apns-expiration"] == "1730048400"
    assert entry["fcm_options"] == {"analytics_label": f"{CAMPAIGN}-P7D"}
    assert entry["notification"] == {"title": "TikTok Music is closing",
                                     "body": "Transfer your playlists before 28 October 2024."}
    assert entry["data"] == ledger_ids(7)


def test_a_push_with_a_link_carries_it_for_the_app_and_for_the_browser(
        fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    channel.send([push(9, "ana-phone", link=TRANSFER_PAGE), push(10, "budi-phone")])

    by_id = {entry["data"]["delivery_id"]: entry for entry in logged(fresh_emulator)}  # sent concurrently
    linked, plain = by_id["9"], by_id["10"]
    assert linked["data"] == {**ledger_ids(9), "link": TRANSFER_PAGE}  # the app opens data.link on a tap
    assert linked["webpush"] == {"fcm_options": {"link": TRANSFER_PAGE}}  # FCM's web SDK opens it itself
    assert "click_action" not in linked["android"]["notification"]  # an intent the app may not declare: unset
    assert plain["data"] == ledger_ids(10) and plain["webpush"] is None  # no link: the app's home, as before


def test_a_past_deadline_gives_a_zero_ttl_and_a_long_collapse_key_is_cut_to_64(
        fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    message = push(8, "ana-phone", ttl=timedelta(seconds=-5))
    message = PushMessage(**{**message.__dict__, "collapse_key": "c" * 80})

    channel.send([message])

    [entry] = logged(fresh_emulator)
    assert entry["android"]["ttl"] == "0s"
    assert entry["android"]["collapse_key"] == entry["apns"]["headers"]["apns-collapse-id"] == "c" * 64


def test_a_deadline_more_than_four_weeks_away_gets_fcms_longest_ttl(
        fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    channel.send([push(9, "ana-phone", ttl=timedelta(days=29, hours=14))])  # the first wave: 30 days ahead

    [entry] = logged(fresh_emulator)
    assert entry["android"]["ttl"] == "2419200s"  # FCM refuses an android.ttl over 28 days (2,419,200 s)
    assert entry["apns"]["headers"]["apns-expiration"] == str(int(EXPIRES.timestamp()))  # APNs: still the deadline


@pytest.mark.parametrize(("tags", "label"), [
    ((), None),
    ((f"{CAMPAIGN}-P7D",), f"{CAMPAIGN}-P7D"),
    (("first", "last-P30D"), "last-P30D"),  # the last tag, not the first
    (("x", "Frühling:P7D / 10%~ok"), "Fr_hling_P7D___10%~ok"),  # outside [A-Za-z0-9-_.~%]: "_"
    (("x", "a" * 60), "a" * 50),  # at most 50 characters
])
def test_the_analytics_label_is_the_last_tag_sanitized(tags: tuple[str, ...], label: str | None) -> None:
    assert analytics_label(tags) == label


def test_the_analytics_label_goes_out_from_the_last_tag(fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    channel.send([push(1, "tok-a", tags=("spring", "spring:P7D")), push(2, "tok-b", tags=())])

    entries = {e["token"]: e for e in logged(fresh_emulator)}
    assert entries["tok-a"]["fcm_options"] == {"analytics_label": "spring_P7D"}
    assert "analytics_label" not in (entries["tok-b"].get("fcm_options") or {})


# --- FCM's answers, per token and per recipient ------------------------------------------------------


def test_every_token_gets_a_request_and_the_outcomes_aggregate_per_recipient(
        fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    fresh_emulator.set_faults({"fcm": {"unregistered_tokens": ["tok-ana-old", "tok-ben-old"],
                                       "invalid_tokens": ["tok-ana-bad", "tok-ben-bad"],
                                       "sender_mismatch_tokens": ["tok-cid-other", "tok-dan-other"]}})
    messages = [push(1, "tok-ana-phone", "tok-ana-old", "tok-ana-bad"), push(2, "tok-ben-old", "tok-ben-bad"),
                push(3, "tok-cid-other"), push(4, "tok-dan-phone", "tok-dan-other")]

    ana, ben, cid, dan = channel.send(messages)

    names = {e["token"]: e["name"] for e in logged(fresh_emulator)}
    assert set(names) == {"tok-ana-phone", "tok-dan-phone"}
    assert fcm_requests(fresh_emulator) == {"200": 2, "404": 2, "400": 2, "403": 2}
    assert (ana.outcome, ana.provider_message_id, ana.dead_tokens) == (
        Outcome.SENT, names["tok-ana-phone"], ("tok-ana-old", "tok-ana-bad"))
    assert (ben.outcome, ben.dead_tokens) == (Outcome.INVALID_RECIPIENT, ("tok-ben-old", "tok-ben-bad"))
    assert ben.error is not None and "UNREGISTERED" in ben.error and "INVALID_ARGUMENT" in ben.error
    assert (cid.outcome, cid.dead_tokens) == (Outcome.FAILED, ())  # the token may be fine for its own app
    assert cid.error is not None and "SENDER_ID_MISMATCH" in cid.error
    assert (dan.outcome, dan.dead_tokens) == (Outcome.SENT, ())
    every_token = [t for m in messages for t in m.tokens]
    for result in (ana, ben, cid, dan):
        for token in every_token:
            assert token not in (result.error or ""), (result.delivery_id, token)


def test_quota_exceeded_waits_at_least_a_minute(fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    fresh_emulator.set_faults({"fcm": {"429": 1.0, "retry_after": 1}})

    [result] = channel.send([push(1, "tok-a", "tok-b")])

    assert (result.outcome, result.dead_tokens) == (Outcome.RETRY, ())
    assert result.retry_after is not None and result.retry_after >= 60
    assert result.error == "fcm QUOTA_EXCEEDED (429): Quota exceeded for sending messages."  # one line per cause
    assert fcm_requests(fresh_emulator) == {"429": 2}


def test_unavailable_waits_as_long_as_fcm_asks(fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    fresh_emulator.set_faults({"fcm": {"503": 1.0, "retry_after": 2}})

    [result] = channel.send([push(1, "tok-a")])

    assert result.outcome == Outcome.RETRY
    assert result.retry_after is not None and result.retry_after >= 2
    assert result.error is not None and result.error.startswith("fcm UNAVAILABLE (503)")


def test_an_internal_error_is_retried(fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    fresh_emulator.set_faults({"fcm": {"500": 1.0}})

    [result] = channel.send([push(1, "tok-a")])

    assert (result.outcome, result.dead_tokens) == (Outcome.RETRY, ())
    assert result.error is not None and result.error.startswith("fcm INTERNAL (500)")
    assert fcm_requests(fresh_emulator) == {"500": 1}  # one attempt: retries are the ledger's, not the client's


def test_a_dropped_connection_is_retried(fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    fresh_emulator.set_faults({"fcm": {"drop": 1.0}})

    [result] = channel.send([push(1, "tok-a")])

    assert (result.outcome, result.dead_tokens) == (Outcome.RETRY, ())
    assert result.error is not None and result.error.startswith("fcm: ") and "tok-a" not in result.error
    assert result.uncertain  # no answer: FCM may have taken it
    assert fcm_requests(fresh_emulator) == {"drop": 1}


def test_a_batch_of_many_recipients_keeps_their_order(fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    fresh_emulator.set_faults({"fcm": {"unregistered_tokens": [f"tok-{i}" for i in range(0, 120, 3)]}})
    messages = [push(i, f"tok-{i}") for i in range(120)]

    results = channel.send(messages)

    assert [r.delivery_id for r in results] == list(range(120))
    assert [r.outcome for r in results] == [Outcome.INVALID_RECIPIENT if i % 3 == 0 else Outcome.SENT
                                            for i in range(120)]
    assert sorted(e["token"] for e in logged(fresh_emulator)) == sorted(f"tok-{i}" for i in range(120) if i % 3)


# --- a slow or unreachable FCM: waiting is not doubt ------------------------------------------------


@contextmanager
def fcm_channel(emulator: EmulatorProcess, url: str | None = None, **options: Any) -> Iterator[FcmPush]:
    ch = FcmPush(emulator.credentials, url or emulator.url, **options)
    try:
        yield ch
    finally:
        ch.close()


NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


@pytest.mark.parametrize(("exc", "uncertain"), [
    (aiohttp.ConnectionTimeoutError("Connection timeout to host"), False),  # no connection in time: pool, DNS, TLS
    (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), True),  # written, then no answer in time
    (aiohttp.ServerDisconnectedError(), True),  # cut after it was written
    (aiohttp.ClientOSError(104, "Connection reset by peer"), True),
    (aiohttp.ClientPayloadError("Response payload is not completed"), True),
    (TimeoutError(), True),  # a total timeout, whenever it fell: it may have been written
])
def test_a_request_is_uncertain_only_when_it_may_have_been_written(exc: BaseException, uncertain: bool) -> None:
    result = _unanswered(exc, NOT_SENT)

    assert (result.fate, result.uncertain, result.code) == (TokenFate.RETRY, uncertain, "")
    assert result.detail == f"fcm: {'no answer' if uncertain else 'not sent'} ({type(exc).__name__})"


def test_fcm_unreachable_is_a_plain_retry(fresh_emulator: EmulatorProcess) -> None:
    with fcm_channel(fresh_emulator, f"http://127.0.0.1:{free_port()}") as ch:  # nothing listens there
        [result] = ch.send([push(1, "tok-a")])

    assert (result.outcome, result.uncertain) == (Outcome.RETRY, False)
    assert result.error == "fcm: not sent (ClientConnectorError)"


def test_a_request_that_waited_for_a_pooled_connection_past_the_connect_timeout_is_a_plain_retry(
        fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults({"fcm": {"latency_ms": 800}})
    with fcm_channel(fresh_emulator, concurrency=1, connect_timeout=0.2) as ch:
        ch.send([push(1, "tok-warm")])  # makes the pool of one connection and the gate
        ch._gate = asyncio.Semaphore(2)  # as if two requests shared the one connection (the per-slice gates did)

        results = ch.send([push(2, "tok-a"), push(3, "tok-b")])

    assert {(r.outcome, r.uncertain, r.error) for r in results} == {
        (Outcome.SENT, False, None), (Outcome.RETRY, False, "fcm: not sent (ConnectionTimeoutError)")}
    assert len(logged(fresh_emulator)) == 2  # the warm-up and one of the two; the other never left


def test_no_answer_within_the_read_timeout_is_uncertain_since_fcm_may_have_it(
        fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults({"fcm": {"latency_ms": 1000}})
    with fcm_channel(fresh_emulator, read_timeout=0.3) as ch:
        [result] = ch.send([push(1, "tok-a")])

    assert (result.outcome, result.uncertain) == (Outcome.RETRY, True)
    assert result.error == "fcm: no answer (SocketTimeoutError)"


def test_requests_still_waiting_at_the_gate_when_the_batch_runs_out_of_time_never_leave(
        fresh_emulator: EmulatorProcess) -> None:
    """A batch may take at most half the lease (``batch_seconds``): past it, the requests still waiting for the gate
    are not sent, a plain retry, so a slow FCM never keeps rows past their lease (recovered as uncertain then)."""
    fresh_emulator.set_faults({"fcm": {"latency_ms": 700}})
    with fcm_channel(fresh_emulator, concurrency=2, batch_seconds=0.5) as ch:
        results = ch.send([push(i, f"tok-{i}") for i in range(1, 7)])

    sent = [r for r in results if r.outcome == Outcome.SENT]
    waited = [r for r in results if r.outcome != Outcome.SENT]
    assert len(sent) == 2 == len(logged(fresh_emulator))  # the first two; the rest never reached FCM
    assert {(r.outcome, r.uncertain) for r in waited} == {(Outcome.RETRY, False)}
    assert waited[0].error is not None and "half of NOTIFIER_LEASE_SECONDS" in waited[0].error


def test_one_gate_per_channel_so_requests_wait_for_it_not_for_a_pooled_connection(
        fresh_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two calls at once, one request per slice, four requests for two connections, each answered after longer
    than the connect timeout: every request waits at the channel's one gate, none inside the pool."""
    fresh_emulator.set_faults({"fcm": {"latency_ms": 400}})
    monkeypatch.setattr("notifier.channels.fcm.POST_SLICE", 1)
    results: dict[int, list[SendResult]] = {}
    with fcm_channel(fresh_emulator, concurrency=2, connect_timeout=0.1, read_timeout=5) as ch:
        calls = [threading.Thread(target=lambda i=i: results.update({i: ch.send([push(10 * i + 1, f"tok-{i}a"),
                                                                                   push(10 * i + 2, f"tok-{i}b")])}))
                 for i in (1, 2)]
        for call in calls:
            call.start()
        for call in calls:
            call.join(timeout=30)

    assert {(r.delivery_id, r.outcome) for rs in results.values() for r in rs} == {
        (11, Outcome.SENT), (12, Outcome.SENT), (21, Outcome.SENT), (22, Outcome.SENT)}
    assert fcm_requests(fresh_emulator) == {"200": 4}


# --- closing -----------------------------------------------------------------------------------------


def test_close_twice_is_harmless_and_a_send_after_it_is_a_plain_retry(fresh_emulator: EmulatorProcess) -> None:
    ch = FcmPush(fresh_emulator.credentials, fresh_emulator.url)
    assert [r.outcome for r in ch.send([push(1, "tok-a")])] == [Outcome.SENT]

    ch.close()
    ch.close()

    assert ch._loop.is_closed() and not ch._thread.is_alive()
    [late] = ch.send([push(2, "tok-b")])
    assert (late.outcome, late.uncertain, late.error) == (Outcome.RETRY, False, "fcm: the push channel is closed")
    assert len(logged(fresh_emulator)) == 1


CLOSE_SCRIPT = textwrap.dedent("""\
    import gc, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from notifier.channels.base import PushMessage
    from notifier.channels.fcm import FcmPush

    channel = FcmPush(Path(sys.argv[1]), sys.argv[2])
    message = PushMessage(1, ("tok-a", "tok-b"), "title", "body", expires_at=datetime(2030, 1, 1, tzinfo=UTC),
                          collapse_key="c", metadata={"delivery_id": "1"})
    print([r.outcome.value for r in channel.send([message])])
    channel.close()
    channel.close()
    del channel
    gc.collect()
""")


def test_close_leaves_no_unclosed_session_connector_or_loop(fresh_emulator: EmulatorProcess) -> None:
    """Run as ``notifier dispatch --once`` ends: every ResourceWarning shown (the session, its connector and the
    sender loop warn when collected unclosed) and asyncio in debug mode."""
    done = subprocess.run([sys.executable, "-X", "dev", "-W", "always::ResourceWarning", "-W",
                           "ignore::DeprecationWarning", "-c", CLOSE_SCRIPT, str(fresh_emulator.credentials),
                           fresh_emulator.url], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert (done.returncode, done.stdout.strip()) == (0, "['sent']"), done.stderr
    assert "unclosed" not in done.stderr.lower(), done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr


# --- authorization -----------------------------------------------------------------------------------


def test_the_channel_authorizes_through_the_credentials_token_uri_and_reuses_the_token(
        fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    assert json.loads(fresh_emulator.credentials.read_text())["token_uri"] == f"{fresh_emulator.url}/token"

    first = channel.send([push(1, "tok-a")])
    assert fcm_requests(fresh_emulator, "token") == {"200": 1}
    second = channel.send([push(2, "tok-b"), push(3, "tok-c")])

    assert [r.outcome for r in first + second] == [Outcome.SENT] * 3
    assert fcm_requests(fresh_emulator, "token") == {"200": 1}
    assert fcm_requests(fresh_emulator) == {"200": 3}


# --- refused credentials block the channel ---------------------------------------------------------


def assert_blocked(results: Sequence[SendResult], messages: Sequence[PushMessage], reason: str) -> None:
    assert [r.delivery_id for r in results] == [m.delivery_id for m in messages]
    assert {r.outcome for r in results} == {Outcome.BLOCKED}
    for r in results:
        assert r.error is not None and reason in r.error and r.error.endswith("fix GOOGLE_APPLICATION_CREDENTIALS")
        assert r.dead_tokens == () and not r.uncertain
        for m in messages:
            assert not any(t in r.error for t in m.tokens)  # no device token in the error


def test_a_refused_token_exchange_blocks_every_batch_without_a_push(
        fresh_emulator: EmulatorProcess, channel: FcmPush, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_emulator.set_faults({"fcm": {"reject_token_exchange": True}})
    monkeypatch.setattr(channel, "max_batch", 2)
    messages = [push(i, f"tok-{i}") for i in range(1, 6)]  # three batches

    results = channel.send(messages)

    assert_blocked(results, messages, "fcm: the service account's token could not be refreshed (RefreshError: "
                                      "invalid_grant: Invalid JWT Signature.)")
    assert fcm_requests(fresh_emulator, "token") == {"400": 1}  # asked once: the other batches were spared
    assert fcm_requests(fresh_emulator) == {}
    assert logged(fresh_emulator) == []


def test_an_unreachable_token_endpoint_blocks_the_channel(fresh_emulator: EmulatorProcess, tmp_path: Any) -> None:
    info = json.loads(fresh_emulator.credentials.read_text())
    info["token_uri"] = f"http://127.0.0.1:{free_port()}/token"  # nothing listens there
    unreachable = tmp_path / "credentials.json"
    unreachable.write_text(json.dumps(info))
    ch = FcmPush(unreachable, fresh_emulator.url)
    try:
        results = ch.send([push(1, "tok-a")])
    finally:
        ch.close()

    assert_blocked(results, [push(1, "tok-a")], "fcm: the service account's token could not be refreshed (")
    assert fcm_requests(fresh_emulator) == {}


@pytest.mark.parametrize(("fault", "status", "reason"), [
    ("401", "401", "the service account's access token was refused (fcm UNAUTHENTICATED (401): "),
    ("403", "403", "the service account may not send messages for this project (fcm PERMISSION_DENIED (403): "),
])
def test_credentials_refused_for_every_token_even_with_a_fresh_token_block_the_channel(
        fresh_emulator: EmulatorProcess, channel: FcmPush, monkeypatch: pytest.MonkeyPatch, fault: str, status: str,
        reason: str) -> None:
    fresh_emulator.set_faults({"fcm": {fault: 1.0}})
    monkeypatch.setattr(channel, "max_batch", 2)
    messages = [push(1, "tok-a", "tok-b"), push(2, "tok-c"), push(3, "tok-d"), push(4, "tok-e")]

    results = channel.send(messages)

    assert_blocked(results, messages, reason)
    assert fcm_requests(fresh_emulator) == {status: 6}  # the first batch's 3 requests, again with a fresh token
    assert fcm_requests(fresh_emulator, "token") == {"200": 2}
    assert logged(fresh_emulator) == []


def test_a_stale_access_token_is_replaced_and_the_batch_goes_out(
        fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    channel._credential.token = "emu-revoked"  # looks valid to google-auth, FCM refuses it
    channel._credential.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)

    results = channel.send([push(1, "tok-a"), push(2, "tok-b")])

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert fcm_requests(fresh_emulator) == {"401": 2, "200": 2}
    assert fcm_requests(fresh_emulator, "token") == {"200": 1}


def test_a_sender_mismatch_for_every_token_stays_the_tokens_fault(
        fresh_emulator: EmulatorProcess, channel: FcmPush) -> None:
    fresh_emulator.set_faults({"fcm": {"sender_mismatch_tokens": ["tok-a", "tok-b"]}})

    results = channel.send([push(1, "tok-a"), push(2, "tok-b")])

    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]  # a 403, but the tokens' own
    assert fcm_requests(fresh_emulator) == {"403": 2}


# --- the error table (no network) --------------------------------------------------------------------


def _answer(code: str, status: str, message: str = "why", *, detail: bool = True) -> str:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}] if detail else []
    return json.dumps({"error": {"code": 400, "message": message, "status": status, "details": details}})


@pytest.mark.parametrize(("status", "text", "retry_after", "fate", "wait"), [
    (404, _answer("UNREGISTERED", "NOT_FOUND"), None, TokenFate.DEAD, 0),
    (404, _answer("", "NOT_FOUND", detail=False), None, TokenFate.DEAD, 0),
    (400, _answer("INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration "
                  "token"), None, TokenFate.DEAD, 0),
    (400, _answer("INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'"), None,
     TokenFate.PERMANENT, 0),  # the payload is wrong, not the token: keep it
    (403, _answer("SENDER_ID_MISMATCH", "PERMISSION_DENIED"), None, TokenFate.PERMANENT, 0),
    (401, _answer("THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED"), None, TokenFate.PERMANENT, 0),
    (429, _answer("QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"), "5", TokenFate.RETRY, 60),
    (429, _answer("QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"), "300", TokenFate.RETRY, 300),
    (429, _answer("", "RESOURCE_EXHAUSTED", detail=False), None, TokenFate.RETRY, 60),
    (503, _answer("UNAVAILABLE", "UNAVAILABLE"), "2", TokenFate.RETRY, 2),
    (503, _answer("UNAVAILABLE", "UNAVAILABLE"), "Wed, 21 Oct 2026 07:28:00 GMT", TokenFate.RETRY, 0),
    (500, _answer("INTERNAL", "INTERNAL"), None, TokenFate.RETRY, 0),
    (401, _answer("", "UNAUTHENTICATED", detail=False), None, TokenFate.RETRY, 0),
    (502, "<html>Bad Gateway</html>", None, TokenFate.RETRY, 0),  # not FCM's JSON: by the status
    (418, "", None, TokenFate.PERMANENT, 0),
])
def test_each_fcm_answer_decides_the_fate_of_its_token(
        status: int, text: str, retry_after: str | None, fate: TokenFate, wait: float) -> None:
    result = _parse(status, text, retry_after)

    assert (result.fate, result.retry_after) == (fate, wait)
    assert result.detail.startswith("fcm ") and f"({status})" in result.detail


def test_an_accepted_message_keeps_its_name() -> None:
    assert _parse(200, '{"name": "projects/p/messages/0:1"}', None) == TokenResult(
        TokenFate.SENT, name="projects/p/messages/0:1")


def test_the_error_table_knows_the_documented_codes() -> None:
    dead = {code for code, (fate, _) in ERRORS.items() if fate == TokenFate.DEAD}
    retried = {code: wait for code, (fate, wait) in ERRORS.items() if fate == TokenFate.RETRY}
    assert dead == {"UNREGISTERED", "NOT_FOUND", "INVALID_ARGUMENT"}
    assert retried == {"QUOTA_EXCEEDED": 60, "RESOURCE_EXHAUSTED": 60, "UNAVAILABLE": 0, "INTERNAL": 0,
                       "UNAUTHENTICATED": 0}
    assert ERRORS["SENDER_ID_MISMATCH"][0] == TokenFate.PERMANENT
    assert set(REFUSALS) == {"UNAUTHENTICATED", "PERMISSION_DENIED"}  # for every token of a batch: the credentials


def _token(fate: TokenFate, detail: str = "", wait: float = 0.0) -> TokenResult:
    return TokenResult(fate, detail or f"fcm {fate.value}", wait, name="n" if fate == TokenFate.SENT else None)


@pytest.mark.parametrize(("fates", "outcome", "dead", "wait"), [
    ((TokenFate.SENT, TokenFate.DEAD), Outcome.SENT, ("t1",), None),
    ((TokenFate.DEAD, TokenFate.DEAD), Outcome.INVALID_RECIPIENT, ("t0", "t1"), None),
    ((TokenFate.DEAD, TokenFate.RETRY), Outcome.RETRY, ("t0",), 30.0),
    ((TokenFate.DEAD, TokenFate.PERMANENT), Outcome.FAILED, ("t0",), None),
    ((TokenFate.PERMANENT, TokenFate.RETRY), Outcome.RETRY, (), 30.0),
    ((), Outcome.INVALID_RECIPIENT, (), None),
])
def test_a_recipients_outcome_comes_from_all_their_tokens(
        fates: Sequence[TokenFate], outcome: Outcome, dead: tuple[str, ...], wait: float | None) -> None:
    results = [(f"t{i}", _token(f, wait=30.0 if f == TokenFate.RETRY else 0.0)) for i, f in enumerate(fates)]

    result = _aggregate(9, results)

    assert (result.delivery_id, result.outcome, result.dead_tokens, result.retry_after) == (9, outcome, dead, wait)
