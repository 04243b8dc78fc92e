"""Settings that are missing or weak are named all at once, each with what to set, in the words of the transport in
use: ``notifier serve`` with nothing set names its four settings in one start; real providers name both the secret
and the public URL."""

from __future__ import annotations

import pytest

from notifier.config import Settings, require_production_secrets, require_serving_secrets, serving_problems
from notifier.errors import ConfigError

GOOD = {"secret_key": "a-private-random-secret-0123456789", "public_url": "https://notify.example.com",
        "api_token": "an-api-token-nobody-can-guess-0123"}


def named(problems: list[str]) -> list[str]:
    return [p.split(" ")[0] for p in problems]


def test_serve_with_nothing_set_names_every_setting_it_needs_at_once() -> None:
    with pytest.raises(ConfigError) as refused:
        require_serving_secrets(Settings())

    lines = str(refused.value).splitlines()
    assert lines[0] == "notifier serve needs these settings (for local use only: notifier serve --dev):"
    assert named([line.strip() for line in lines[1:]]) == [
        "NOTIFIER_SECRET_KEY", "NOTIFIER_PUBLIC_URL", "NOTIFIER_SENDGRID_WEBHOOK_KEY", "NOTIFIER_API_TOKEN"]


def test_serve_in_front_of_the_outbox_speaks_of_links_not_of_real_providers() -> None:
    outbox, providers = serving_problems(Settings()), serving_problems(Settings(transport="providers"))

    assert not [p for p in outbox if "real providers" in p]
    assert outbox[0].startswith("NOTIFIER_SECRET_KEY is the default: anyone could forge the unsubscribe links")
    assert outbox[1] == ("NOTIFIER_PUBLIC_URL is 'http://localhost:8000': set the public https address of notifier "
                         "serve, where the unsubscribe links lead")
    assert providers[0].startswith("NOTIFIER_SECRET_KEY is the default: with real providers it must be")
    assert providers[1].startswith("NOTIFIER_PUBLIC_URL is 'http://localhost:8000': with real providers")


@pytest.mark.parametrize(("changes", "said"), [
    ({"secret_key": "secret"}, "NOTIFIER_SECRET_KEY is a well-known value"),
    ({"secret_key": "short"}, "NOTIFIER_SECRET_KEY is too short"),
    ({"api_token": "changeme"}, "NOTIFIER_API_TOKEN is too weak"),
    ({"public_url": "https://notifier.localhost"}, "NOTIFIER_PUBLIC_URL is 'https://notifier.localhost'"),
    ({"admin_password_was_plain": True}, "NOTIFIER_ADMIN_PASSWORD holds a password"),
])
def test_each_weak_setting_is_named_beside_the_missing_ones(changes: dict[str, object], said: str) -> None:
    problems = serving_problems(Settings(**GOOD).with_(**changes))  # no webhook key either

    assert sorted(named(problems)) == sorted([said.split(" ")[0], "NOTIFIER_SENDGRID_WEBHOOK_KEY"])
    assert [p for p in problems if p.startswith(said)]


def test_good_settings_have_no_problem_and_one_problem_is_one_line() -> None:
    require_production_secrets(Settings(transport="providers", **GOOD))
    with pytest.raises(ConfigError) as refused:
        require_production_secrets(Settings(transport="providers", **{**GOOD, "secret_key": "change-me"}))
    assert "\n" not in str(refused.value)


def test_real_providers_name_the_secret_and_the_public_url_together() -> None:
    with pytest.raises(ConfigError) as refused:
        require_production_secrets(Settings(transport="providers"))

    lines = str(refused.value).splitlines()
    assert lines[0] == "real providers need these settings:"
    assert named([line.strip() for line in lines[1:]]) == ["NOTIFIER_SECRET_KEY", "NOTIFIER_PUBLIC_URL"]
