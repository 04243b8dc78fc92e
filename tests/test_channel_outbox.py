"""The outbox channels: one bad message fails alone, the rest of its batch is written, no personal data in errors."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
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
                        custom_args={"delivery_id": str(delivery_id)})


def written(outbox: Path, kind: str = "email") -> list[str]:
    return sorted(p.name for p in (outbox / kind).iterdir())


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
        parsed = email.message_from_bytes((tmp_path / "email" / name).read_bytes(), policy=email.policy.default)
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
    (tmp_path / "email" / "2.eml.tmp").mkdir(parents=True)  # the atomic write of message 2 hits a directory

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
