"""Links a message carries out of the process: signed with ledger ids only, never personal data."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _sign(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def unsubscribe_token(secret: str, delivery_id: int) -> str:
    """``<delivery id>.<signature>``: enough to find the recipient and campaign in the ledger, and unforgeable."""
    return f"{delivery_id}.{_sign(secret, f'unsubscribe:{delivery_id}')}"


def verify_unsubscribe_token(secret: str, token: str) -> int | None:
    """The delivery id of a genuine token, else None."""
    ident, _, signature = token.partition(".")
    if not ident.isdigit() or not hmac.compare_digest(signature, _sign(secret, f"unsubscribe:{ident}")):
        return None
    return int(ident)


def unsubscribe_headers(public_url: str, secret: str, delivery_id: int) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers for one message."""
    url = f"{public_url.rstrip('/')}/unsubscribe/{unsubscribe_token(secret, delivery_id)}"
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
