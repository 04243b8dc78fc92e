"""A campaign from a starter: the form's problems are the CLI's, named by the form's fields, and the campaign it
makes renders every locale x send x channel and is an ordinary campaign to ``notifier campaign validate``."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.campaign import parse_campaign
from notifier.errors import CampaignError
from notifier.studio import store
from notifier.studio.starter import STARTERS, campaign_yaml, check_starter, new_bundle, starter_from_json
from notifier.studio.translations import gate
from tests.test_studio_words import rendered, translate_rest

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def form(starter: str = "price-change", **changes: object) -> dict:
    data = copy.deepcopy(STARTERS[starter])
    data.update(changes)
    return data


@pytest.mark.parametrize("name", sorted(STARTERS))
def test_every_starter_is_a_valid_campaign_that_sends(name: str) -> None:
    assert check_starter(STARTERS[name], NOW) == []
    campaign = parse_campaign(campaign_yaml(starter_from_json(STARTERS[name])))
    assert campaign.id == name and campaign.sender is not None and campaign.default_locale == "en"
    assert [w.label for w in campaign.deadlines[0].waves] == ["P30D", "P7D", "P1D"]


def test_problems_are_the_campaign_files_named_by_the_forms_fields() -> None:
    data = form(countries=["BRA", "MX"], source_locale="fr", sender_email="nope", local_time="22:00")
    data["deadlines"][0]["waves"] = ["P30D", "P7X"]
    data["links"]["terms"] = "http://example.com/terms"
    fields = {p.field: p.message for p in check_starter(data, NOW)}
    assert set(fields) == {"countries[0]", "source_locale", "sender_email", "local_time", "deadlines[0].waves[1]",
                           "links.terms"}
    assert "ISO-8601 duration" in fields["deadlines[0].waves[1]"]
    assert "not one of locales" in fields["source_locale"]


def test_waves_no_zone_gets_and_a_campaign_that_sends_nothing_are_named_as_validate_names_them() -> None:
    data = form("shutdown")
    data["deadlines"][0]["at"] = "2026-12-20T00:00"  # its P30D was in November
    [late] = check_starter(data, NOW)
    assert late.field == "deadlines[0].waves[0]" and "P30D will not be sent" in late.message
    data["deadlines"][0]["at"] = "2025-12-20T00:00"
    fields = [p.field for p in check_starter(data, NOW)]
    assert fields == ["deadlines[0].at", "deadlines"]


def test_a_form_of_the_wrong_shape_is_located_field_by_field() -> None:
    data = form(name=None, locales="en")
    data["deadlines"][0]["waves"] = "P1D"
    with pytest.raises(CampaignError) as caught:
        starter_from_json(data)
    assert {p.field for p in caught.value.problems} == {"name", "locales", "deadlines[0].waves"}
    assert [p.field for p in check_starter({"deadlines": []}, NOW)][-1] == "deadlines"


def test_a_starter_makes_a_bundle_that_renders_every_locale_send_and_channel() -> None:
    bundle = new_bundle(starter_from_json(STARTERS["price-change"]))
    assert gate(bundle, NOW)[0], "the new campaign's translations are still to do"
    bundle = translate_rest(translate_rest(bundle, "id"), "pt-BR")
    errors, warnings = gate(bundle, NOW)
    assert errors == [] and warnings == []
    seen = set()
    for r in rendered(bundle):
        for channel in r.sample.channels:
            if channel == "email":
                assert r.email.subject and r.email.text and "<h1" in r.email.html
                assert 'href="https://example.com/price"' in r.email.html
            else:
                assert r.push.title and r.push.body and r.push.link == "https://example.com/price"
            seen.add((r.sample.locale, r.sample.label, channel))
    assert seen == {(loc, f"price@{w}", ch) for loc in ("en", "id", "pt-BR") for w in ("P30D", "P7D", "P1D")
                    for ch in ("email", "push")}


def test_the_cli_validates_a_studio_campaign_like_any_other(tmp_path: Path) -> None:
    bundle = translate_rest(translate_rest(new_bundle(starter_from_json(STARTERS["policy-change"])), "id"),
                            "pt-BR")
    for path, data in bundle.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    env = {**os.environ, "NOTIFIER_TEMPLATES_DIR": str(tmp_path / "templates"),
           "NOTIFIER_LOCALES_DIR": str(tmp_path / "locales"), "NOTIFIER_CAMPAIGNS_DIR": str(tmp_path / "campaigns")}
    result = subprocess.run([sys.executable, "-m", "notifier", "campaign", "validate",
                             str(tmp_path / "campaigns" / "policy-change.yaml"), "--now", "2026-12-05T09:00Z"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "every message renders" in result.stdout
    assert store.campaign_of(bundle).templates == "policy-change"


WHERE = """plan in ["premium", "family"] and country != "SG" and not name == "O\\"Brien" and note != 'it\\'s'"""


def test_a_condition_and_a_holdout_go_into_the_file_quoted_and_come_back_as_written() -> None:
    data = form(category="marketing", where=WHERE, holdout="12.5%")
    data["deadlines"][0]["where"] = 'plan == "family"'
    assert check_starter(data, NOW) == []
    text = campaign_yaml(starter_from_json(data))
    assert '  where: "plan in [\\"premium\\", \\"family\\"]' in text  # one double-quoted scalar: no YAML in it
    campaign = parse_campaign(text)
    assert campaign.where is not None and campaign.where.text == WHERE
    assert campaign.holdout == 1250 and campaign.holdout_share == "12.5%"
    assert campaign.deadlines[0].where is not None and campaign.deadlines[0].where.text == 'plan == "family"'
    assert "audience:" not in campaign_yaml(starter_from_json(form(countries=[])))  # nothing to say, no section


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"where": 'plan in ["premium", "family" and country != "SG"'}, "where", "column "),
    ({"where": "plan == premium"}, "where", 'a string is quoted: "premium"'),
    ({"holdout": "10%"}, "holdout", "only a marketing campaign holds people out"),
    ({"category": "marketing", "holdout": "80%"}, "holdout", "from 0.1% to 50%"),
])
def test_a_bad_condition_or_holdout_is_named_by_its_field_on_the_form(changes: dict, field: str, words: str) -> None:
    [problem] = check_starter(form(**changes), NOW)
    assert (problem.field, problem.file) == (field, "starter") and words in problem.message


def test_a_deadlines_bad_condition_is_named_by_its_field_with_the_column() -> None:
    data = form()
    data["deadlines"][0]["where"] = "plan === 'x'"
    [problem] = check_starter(data, NOW)
    assert problem.field == "deadlines[0].where" and problem.message.startswith("column 8: ")  # the third "="
