"""The SendGrid email channel: its requests and its answers, through the real SDK against the emulator."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest
from markupsafe import escape

from notifier.channels.base import EmailMessage, result_for
from notifier.channels.sendgrid import REFUSALS, STATUS_ERRORS, SendGridEmail, _error
from notifier.emulator.process import EmulatorProcess
from notifier.emulator.sendgrid import M_AUTH, M_CONTENT_VALUE, M_SENDER
from notifier.errors import ChannelConfigError, PermanentError, ThrottledError, TransientError
from notifier.events import Outcome, SendResult
from notifier.links import unsubscribe_headers
from notifier.render import NAME, REFUND, Personal

SENDER = "TikTok Music <no-reply@music.example.com>"
CAMPAIGN = "tiktok-music-shutdown"
SUBJECT, TEXT, HTML = "TikTok Music is closing", "Hello,\nyour playlists ...", "<p>Hello,</p><p>your playlists ...</p>"

ISSUED = date(2024, 9, 28)


def ledger_ids(delivery_id: int) -> dict[str, str]:
    return {"delivery_id": str(delivery_id), "campaign_id": CAMPAIGN, "send_key": "playlist-transfer@P7D"}


def email(delivery_id: int, *, variant: Any = "en", subject: str = SUBJECT, text: str = TEXT, html: str = HTML,
          name: str | None = None, marketing: bool = False,
          tags: tuple[str, ...] = (CAMPAIGN, f"{CAMPAIGN}:P7D")) -> EmailMessage:
    """One rendered email the way the dispatcher builds it: tags, ledger ids as metadata, unsubscribe headers."""
    return EmailMessage(
        delivery_id, f"user{delivery_id}@example.com", name, subject, text, html, Personal(name), variant=variant,
        tags=tags, metadata=ledger_ids(delivery_id),
        headers=unsubscribe_headers("https://notify.example.com", "s" * 32, delivery_id, issued=ISSUED),
        marketing=marketing)


def sendgrid_channel(emulator: EmulatorProcess, *, key: str = "SG.test", timeout: float = 10.0,
                     asm_group: int | None = None) -> SendGridEmail:
    return SendGridEmail(key, emulator.url, SENDER, timeout=timeout, asm_group=asm_group)


def mail_requests(emulator: EmulatorProcess) -> Counter[str]:
    """Answers the emulator gave to /v3/mail/send, by status (or "drop")."""
    return Counter(emulator.stats()["requests"].get("sendgrid", {}))


def logged(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    return [entry for kind, entry in emulator.messages() if kind == "email"]


def the_result(results: Sequence[SendResult]) -> SendResult:
    assert len(results) == 1
    return results[0]


# --- batching ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("recipients", "requests"), [(1, 1), (999, 1), (1000, 1), (1001, 2)])
def test_recipients_of_one_variant_travel_a_thousand_to_a_request(
        fresh_emulator: EmulatorProcess, recipients: int, requests: int) -> None:
    messages = [email(i) for i in range(1, recipients + 1)]

    results = sendgrid_channel(fresh_emulator).send(messages)

    assert [r.delivery_id for r in results] == [m.delivery_id for m in messages]
    assert {r.outcome for r in results} == {Outcome.SENT}
    assert mail_requests(fresh_emulator) == {"202": requests}
    entries = logged(fresh_emulator)
    assert len(entries) == recipients
    assert sorted(e["to"][0] for e in entries) == sorted(m.to for m in messages)
    assert len({r.provider_message_id for r in results}) == requests  # one X-Message-Id per request


def test_messages_of_different_variants_never_share_a_request(fresh_emulator: EmulatorProcess) -> None:
    messages = [email(i, variant=("id" if i % 2 else "en"), subject=f"subject {'id' if i % 2 else 'en'}")
                for i in range(1, 8)]

    results = sendgrid_channel(fresh_emulator).send(messages)

    assert [r.delivery_id for r in results] == list(range(1, 8))  # in the order given, not per request
    assert mail_requests(fresh_emulator) == {"202": 2}
    subjects_per_request: dict[str, set[str]] = {}
    for entry in logged(fresh_emulator):
        subjects_per_request.setdefault(entry["message_id"], set()).add(entry["subject"])
    assert sorted(subjects_per_request.values(), key=sorted) == [{"subject en"}, {"subject id"}]
    by_id = {r.delivery_id: r.provider_message_id for r in results}
    assert {by_id[i] for i in (1, 3, 5, 7)} != {by_id[i] for i in (2, 4, 6)}


def test_marketing_splits_a_batch(fresh_emulator: EmulatorProcess) -> None:
    sendgrid_channel(fresh_emulator, asm_group=7).send([email(1), email(2, marketing=True)])

    assert mail_requests(fresh_emulator) == {"202": 2}


# --- what each recipient gets ------------------------------------------------------------------------


def test_each_recipient_sees_only_their_own_name_raw_in_text_and_escaped_in_html(
        fresh_emulator: EmulatorProcess) -> None:
    ana = email(1, subject=f"{NAME}, TikTok Music is closing", text=f"Hello {NAME},\n...", html=f"<p>Hello {NAME},</p>",
                name="<b>Ana & Co</b>")
    ben = email(2, subject=ana.subject, text=ana.text, html=ana.html, name="Ben")
    nameless = email(3, subject=ana.subject, text=ana.text, html=ana.html, name=None)

    sendgrid_channel(fresh_emulator).send([ana, ben, nameless])

    assert mail_requests(fresh_emulator) == {"202": 1}
    entries = {e["to"][0]: e for e in logged(fresh_emulator)}
    got = entries[ana.to]
    assert got["subject"] == "<b>Ana & Co</b>, TikTok Music is closing"
    assert got["text"] == "Hello <b>Ana & Co</b>,\n..."
    assert got["html"] == "<p>Hello &lt;b&gt;Ana &amp; Co&lt;/b&gt;,</p>"
    assert (entries[ben.to]["subject"], entries[ben.to]["text"], entries[ben.to]["html"]) == (
        "Ben, TikTok Music is closing", "Hello Ben,\n...", "<p>Hello Ben,</p>")
    for message in (ana, ben):  # the same as filling the variant in process
        assert (entries[message.to]["subject"], entries[message.to]["text"], entries[message.to]["html"]) == \
            message.filled()
    assert entries[nameless.to]["text"] == "Hello ,\n..."
    assert "Ana" not in str(entries[ben.to]) and "Ben" not in str(entries[ana.to])
    assert "None" not in entries[nameless.to]["html"]


def test_metadata_becomes_custom_args_with_the_ledger_ids_and_nothing_personal(fresh_emulator: EmulatorProcess) -> None:
    messages = [email(1, name="Ana Lima"), email(2, name="Ben Ito")]

    sendgrid_channel(fresh_emulator).send(messages)

    entries = {e["to"][0]: e for e in logged(fresh_emulator)}
    for m in messages:
        got = entries[m.to]
        assert got["custom_args"] == ledger_ids(m.delivery_id)
        assert sorted(got["categories"]) == sorted([CAMPAIGN, f"{CAMPAIGN}:P7D"])
        carried = str(got["custom_args"]) + str(got["categories"])
        for other in messages:
            assert other.to not in carried and str(other.to_name) not in carried
            assert other.to.split("@")[0] not in carried


def test_each_recipient_has_their_own_one_click_unsubscribe_headers(fresh_emulator: EmulatorProcess) -> None:
    sendgrid_channel(fresh_emulator).send([email(1), email(2)])

    headers = {e["to"][0]: e["headers"] for e in logged(fresh_emulator)}
    assert headers["user1@example.com"] == unsubscribe_headers("https://notify.example.com", "s" * 32, 1, issued=ISSUED)
    assert headers["user2@example.com"] == unsubscribe_headers("https://notify.example.com", "s" * 32, 2, issued=ISSUED)
    assert headers["user1@example.com"]["List-Unsubscribe"] != headers["user2@example.com"]["List-Unsubscribe"]
    for h in headers.values():
        assert h["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert h["List-Unsubscribe"].startswith("<https://notify.example.com/u/")


@pytest.mark.parametrize(("marketing", "group", "asm"), [
    (False, None, None), (False, 42, None), (True, None, None), (True, 42, {"group_id": 42})])
def test_the_unsubscribe_group_goes_only_on_marketing_mail_when_configured(
        fresh_emulator: EmulatorProcess, marketing: bool, group: int | None, asm: dict[str, int] | None) -> None:
    channel = sendgrid_channel(fresh_emulator, asm_group=group)
    payload = channel.payload([email(1, marketing=marketing)])
    assert payload.get("asm") == ({"group_id": group} if marketing and group is not None else None)

    channel.send([email(1, marketing=marketing)])

    assert [e["asm"] for e in logged(fresh_emulator)] == [asm]


def test_tags_become_categories(fresh_emulator: EmulatorProcess) -> None:
    channel = sendgrid_channel(fresh_emulator)
    categories = channel.payload([email(1, tags=("spring", "spring:P7D"))])["categories"]
    assert sorted(categories) == ["spring", "spring:P7D"]  # the SDK puts each category first: order is SendGrid's
    assert "categories" not in channel.payload([email(1, tags=())])

    channel.send([email(1, tags=("spring", "spring:P7D")), email(2, tags=("autumn",))])

    assert mail_requests(fresh_emulator) == {"202": 2}  # different tags: different requests
    got = {e["to"][0]: sorted(e["categories"]) for e in logged(fresh_emulator)}
    assert got == {"user1@example.com": ["spring", "spring:P7D"], "user2@example.com": ["autumn"]}


# --- SendGrid's answers ------------------------------------------------------------------------------


def test_a_request_sendgrid_rejects_fails_with_sendgrids_own_words(fresh_emulator: EmulatorProcess) -> None:
    result = the_result(sendgrid_channel(fresh_emulator).send([email(1, text="", html="")]))

    assert result.outcome == Outcome.FAILED
    assert result.error is not None and result.error.startswith("sendgrid 400: ")
    assert f"content.0.value: {M_CONTENT_VALUE}" in result.error
    assert mail_requests(fresh_emulator) == {"400": 1}
    assert logged(fresh_emulator) == []


def test_a_malformed_api_key_blocks_the_channel_naming_the_setting(fresh_emulator: EmulatorProcess) -> None:
    result = the_result(sendgrid_channel(fresh_emulator, key="nope").send([email(1)]))

    assert (result.outcome, result.error) == (
        Outcome.BLOCKED, f"sendgrid 401: the API key was refused (request: {M_AUTH}): fix SENDGRID_API_KEY")
    assert mail_requests(fresh_emulator) == {"401": 1}


def test_a_refused_api_key_blocks_every_batch_after_one_request(fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults({"sendgrid": {"reject_api_key": True}})
    messages = [email(i, variant=lang, subject=f"subject {lang}") for i, lang in enumerate(["en", "id", "pt"] * 2, 1)]

    results = sendgrid_channel(fresh_emulator).send(messages)  # three variants: three batches

    assert [r.delivery_id for r in results] == [m.delivery_id for m in messages]
    assert {r.outcome for r in results} == {Outcome.BLOCKED}
    for r in results:
        assert r.error is not None and r.error.startswith("sendgrid 401: the API key was refused")
        assert r.error.endswith("fix SENDGRID_API_KEY")
        assert not r.uncertain and r.retry_after is None
    assert mail_requests(fresh_emulator) == {"401": 1}  # the other two batches were never sent
    assert fresh_emulator.stats()["faults"] == {"sendgrid": {"reject_api_key": 1}}
    assert logged(fresh_emulator) == []


def test_an_unverified_sender_blocks_the_channel_naming_the_sender_setting(fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults({"sendgrid": {"403": 1.0}})

    results = sendgrid_channel(fresh_emulator).send([email(1), email(2, variant="id"), email(3, variant="pt")])

    assert {r.outcome for r in results} == {Outcome.BLOCKED}
    assert results[0].error == (f"sendgrid 403: the sender is not a verified Sender Identity (from: {M_SENDER}): "
                                "fix the campaign's sender.email (or NOTIFIER_EMAIL_FROM)")
    assert mail_requests(fresh_emulator) == {"403": 1}
    for r in results:
        assert "user" not in (r.error or "") and "example.com" not in (r.error or "")  # no recipient in the error


def test_throttling_is_retried_after_the_rate_limit_resets(fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults({"sendgrid": {"429": 1.0, "retry_after": 5}})

    results = sendgrid_channel(fresh_emulator).send([email(1), email(2)])

    assert {r.outcome for r in results} == {Outcome.RETRY}
    for r in results:
        assert r.retry_after is not None and 0 < r.retry_after <= 5 + 1  # X-RateLimit-Reset is whole seconds
        assert r.retry_after >= 5 - 1.5
        assert r.error == "sendgrid 429: request: too many requests"
    assert mail_requests(fresh_emulator) == {"429": 1}


@pytest.mark.parametrize("status", ["500", "503"])
def test_server_errors_are_retried(fresh_emulator: EmulatorProcess, status: str) -> None:
    fresh_emulator.set_faults({"sendgrid": {status: 1.0}})

    result = the_result(sendgrid_channel(fresh_emulator).send([email(1)]))

    assert result.outcome == Outcome.RETRY
    assert result.error is not None and result.error.startswith(f"sendgrid {status}: ")
    assert mail_requests(fresh_emulator) == {status: 1}
    assert logged(fresh_emulator) == []


def test_a_dropped_connection_is_retried(fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults({"sendgrid": {"drop": 1.0}})

    result = the_result(sendgrid_channel(fresh_emulator).send([email(1)]))

    assert result.outcome == Outcome.RETRY
    assert result.error is not None and result.error.startswith("sendgrid: ")
    assert result.uncertain  # cut off after the request went out: SendGrid may have it
    assert mail_requests(fresh_emulator) == {"drop": 1}


def test_no_answer_within_the_timeout_is_retried(fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults({"sendgrid": {"latency_ms": 400}})

    started = time.monotonic()
    result = the_result(sendgrid_channel(fresh_emulator, timeout=0.2).send([email(1)]))
    waited = time.monotonic() - started

    assert (result.outcome, result.error) == (Outcome.RETRY, "sendgrid: no answer within 0.2 s")
    assert result.uncertain  # the request was sent; only the answer is missing
    assert waited >= 0.2
    time.sleep(max(0.0, 0.5 - waited))  # let the emulator finish the abandoned request before the next test resets it


# --- the status table (no network) -------------------------------------------------------------------


def test_status_table_maps_refusals_to_blocked_client_errors_to_permanent_and_the_rest_to_retries() -> None:
    documented = {
        400: PermanentError, 401: ChannelConfigError, 403: ChannelConfigError, 404: PermanentError,
        413: PermanentError, 429: ThrottledError, 500: TransientError, 502: TransientError, 503: TransientError,
        504: TransientError,
    }
    assert dict(STATUS_ERRORS) == documented
    outcomes = {status: result_for(1, _error(status, b"", {})).outcome for status in STATUS_ERRORS}
    assert outcomes == {status: Outcome.BLOCKED if status in (401, 403) else
                        Outcome.FAILED if status < 429 else Outcome.RETRY for status in STATUS_ERRORS}


@pytest.mark.parametrize(("status", "kind"), [
    (400, PermanentError), (413, PermanentError), (429, ThrottledError),
    (500, TransientError), (504, TransientError),
    (418, PermanentError), (599, TransientError),  # not in the table: 4xx permanent, 5xx retried
])
def test_an_answer_becomes_the_error_of_its_status(status: int, kind: type[Exception]) -> None:
    exc = _error(status, b'{"errors": [{"message": "why", "field": "subject"}]}', {})

    assert type(exc) is kind
    assert (str(exc), exc.provider, exc.status) == (f"sendgrid {status}: subject: why", "sendgrid", status)


@pytest.mark.parametrize(("status", "body", "setting", "meaning"), [
    (401, {"message": M_AUTH, "field": None}, "SENDGRID_API_KEY", "the API key was refused"),
    (403, {"message": "access forbidden", "field": None}, "SENDGRID_API_KEY", "the API key may not send this mail"),
    (403, {"message": M_SENDER, "field": "from"}, "the campaign's sender.email (or NOTIFIER_EMAIL_FROM)",
     "the sender is not a verified Sender Identity"),
])
def test_a_refusal_names_the_setting_to_fix_in_sendgrids_words(
        status: int, body: dict[str, Any], setting: str, meaning: str) -> None:
    exc = _error(status, json.dumps({"errors": [body]}).encode(), {})

    assert isinstance(exc, ChannelConfigError) and not isinstance(exc, PermanentError | TransientError)
    assert (exc.setting, exc.provider, exc.status) == (setting, "sendgrid", status)
    assert str(exc) == f"sendgrid {status}: {meaning} ({body['field'] or 'request'}: {body['message']}): fix {setting}"
    assert REFUSALS[status, body["field"]] == (meaning, setting)


def test_retry_after_comes_from_the_rate_limit_reset_else_retry_after() -> None:
    reset = _error(429, b"", {"X-RateLimit-Reset": str(int(time.time()) + 30), "Retry-After": "5"})
    after = _error(503, b"", {"Retry-After": "7"})
    garbled = _error(503, b"not json", {"Retry-After": "soon"})

    assert isinstance(reset, ThrottledError) and reset.retry_after is not None and 28 <= reset.retry_after <= 30
    assert isinstance(after, TransientError) and after.retry_after == 7
    assert isinstance(garbled, TransientError) and garbled.retry_after is None
    assert str(garbled) == "sendgrid 503: not json"


def test_each_campaign_sender_gets_its_own_request_with_its_from_and_reply_to() -> None:
    channel = SendGridEmail("SG.test", "http://127.0.0.1:9", SENDER)  # payloads only: nothing is sent
    acme = {"sender": '"Acme Radio, Inc." <news@acme.example>', "reply_to": "help@acme.example"}
    batch = [email(1), EmailMessage(**{**email(2).__dict__, **acme}), email(3)]

    parts = list(channel._batches(batch))
    assert parts == [[0, 2], [1]]  # the same variant, but two senders: two requests
    default = channel.payload([batch[0], batch[2]])
    own = channel.payload([batch[1]])
    assert default["from"] == {"email": "no-reply@music.example.com", "name": "TikTok Music"}
    assert "reply_to" not in default
    assert own["from"] == {"email": "news@acme.example", "name": "Acme Radio, Inc."}
    assert own["reply_to"] == {"email": "help@acme.example"}


def test_a_sender_name_beyond_ascii_reaches_sendgrid_as_written() -> None:
    from notifier.campaign import Sender

    channel = SendGridEmail("SG.test", "http://127.0.0.1:9", SENDER)
    sender = Sender("Música, Inc.", "news@acme.example").from_header
    payload = channel.payload([EmailMessage(**{**email(1).__dict__, "sender": sender})])
    assert payload["from"] == {"email": "news@acme.example", "name": "Música, Inc."}


def _sdk_payload(channel: SendGridEmail, batch: Sequence[EmailMessage]) -> dict[str, Any]:
    """The body as the SDK's own helper objects build it, one Personalization a recipient: the reference the
    channel's faster body must equal."""
    from sendgrid.helpers import mail as m

    from notifier.channels.sendgrid import TAGS, _tagged, recipient_name

    first = batch[0]
    body = m.Mail()
    body.from_email = m.From("no-reply@music.example.com", "TikTok Music")
    body.subject = m.Subject(_tagged(first.subject, html=False))
    body.add_content(m.Content("text/plain", _tagged(first.text, html=False)))
    body.add_content(m.Content("text/html", _tagged(first.html, html=True)))
    for tag in first.tags:
        body.add_category(m.Category(tag))
    if first.marketing and channel.asm_group is not None:
        body.asm = m.Asm(m.GroupId(channel.asm_group))
    for i, message in enumerate(batch):
        p = m.Personalization()
        p.add_to(m.To(message.to, recipient_name(message.to_name)))
        for (marker, html), tag in TAGS.items():
            if marker in first.subject or marker in first.text or marker in first.html:
                value = getattr(message.personal, "name" if marker == NAME else "refund") or ""
                p.add_substitution(m.Substitution(tag, str(escape(value)) if html else value))
        for key, value in message.metadata.items():
            p.add_custom_arg(m.CustomArg(key, value))
        for key, value in message.headers.items():
            p.add_header(m.Header(key, value))
        body.add_personalization(p, index=i)
    return body.get()


