"""Links a message carries out of the process: keyed, expiring and signed, with ledger ids only.

An unsubscribe token hides which delivery it names: the delivery id and the last day the link works are
enciphered with a keyed permutation (a four-round Feistel network over HMAC-SHA256), so consecutive deliveries
give unrelated tokens, then signed. Without ``NOTIFIER_SECRET_KEY`` nobody can make one or read one. Keys rotate:
a token made with any of the keys given to ``verify_unsubscribe_token`` (the current one first, then
``NOTIFIER_SECRET_KEY_PREVIOUS``) is accepted until it expires.
"""

from __future__ import annotations

import base64
import hmac
import itertools
import math
import re
from collections.abc import Sequence
from datetime import date, timedelta

VALID_DAYS = 365  # an unsubscribe link keeps working this long after the message was sent
_EPOCH = date(2000, 1, 1)
_HALF = 6  # bytes: the id (8 bytes) and the expiry day (4 bytes) make one 12-byte block
_TAG = 12  # bytes of signature
_TOKEN = re.compile(f"[A-Za-z0-9_-]{{{math.ceil((2 * _HALF + _TAG) * 4 / 3)}}}")  # unpadded base64url: 32 characters


def _mac(secret: str, purpose: bytes, data: bytes) -> bytes:
    return hmac.digest(secret.encode(), purpose + data, "sha256")  # the one-shot C path: five per message


def _round(secret: str, n: int, half: bytes) -> bytes:
    return _mac(secret, b"unsubscribe-feistel:" + bytes([n]), half)[:_HALF]


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _encipher(secret: str, block: bytes) -> bytes:
    left, right = block[:_HALF], block[_HALF:]
    for n in range(4):
        left, right = right, _xor(left, _round(secret, n, right))
    return left + right


def _decipher(secret: str, block: bytes) -> bytes:
    left, right = block[:_HALF], block[_HALF:]
    for n in reversed(range(4)):
        left, right = _xor(right, _round(secret, n, left)), left
    return left + right


def unsubscribe_token(secret: str, delivery_id: int, *, issued: date, valid_days: int = VALID_DAYS) -> str:
    """An opaque token for one delivery that works until ``issued + valid_days``."""
    expires = max(0, (issued + timedelta(days=valid_days) - _EPOCH).days)
    block = _encipher(secret, delivery_id.to_bytes(8, "big") + expires.to_bytes(4, "big"))
    tag = _mac(secret, b"unsubscribe-tag:", block)[:_TAG]
    return base64.urlsafe_b64encode(block + tag).decode().rstrip("=")


def verify_unsubscribe_token(secrets: str | Sequence[str], token: str, *, today: date) -> int | None:
    """The delivery id of a genuine, unexpired token made with any of ``secrets``, else None. A token has one
    spelling: a stray character, padding, or another alphabet is refused, not skipped over by the decoder."""
    if not _TOKEN.fullmatch(token):
        return None
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != token:  # unused low bits set: another spelling
        return None
    block, tag = raw[: 2 * _HALF], raw[2 * _HALF :]
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        if secret and hmac.compare_digest(tag, _mac(secret, b"unsubscribe-tag:", block)[:_TAG]):
            plain = _decipher(secret, block)
            expires = _EPOCH + timedelta(days=int.from_bytes(plain[8:], "big"))
            return int.from_bytes(plain[:8], "big") if today <= expires else None
    return None


MAILTO_SUBJECT = "unsubscribe"  # the subject a mailto: unsubscribe asks for, before the token


def open_token(secret: str, delivery_id: int) -> str:
    """What a push carries (``data.open_token``) so that its app can report it was opened (``POST /opens``)
    without any other credential: a MAC of its delivery id, good for that one push only (22 characters)."""
    mac = _mac(secret, b"push-open:", str(delivery_id).encode())[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def verify_open_token(secrets: str | Sequence[str], delivery_id: int, token: str) -> bool:
    """Whether ``token`` is ``delivery_id``'s open token under one of ``secrets`` (current key first)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    return any(hmac.compare_digest(open_token(k, delivery_id).encode(), token.encode()) for k in keys if k)


def unsubscribe_mailto(address: str, token: str) -> str:
    """The ``mailto:`` URI (RFC 6068) of one message's unsubscribe by mail: the token goes in the subject, which
    mail clients send as given (a local part holds 64 characters at most, and many fold its case)."""
    return f"mailto:{address}?subject={MAILTO_SUBJECT}%20{token}"


def tokens_in(text: str, limit: int = 8) -> list[str]:
    """The first ``limit`` strings in ``text`` spelled like a token (a mail's subject or body): candidates to
    verify, not tokens yet."""
    return [m.group(0) for m in itertools.islice(_CANDIDATE.finditer(text), limit)]


_CANDIDATE = re.compile(f"(?<![A-Za-z0-9_-]){_TOKEN.pattern}(?![A-Za-z0-9_-])")


def unsubscribe_headers(public_url: str, secret: str, delivery_id: int, *, issued: date,
                        mailto: str | None = None) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers for one message; with ``mailto`` (an address whose mail reaches
    ``POST /webhooks/sendgrid/inbound``) ``List-Unsubscribe`` offers a ``mailto:`` after the https link, as bulk
    senders are expected to (RFC 2369: a client uses the first it can)."""
    token = unsubscribe_token(secret, delivery_id, issued=issued)
    uris = [f"{public_url.rstrip('/')}/u/{token}", *([unsubscribe_mailto(mailto, token)] if mailto else [])]
    return {"List-Unsubscribe": ", ".join(f"<{uri}>" for uri in uris),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
