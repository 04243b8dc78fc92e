"""Signed unsubscribe links: ledger ids only, and unforgeable."""

from notifier.links import unsubscribe_headers, unsubscribe_token, verify_unsubscribe_token


def test_a_token_names_its_delivery_and_verifies_with_the_same_secret() -> None:
    token = unsubscribe_token("s3cret", 42)
    assert token.startswith("42.")
    assert verify_unsubscribe_token("s3cret", token) == 42


def test_a_tampered_or_foreign_token_is_refused() -> None:
    token = unsubscribe_token("s3cret", 42)
    assert verify_unsubscribe_token("other", token) is None
    assert verify_unsubscribe_token("s3cret", "43." + token.split(".", 1)[1]) is None
    assert verify_unsubscribe_token("s3cret", "not-a-token") is None


def test_the_headers_offer_one_click_unsubscribe_on_the_public_url() -> None:
    headers = unsubscribe_headers("https://notify.example.com/", "s3cret", 7)
    assert headers == {
        "List-Unsubscribe": f"<https://notify.example.com/unsubscribe/{unsubscribe_token('s3cret', 7)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