@pytest.mark.parametrize("marked", [(), (NAME,), (NAME, REFUND)])
def test_the_body_is_the_one_the_sdks_own_helpers_build_byte_for_byte(marked: tuple[str, ...]) -> None:
    channel = SendGridEmail("SG.test", "http://127.0.0.1:9", SENDER, asm_group=42)
    subject = SUBJECT + "".join(marked[:1])
    html = HTML + "".join(marked)
    names = [None, "", "Ana", 'Silva, Ana "<x@evil.example>"', "José <jose@example.com>", "Dr. O'Neil; admin"]
    batch = [EmailMessage(**{**email(i, subject=subject, html=html, name=name, marketing=True).__dict__,
                             "personal": Personal(name, "Rp 150.000" if i % 2 else None)})
             for i, name in enumerate(names, start=1)]
    batch += [EmailMessage(**{**email(90).__dict__, "to": "Ana Silva <ana@example.com>"}),  # parsed as the SDK does
              EmailMessage(**{**email(92).__dict__, "headers": {}, "metadata": {}})]
    ours, theirs = channel.payload(batch), _sdk_payload(channel, batch)
    assert json.dumps(ours) == json.dumps(theirs)
    assert len(ours["personalizations"]) == len(batch) and ours["asm"] == {"group_id": 42}
