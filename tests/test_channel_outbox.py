"""The outbox channels: one bad message fails alone, the rest of its batch is written, no personal data in errors."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from pathlib import Path

from notifier.channels.base import EmailMessage, PushMessage
from notifier.channels.outbox import OutboxEmail, OutboxPush
from notifier.events import Outcome
from notifier.render import NAME, Personal

INJECTED_NAME = "Ana\r\nBcc: x@y.com"
NON_ASCII_ADDRESS = "jos\u00e9@example.com"


def message(delivery_id: int, *, to: str | None = None, name: str | None = None) -> EmailMessage:
    return EmailMessage(delivery_id, to or f"user{delivery_id}@example.com", name, f"Hello {NAME}",
                        f"Hello {NAME},\n...", f"<p>Hello {NAME},</p>", Personal(name),
                        metadata={"delivery_id": str(delivery_id), "campaign_id": "spring"})


def written(outbox: Path, kind: str = "email") -> list[str]:
    return sorted(p.name for p in (outbox / kind).rglob("*") if p.is_file())


def test_an_unbuildable_email_fails_alone_and_the_rest_of_the_batch_is_written(tmp_path: Path) -> None:
    batch = [message(1, name="Ben"), message(2, name=INJECTED_NAME), message(3),
             message(4, to=NON_ASCII_ADDRESS, name="José"), message(5, name="Cid")]

    results = OutboxEmail(tmp_path).send(batch)

    assert [(r.delivery_id, r.outcome) for r in results] == [
        (1, Outcome.SENT), (2, Outcome.FAILED), (3, Outcome.SENT), (4, Outcome.INVALID_RECIPIENT), (5, Outcome.SENT)]
    assert written(tmp_path) == ["1.eml", "3.eml", "5.eml"]
    assert results[1].error == "outbox: cannot build the message: ValueError: to_name holds a line break (CR/LF)"
    assert results[3].error == ("outbox: cannot build the message: UnicodeEncodeError: the address is not ASCII "
                                "and the outbox writes no SMTPUTF8")
    for r in results:
        for personal in ("Ana", "Bcc", "x@y.com", "jos", "José", "example.com", "Ben", "Cid", "user"):
            assert personal not in (r.error or ""), (r.delivery_id, personal)
    for name in ("1.eml", "3.eml", "5.eml"):
        parsed = email.message_from_bytes((tmp_path / "email" / "spring" / name).read_bytes(),
                                          policy=email.policy.default)
        assert parsed["Bcc"] is None and parsed["To"].addresses[0].addr_spec.startswith("user")


def test_a_line_break_in_a_header_of_ours_is_named_by_its_field(tmp_path: Path) -> None:
    bad = EmailMessage(7, "user7@example.com", None, "Hi", "text", "<p>html</p>",
                       headers={"List-Unsubscribe": "<https://x.example/u>\r\nBcc: y@z.com"})

    [result] = OutboxEmail(tmp_path).send([bad])

    assert (result.outcome, result.error) == (
        Outcome.FAILED, "outbox: cannot build the message: ValueError: header List-Unsubscribe holds a line break "
                        "(CR/LF)")
    assert written(tmp_path) == []


def test_a_folder_that_cannot_be_written_retries_the_whole_batch(tmp_path: Path) -> None:
    (tmp_path / "email" / "spring" / "2.eml.tmp").mkdir(parents=True)  # the atomic write of message 2 hits a directory

    results = OutboxEmail(tmp_path).send([message(1), message(2), message(3)])

    assert {r.outcome for r in results} == {Outcome.RETRY}
    assert {r.error for r in results} == {"outbox: cannot write email: Is a directory"}
    assert not any(r.uncertain for r in results)


def test_an_outbox_path_that_is_a_file_retries_instead_of_raising(tmp_path: Path) -> None:
    (tmp_path / "email").write_text("not a folder")

    [result] = OutboxEmail(tmp_path).send([message(1)])

    assert (result.outcome, result.error) == (Outcome.RETRY, "outbox: cannot write email: File exists")


def test_an_unencodable_push_fails_alone(tmp_path: Path) -> None:
    expires = datetime(2024, 10, 27, 17, 0, tzinfo=UTC)
    good = PushMessage(1, ("tok-1",), "Closing", "Soon", expires, "c")
    bad = PushMessage(2, ("tok-2",), "Closing \udc80", "Soon", expires, "c")  # a lone surrogate

    results = OutboxPush(tmp_path).send([bad, good])

    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SENT]
    assert results[0].error == ("outbox: cannot build the message: UnicodeEncodeError: a field cannot be encoded "
                                "as UTF-8 JSON")
    assert written(tmp_path, "push") == ["1.json"]


def test_a_campaign_sender_and_reply_to_replace_the_default_from(tmp_path: Path) -> None:
    own = EmailMessage(8, "user8@example.com", None, "Hi", "text", "<p>html</p>",
                       metadata={"campaign_id": "spring"}, sender='"Acme Radio, Inc." <news@acme.example>',
                       reply_to="help@acme.example")
    plain = EmailMessage(9, "user9@example.com", None, "Hi", "text", "<p>html</p>",
                         metadata={"campaign_id": "spring"})

    OutboxEmail(tmp_path, "Default <no-reply@default.example>").send([own, plain])

    def parsed(name: str) -> MimeMessage:
        data = next((tmp_path / "email").rglob(name)).read_bytes()
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(msg, MimeMessage)
        return msg

    mine, default = parsed("8.eml"), parsed("9.eml")
    assert (mine["From"].addresses[0].display_name, mine["From"].addresses[0].addr_spec) == (
        "Acme Radio, Inc.", "news@acme.example")
    assert mine["Reply-To"].addresses[0].addr_spec == "help@acme.example"
    assert default["From"].addresses[0].addr_spec == "no-reply@default.example"
    assert default["Reply-To"] is None


def test_every_email_has_a_date_of_its_send_time_and_a_message_id(tmp_path: Path) -> None:
    sent_at = datetime(2024, 9, 28, 3, 0, 5, tzinfo=UTC)

    [result] = OutboxEmail(tmp_path, clock=lambda: sent_at).send([message(1)])

    parsed = email.message_from_bytes((tmp_path / "email" / "spring" / "1.eml").read_bytes(),
                                      policy=email.policy.default)
    assert parsed["Date"].datetime == sent_at and parsed["Date"] == "Sat, 28 Sep 2024 03:00:05 +0000"
    assert parsed["Message-ID"] == f"<{result.provider_message_id}>"


def test_two_campaigns_sharing_an_outbox_never_overwrite_each_other(tmp_path: Path) -> None:
    expires = datetime(2024, 10, 27, 17, 0, tzinfo=UTC)
    for campaign in ("spring", "autumn"):
        mail = EmailMessage(1, "a@example.com", None, campaign, "text", "<p>html</p>",
                            metadata={"delivery_id": "1", "campaign_id": campaign})
        push = PushMessage(1, ("tok",), campaign, "body", expires, "c", metadata={"campaign_id": campaign})
        assert OutboxEmail(tmp_path).send([mail])[0].outcome == Outcome.SENT
        assert OutboxPush(tmp_path).send([push])[0].outcome == Outcome.SENT

    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["email/autumn/1.eml", "email/spring/1.eml", "push/autumn/1.json", "push/spring/1.json"]
    assert "Subject: autumn" in (tmp_path / "email" / "autumn" / "1.eml").read_text()


def test_a_campaign_id_cannot_lead_the_outbox_out_of_its_folder(tmp_path: Path) -> None:
    mail = EmailMessage(1, "a@example.com", None, "Hi", "text", "<p>html</p>",
                        metadata={"delivery_id": "1", "campaign_id": "../../etc"})
    OutboxEmail(tmp_path / "outbox").send([mail])
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.eml")] == ["outbox/email/_.._etc/1.eml"]
