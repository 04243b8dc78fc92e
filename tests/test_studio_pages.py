"""The studio's pages without a script (the browser journey is tests/test_studio_browser.py): the starter form adds a
deadline and creates a campaign, its problems stand at their fields, the live check answers JSON, a wave is typed
as a marketer says it, and nothing changes without a session and its CSRF token."""

from __future__ import annotations

import html
import io
import re
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


# --- what the review of the pages found (two tabs, Enter, the placeholders, an import, entries with problems) ---


def _created(client: TestClient) -> str:
    assert _post(client, "/campaigns/new/starter", FORM).status_code == 303
    return "/campaigns/acme-price"


def _version(page: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', page)
    assert found, "the form carries no version"
    return found[1]


def _first_entry(page: str) -> tuple[str, str]:
    """(key, shown translation) of a locale page's first entry."""
    found = re.search(r'name="key" value="([^"]*)">.*?<textarea id="t0[^>]*>([^<]*)</textarea>', page, re.S)
    assert found
    return html.unescape(found[1]), html.unescape(found[2])


def test_a_save_from_an_older_version_is_refused_and_keeps_what_was_typed(client: TestClient) -> None:
    base = _created(client)
    words = client.get(f"{base}/words").text
    locale = client.get(f"{base}/translations/pt-BR").text
    old, key = _version(words), _first_entry(locale)[0]
    first = _post(client, f"{base}/translations/pt-BR", {"version": old, "key": key, "t.0": "Primeira aba"})
    assert first.status_code == 200
    second = _post(client, f"{base}/translations/pt-BR", {"version": old, "key": key, "t.0": "Segunda aba"})
    assert second.status_code == 409 and "Segunda aba" in second.text and "reload" in second.text
    assert _first_entry(client.get(f"{base}/translations/pt-BR").text)[1] == "Primeira aba"
    mine = _post(client, f"{base}/words", {"version": old, "announcement.subject": "My own subject, typed here"})
    assert mine.status_code == 409 and "My own subject, typed here" in mine.text
    po = client.get(f"{base}/translations/pt-BR/export?format=po").content
    stale = client.post(f"{base}/translations/pt-BR/import", follow_redirects=False,
                        data={"csrf": nonce_of(words), "version": old}, files={"file": ("pt.po", po)})
    assert stale.status_code == 409 and "The file is imported" not in stale.text


def test_an_import_redirects_to_the_locale_page_and_tells_what_was_not_taken(client: TestClient) -> None:
    from babel.messages.pofile import read_po, write_po

    base = _created(client)
    catalog = read_po(io.BytesIO(client.get(f"{base}/translations/pt-BR/export?format=po").content))
    placeholder = [m for m in catalog if m.id and "%(date)s" in str(m.id) and isinstance(m.id, str)]
    good = [m for m in catalog if m.id and isinstance(m.id, str) and "%(" not in m.id]
    placeholder[0].string, good[0].string = "Sem a data", "Bom dia"
    out = io.BytesIO()
    write_po(out, catalog)
    csrf = nonce_of(client.get(f"{base}/translations/pt-BR").text)
    done = client.post(f"{base}/translations/pt-BR/import", data={"csrf": csrf}, follow_redirects=False,
                       files={"file": ("pt.po", out.getvalue())})
    assert done.status_code == 303
    assert done.headers["location"] == f"{base}/translations/pt-BR?done=imported&refused=1"
    shown = client.get(done.headers["location"]).text
    assert "The file is imported" in shown and "1 entry of the file was not taken" in shown
    for m in catalog:
        m.string = "Sem a data" if m is placeholder[0] else ("",) * 2 if isinstance(m.id, tuple) else ""
    out = io.BytesIO()
    write_po(out, catalog)
    nothing = client.post(f"{base}/translations/pt-BR/import", data={"csrf": csrf}, follow_redirects=False,
                          files={"file": ("pt.po", out.getvalue())})
    assert nothing.status_code == 422 and "The file is imported" not in nothing.text


def test_an_entry_with_a_problem_is_not_done_and_comes_first(client: TestClient) -> None:
    base = _created(client)
    page = client.get(f"{base}/translations/pt-BR").text
    keys = [html.unescape(k) for k in re.findall(r'name="key" value="([^"]*)"', page)]
    dated = next(i for i, k in enumerate(keys) if "%(date)s" in k and i > 0)
    saved = _post(client, f"{base}/translations/pt-BR", {"key": keys[dated], "t.0": "Sem a data"})
    assert saved.status_code == 200
    first = re.search(r'<li class="entry entry-(\w+)" data-key="([^"]*)"', saved.text)
    assert first and first[1] == "check" and html.unescape(first[2]) == keys[dated]
    assert '<span class="status status-check">check</span>' in saved.text
    indonesian = client.get(f"{base}/translations/pt-BR?lang=id").text
    assert '<span class="status status-check">periksa</span>' in indonesian


def test_enter_in_the_starter_form_creates_the_campaign_and_the_menu_says_what_each_placeholder_is(
        client: TestClient) -> None:
    page = client.get("/campaigns/new/starter").text
    form = page[page.index('id="starter-form"'):]
    first = re.search(r'<button type="submit"[^>]*>', form)
    assert first and 'name="create"' in first[0]  # the default button: Enter in a text field presses it
    assert 'name="add" value="deadline"' in form  # the way to add a deadline without a script stays
    base = _created(client)
    for lang, meaning in (("en", "the day before a deadline at 00:00"), ("id", "sehari sebelum tenggat pukul 00:00")):
        words = client.get(f"{base}/words?lang={lang}").text
        details = words[words.index('<details class="placeholder-meanings"'):]
        details = details[:details.index("</details>")]
        assert meaning in details and details.count("<dt>") == 7, lang


def test_the_studio_names_each_message_in_the_pages_language(client: TestClient) -> None:
    base = _created(client)
    assert "30 days before Cancel before the new price" in client.get(f"{base}/preview?lang=en").text
    indonesian = client.get(f"{base}/preview?lang=id").text
    assert "30 days before" not in indonesian and "30 hari sebelum" in indonesian


def test_the_live_check_of_a_translation_answers_its_badge_and_problems_without_saving(client: TestClient) -> None:
    base = _created(client)
    page = client.get(f"{base}/translations/pt-BR").text
    keys = [html.unescape(k) for k in re.findall(r'name="key" value="([^"]*)"', page)]
    dated = next(k for k in keys if "%(date)s" in k and "%(" not in k.replace("%(date)s", ""))
    check = f"{base}/translations/pt-BR/check"
    bad = _post(client, check, {"key": dated, "form": "Sem a data"})
    assert bad.status_code == 200 and bad.headers["cache-control"] == "no-store"
    assert bad.json() == {"status": "check", "problems": ["form 0 drops placeholder(s) date"]}
    assert _post(client, check, {"key": dated, "form": "Até {date}, 100%"}).json() == {"status": "done",
                                                                                       "problems": []}
    assert _post(client, check, {"key": dated, "form": ""}).json()["status"] == "missing"
    assert 'data-live-check="' in page and 'aria-live="polite"' in page
    assert "Até" not in client.get(f"{base}/translations/pt-BR").text
    assert _post(client, check, {"key": "no such entry", "form": "x"}).status_code == 404
    assert client.post(check, data={"key": dated, "form": "x"}, follow_redirects=False).status_code == 403
    with TestClient(client.app, base_url="http://127.0.0.1") as stranger:
        assert stranger.post(check, data={"key": dated, "form": "x"}, follow_redirects=False).status_code == 401


# --- who: a condition on the recipients, a holdout, a deadline's own condition ---------------------------------

WHO = {**FORM, "category": "marketing", "where": 'plan in ["premium", "family"] and country != "ID"', "holdout": "10",
       "deadlines[0].where": 'plan == "family"'}


def _form_data(form: dict[str, object]) -> object:
    from starlette.datastructures import FormData

    return FormData([(k, v) for k, vs in form.items() for v in (vs if isinstance(vs, list) else [vs])])


def test_a_condition_and_a_holdout_go_from_the_form_to_the_json_and_back() -> None:
    from notifier.web.dashboard.studio_forms import starter_form

    data = starter_json(_form_data(WHO))
    assert (data["where"], data["holdout"]) == (WHO["where"], "10%")  # "10" is typed, "10%" is meant
    assert data["deadlines"][0]["where"] == 'plan == "family"'
    shown = starter_form(data)
    assert (shown["where"], shown["holdout"], shown["deadlines"][0]["where"]) == (WHO["where"], "10%",
                                                                                  'plan == "family"')


def test_a_bad_condition_stands_at_its_field_with_its_column_on_the_page_without_a_script(client: TestClient) -> None:
    bad = _post(client, "/campaigns/new/starter", {**WHO, "where": 'plan in ["premium", "family" and country'})
    assert bad.status_code == 422
    at = re.search(r'<div class="field" data-field="where">(.*?)</div>', bad.text, re.S)
    assert at, "no where field"
    assert 'aria-invalid="true"' in at[1] and 'class="live-problem error"' in at[1] and "column " in at[1]
    assert 'value="plan in ["premium", "family" and country"' in html.unescape(at[1])  # what was typed, kept
    check = _post(client, "/campaigns/new/check", {**WHO, "category": "service"}).json()["problems"]
    assert [p["field"] for p in check] == ["holdout"] and "marketing" in check[0]["message"]


def test_the_try_page_counts_who_matches_the_condition_and_who_is_held_out(client: TestClient, tmp_path: Path) -> None:
    from sqlalchemy import select

    from notifier.audience import import_audience
    from notifier.campaign import parse_campaign
    from notifier.demo import DATA
    from notifier.eligibility import held_out
    from notifier.ledger.models import Recipient
    from notifier.studio.starter import campaign_yaml, starter_from_json

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    import_audience(session_factory(engine), DATA / "audience.csv", now=START)
    with session_factory(engine)() as s:  # counted here by hand: BR and MX (ID is excluded), premium or family
        people = [rid for rid, country, attributes in s.execute(select(Recipient.id, Recipient.country,
                                                                       Recipient.attributes))
                  if country in ("BR", "MX") and (attributes or {}).get("plan") in ("premium", "family")]
    engine.dispose()
    assert _post(client, "/campaigns/new/starter", WHO).status_code == 303
    campaign = parse_campaign(campaign_yaml(starter_from_json(starter_json(_form_data(WHO)))))
    held = [rid for rid in people if held_out(campaign, rid)]
    assert people and held  # the demo's audience has both

    page = _post(client, "/campaigns/acme-price/try", {"action": "dry-run"})
    assert page.status_code == 200
    shown = html.unescape(page.text)
    assert re.search(r'data-testid="dry-matching">([\d,]+)<', shown)[1].replace(",", "") == str(len(people))
    assert re.search(r'data-testid="dry-held-out">([\d,]+)<', shown)[1].replace(",", "") == str(len(held))
    assert WHO["where"] in shown and 'plan == "family"' in shown and "10% of the audience" in shown
