"""The studio's pages without a script (the browser journey is tests/test_studio_browser.py): the starter form adds a
deadline and creates a campaign, its problems stand at their fields, the live check answers JSON, a wave is typed
as a marketer says it, and nothing changes without a session and its CSRF token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from notifier.demo import START
from notifier.ledger.db import make_engine, session_factory, upgrade
from notifier.web import create_app
from notifier.web.dashboard.studio_forms import duration, starter_json
from tests.test_dashboard_access import dashboard_settings, log_in, nonce_of

FORM = {"name": "Acme Stream price increase", "id": "acme-price", "category": "service", "sender_name": "Acme Stream",
        "sender_email": "news@acme.example", "locales": "en, pt-BR, id", "countries": "br, MX, ID",
        "channels": ["email", "push"], "link_url": "https://acme.example/price",
        "deadlines[0].id": "cancel", "deadlines[0].label": "Cancel before the new price",
        "deadlines[0].date": "2027-03-01", "deadlines[0].time": "00:00", "deadlines[0].waves": ["P30D", "P7D"],
        "deadlines[0].other": "1, 6h", "deadlines[0].skip_if": "plan_cancelled"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = dashboard_settings(tmp_path, outbox_dir=tmp_path / "outbox", studio_dir=tmp_path / "studio")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    with TestClient(create_app(settings, session_factory(engine), clock=lambda: START),
                    base_url="http://127.0.0.1") as c:
        assert log_in(c).status_code == 303
        yield c
    engine.dispose()


def _post(client: TestClient, path: str, data: dict[str, object]) -> object:
    csrf = nonce_of(client.get("/campaigns/new/starter").text)
    return client.post(path, data={"csrf": csrf, **data}, follow_redirects=False)


def test_a_wave_is_typed_as_a_marketer_says_it() -> None:
    assert [duration(t) for t in ("14", "14d", "6h", "2w", "3 days", "P10D", "PT90M")] == \
        ["P14D", "P14D", "PT6H", "P2W", "P3D", "P10D", "PT90M"]


def test_the_starter_form_becomes_the_starter_json() -> None:
    from starlette.datastructures import FormData

    data = starter_json(FormData([(k, v) for k, vs in FORM.items() for v in (vs if isinstance(vs, list) else [vs])]))
    assert data["countries"] == ["BR", "MX", "ID"] and data["links"] == {"details": "https://acme.example/price"}
    assert data["deadlines"] == [{"id": "cancel", "label": "Cancel before the new price", "at": "2027-03-01T00:00",
                                  "waves": ["P30D", "P7D", "P1D", "PT6H"], "skip_if": "plan_cancelled",
                                  "link": "details"}]


def test_without_a_script_the_starter_adds_a_deadline_then_creates_the_campaign(client: TestClient) -> None:
    page = client.get("/campaigns/new/starter?starter=shutdown")
    assert page.status_code == 200 and "Deadline 2" not in page.text
    more = _post(client, "/campaigns/new/starter", {**FORM, "add": "deadline"})
    assert more.status_code == 200 and "Deadline 2" in more.text and 'value="cancel"' in more.text
    made = _post(client, "/campaigns/new/starter", FORM)
    assert made.status_code == 303 and made.headers["location"] == "/campaigns/acme-price/words?done=created"
    words = client.get("/campaigns/acme-price/words")
    assert words.status_code == 200 and 'name="reminder.plurals.heading"' in words.text
    for tab in ("translations", "translations/pt-BR", "preview", "audience", "try", "test"):
        assert client.get(f"/campaigns/acme-price/{tab}").status_code == 200, tab


def test_each_problem_of_the_starter_stands_at_its_field(client: TestClient) -> None:
    bad = _post(client, "/campaigns/new/starter", {**FORM, "sender_email": "not an address"})
    assert bad.status_code == 422 and "sender_email" in bad.text
    check = _post(client, "/campaigns/new/check", {**FORM, "deadlines[0].date": "2027-02-30"})
    problems = check.json()["problems"]
    assert problems and all(p["field"].startswith("deadlines[0]") for p in problems)
    assert _post(client, "/campaigns/new/check", FORM).json() == {"problems": []}


def test_nothing_changes_without_a_session_or_its_token(client: TestClient, tmp_path: Path) -> None:
    refused = client.post("/campaigns/new/starter", data=FORM, follow_redirects=False)
    assert refused.status_code == 403
    with TestClient(client.app, base_url="http://127.0.0.1") as stranger:
        assert stranger.post("/campaigns/new/check", data=FORM, follow_redirects=False).status_code == 401
    assert not (tmp_path / "studio" / "campaigns").exists()


@pytest.mark.parametrize(("catalog", "page"), [
    ("The last day to act is %(date)s.", "The last day to act is {date}."),
    ("%(num)d day left: %(deadline)s", "{days} day left: {deadline}"),
    ("Save 50%% before %(date)s", "Save 50% before {date}"),
    ("No placeholder at all", "No placeholder at all"),
])
def test_a_translator_reads_and_writes_the_words_placeholders_and_the_catalog_keeps_gettexts(catalog: str,
                                                                                           page: str) -> None:
    from notifier.web.dashboard.studio_forms import as_catalog_text, readable

    assert readable(catalog) == page
    assert as_catalog_text(page, [catalog]) == catalog
    assert as_catalog_text("{name} {unknown}", ["Hi %(name)s"]) == "%(name)s {unknown}"  # left for the gate to name
