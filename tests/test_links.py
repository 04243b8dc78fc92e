"""Unsubscribe links: opaque, expiring, unforgeable without the key, and the key can rotate."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

from notifier.config import Settings, require_production_secrets
from notifier.errors import ConfigError
from notifier.links import (
    VALID_DAYS,
    open_token,
    unsubscribe_headers,
    unsubscribe_token,
    verify_open_token,
    verify_unsubscribe_token,
)

KEY = "k" * 32
SENT = date(2024, 9, 28)


def test_a_token_names_its_delivery_and_verifies_with_the_same_key() -> None:
    token = unsubscribe_token(KEY, 42, issued=SENT)
    assert verify_unsubscribe_token(KEY, token, today=SENT) == 42
    assert "42" not in token and len(token) == 32


def test_consecutive_deliveries_give_unrelated_tokens() -> None:
    """No sequence to walk: neighbouring ids share no prefix and differ in most characters."""
    tokens = [unsubscribe_token(KEY, i, issued=SENT) for i in range(1000, 1010)]
    assert len({t[:4] for t in tokens}) == 10
    for a, b in itertools.pairwise(tokens):
        assert sum(x != y for x, y in zip(a, b, strict=True)) > 20


def test_a_tampered_or_foreign_token_is_refused() -> None:
    token = unsubscribe_token(KEY, 42, issued=SENT)
    assert verify_unsubscribe_token("o" * 32, token, today=SENT) is None
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    assert verify_unsubscribe_token(KEY, flipped, today=SENT) is None
    for junk in ("not-a-token", "", "42.abc", "=" * 40, token + "x"):
        assert verify_unsubscribe_token(KEY, junk, today=SENT) is None


def test_a_token_has_one_spelling() -> None:
    """The decoder is not left to skip what it does not know: one delivery, one token, one string."""
    token = unsubscribe_token(KEY, 42, issued=SENT)
    for other in (f"{token[:7]}.{token[7:]}", f"{token}=", f"{token}==", f"{token[:7]} {token[7:]}",
                  f"{token[:7]}\n{token[7:]}", f"{token}A", f" {token}", f"+{token[1:]}", f"/{token[1:]}"):
        assert verify_unsubscribe_token(KEY, other, today=SENT) is None, other
    assert verify_unsubscribe_token(KEY, token, today=SENT) == 42


def test_a_token_expires() -> None:
    token = unsubscribe_token(KEY, 42, issued=SENT)
    assert verify_unsubscribe_token(KEY, token, today=SENT + timedelta(days=VALID_DAYS)) == 42
    assert verify_unsubscribe_token(KEY, token, today=SENT + timedelta(days=VALID_DAYS + 1)) is None


def test_a_rotated_key_still_accepts_links_made_with_the_previous_one() -> None:
    old, new = "o" * 32, "n" * 32
    token = unsubscribe_token(old, 42, issued=SENT)
    assert verify_unsubscribe_token([new, old], token, today=SENT) == 42
    assert verify_unsubscribe_token([new], token, today=SENT) is None
    assert verify_unsubscribe_token([new, old], unsubscribe_token(new, 7, issued=SENT), today=SENT) == 7


def test_the_headers_offer_one_click_unsubscribe_on_the_public_url() -> None:
    headers = unsubscribe_headers("https://notify.example.com/", KEY, 7, issued=SENT)
    assert headers == {
        "List-Unsubscribe": f"<https://notify.example.com/u/{unsubscribe_token(KEY, 7, issued=SENT)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


# --- no default secret reaches production -------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "said"), [
    ({}, "NOTIFIER_SECRET_KEY is the default"),
    ({"secret_key": "short"}, "NOTIFIER_SECRET_KEY is too short"),
    ({"secret_key": KEY}, "NOTIFIER_PUBLIC_URL is 'http://localhost:8000'"),
    ({"secret_key": KEY, "public_url": "https://127.0.0.1"}, "NOTIFIER_PUBLIC_URL is 'https://127.0.0.1'"),
    ({"secret_key": KEY, "public_url": "http://notify.example.com"}, "NOTIFIER_PUBLIC_URL is"),
])
def test_real_providers_refuse_a_default_secret_or_a_local_public_url(changes: dict[str, str], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        require_production_secrets(Settings(transport="providers", **changes))


def test_a_private_secret_and_a_public_https_url_are_accepted() -> None:
    require_production_secrets(Settings(transport="providers", secret_key=KEY,
                                        public_url="https://notify.example.com"))


def test_a_push_open_token_proves_its_own_delivery_only_and_survives_a_key_rotation() -> None:
    token = open_token(KEY, 41)
    assert len(token) == 22 and verify_open_token(KEY, 41, token)
    assert not verify_open_token(KEY, 42, token)  # another push's id
    assert not verify_open_token("another-secret-0123456789abcdef", 41, token)
    assert verify_open_token(["a-new-key-0123456789abcdef", KEY], 41, token)  # the previous key still counts
    assert open_token(KEY, 41) != open_token(KEY, 42)
    assert not verify_open_token(KEY, 41, token[:-1] + ("A" if token[-1] != "A" else "B"))
