"""Hostile names in the headers: every generated message, parsed back, goes to exactly the intended recipient.

Names are stored as an audience file gave them (tests insert them straight into the ledger, past any cleaning at
import); the renderer makes them plain text and the email library or the provider's SDK builds the header.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from notifier.channels.base import EmailMessage
from notifier.config import Settings
from notifier.display_names import plain_name
from notifier.render import NAME, REFUND, Personal, fill
from notifier.wiring import build_dispatcher

JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)
HOSTILE_NAMES = {
    "encoded-word": "=?utf-8?b?ZXZpbEB4LmNvbSwgb3RoZXJAeS5jb20=?=",  # decodes to "evil@x.com, other@y.com"
    "encoded-nul": "=?utf-8?q?Ana=00Bcc=3A_x=40y.com?=",
    "crlf-bcc": "Ana\r\nBcc: spy@evil.example",
    "lf-only": "Ana\nTo: other@evil.example",
    "nul": "Ana\x00Maria",
    "comma": "Silva, Ana <ana@evil.example>",
    "quotes": 'Ana "the boss" \\ Silva',
    "markers": f"Ana{NAME}{REFUND}Maria",
    "bidi": "Ana\u202eairaM",
    "separator": "Ana\u2028Bcc: spy@evil.example",
    "long": "A" * 5000,
    "accents": "José da Conceição",
}


def test_plain_name_leaves_nothing_a_header_or_the_renderer_would_interpret() -> None:
    for kind, raw in HOSTILE_NAMES.items():
        name = plain_name(raw)
        assert name is not None, kind
        assert not any(c in name for c in "\r\n\x00\u2028\u202e" + NAME + REFUND), kind
        assert "=?" not in name and len(name) <= 200, kind
    assert plain_name("José da Conceição") == "José da Conceição"
    assert plain_name("  \r\n\x00 ") is None


def test_a_name_with_the_renderers_own_markers_cannot_splice_in_the_refund() -> None:
    personal = Personal.of(f"Ana{REFUND}", {"refund_amount": "49000", "refund_currency": "IDR"}, "id")
    text = fill(f"Hi {NAME}, your refund: {REFUND}", personal, html=False)
    assert text == "Hi Ana, your refund: Rp49.000"


@pytest.mark.parametrize(("amount", "currency"), [
    ("NaN", "USD"), ("-5", "IDR"), ("Infinity", "USD"), ("1e400", "USD"), ("12.345678", "USD"),
    ("10", "usd<script>\r\nBcc: x"), ("10", "XYZ"), ("10", ""), (True, "USD"), ("9" * 5000, "USD"),
])
def test_a_refund_that_is_not_a_real_amount_in_a_real_currency_is_left_out(amount: object, currency: str) -> None:
    assert Personal.of("Ana", {"refund_amount": amount, "refund_currency": currency}, "en").refund is None


def test_every_outbox_email_parses_back_to_exactly_its_one_recipient(
        sessions: sessionmaker[Session], add_recipient, schedule_campaign, tmp_path: Path) -> None:
    postgres = sessions.kw["bind"].dialect.name == "postgresql"
    for kind, name in HOSTILE_NAMES.items():  # PostgreSQL itself refuses NUL and names over the column's 200
        add_recipient(kind, name=name.replace("\x00", " ")[:200] if postgres else name, locale="en")
    schedule_campaign(datetime(2024, 9, 1, tzinfo=UTC))
    dispatcher = build_dispatcher(Settings(outbox_dir=tmp_path / "outbox"), sessions, simulated_clock=True)

    report = dispatcher.tick(JAKARTA_FIRST)

    assert report.outcomes == {"sent": len(HOSTILE_NAMES)}
    files = sorted((tmp_path / "outbox" / "email").rglob("*.eml"))
    assert len(files) == len(HOSTILE_NAMES)
    intended = {f"{kind}@example.com" for kind in HOSTILE_NAMES}
    seen = set()
    for path in files:
        raw = path.read_bytes()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        to = msg["To"].addresses
        assert len(to) == 1, (path.name, msg["To"])
        assert to[0].addr_spec in intended
        seen.add(to[0].addr_spec)
        for header in ("Bcc", "Cc"):
            assert msg[header] is None, path.name
        assert len(msg.get_all("To")) == 1 and len(msg.get_all("Subject")) == 1
        assert b"\r\nBcc:" not in raw and b"\nTo: other" not in raw
        assert "evil" not in to[0].display_name or "<" not in to[0].display_name.replace("<ana@evil", "")
    assert seen == intended


def test_sendgrid_gets_each_name_plain_and_quoted_when_it_holds_a_special() -> None:
    pytest.importorskip("sendgrid")
    from notifier.channels.sendgrid import SendGridEmail, recipient_name

    channel = SendGridEmail("SG.test", "https://api.sendgrid.invalid", "Music <no-reply@music.example.com>")
    messages = [EmailMessage(i, f"r{i}@example.com", plain_name(name), "Hi", "text", "<p>html</p>",
                             Personal(plain_name(name)))
                for i, name in enumerate(HOSTILE_NAMES.values(), 1)]
    payload = channel.payload(messages)
    names = {p["to"][0]["email"]: p["to"][0].get("name") for p in payload["personalizations"]}
    assert names == {m.to: recipient_name(m.to_name) for m in messages}
    by_kind = dict(zip(HOSTILE_NAMES, (names[m.to] for m in messages), strict=True))
    assert by_kind["comma"] == '"Silva, Ana <ana@evil.example>"'
    assert by_kind["quotes"] == '"Ana \\"the boss\\" \\\\ Silva"'
    assert by_kind["accents"] == "José da Conceição"
    assert all("\r" not in n and "\n" not in n and "=?" not in n for n in names.values() if n)
