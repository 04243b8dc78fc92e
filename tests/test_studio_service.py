"""notifier.studio.service, the one place each studio operation lives (the pages and the API call it): editing a
stored campaign makes versions and keeps the copy freeze; a campaign kept in files is read, never edited; the
dashboard's schedule, pause, resume and cancel are the service's, approving a stored campaign's studio copy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from notifier.audience import import_audience
from notifier.campaign import parse_campaign
from notifier.errors import CampaignError, CampaignStateError, NotFound
from notifier.ledger.models import CampaignRow
from notifier.render import Content
from notifier.studio import service, store
from notifier.studio.starter import STARTERS
from notifier.web import create_app
from notifier.web.requests import Web
from tests.conftest import ROOT, SHIPPED_ID
from tests.test_dashboard_access import dashboard_settings, log_in, nonce_of

NOW = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)  # before the price-change starter's first wave
ID = "price-change"
AUDIENCE = """id,email,name,locale,timezone,country,push_tokens
ana,ana@acme.example,Ana Souza,pt-BR,America/Sao_Paulo,BR,ana-phone
budi,budi@acme.example,Budi Santoso,id,Asia/Jakarta,ID,
"""


@pytest.fixture
def web(tmp_path: Path, sessions: sessionmaker[Session]) -> Web:
    settings = dashboard_settings(tmp_path, studio_dir=tmp_path / "studio", outbox_dir=tmp_path / "outbox")
    (tmp_path / "audience.csv").write_text(AUDIENCE, encoding="utf-8")
    import_audience(sessions, tmp_path / "audience.csv", now=NOW)
    return Web(settings, sessions, None, lambda: NOW)


def translated(web: Web, campaign_id: str = ID, mark: str = "") -> None:
    """Every locale but the source one translated in the side-by-side editor."""
    for locale in service.campaign_info(web, campaign_id)["locales"][1:]:
        entries = service.get_translations(web, campaign_id, locale)
        saved = service.put_translations(web, campaign_id, locale, {
            e.key: [f"[{locale}]{mark} {e.source[-1]}"] * max(1, len(e.plural_names)) for e in entries})
    assert saved.problems == ()


def test_a_new_campaign_is_version_one_and_each_real_change_a_new_version(web: Web) -> None:
    created = service.create_campaign(web, STARTERS[ID])
    text = service.campaign_info(web, ID)["file"]

    same = service.save_file(web, ID, text)
    renamed = service.save_file(web, ID, text.replace('name: "Acme Stream price change"', 'name: "New prices"'))

    assert (created.version, same.version, renamed.version) == (1, 1, 2)
    assert {p.file for p in created.problems} == {f"locales/{loc}/LC_MESSAGES/{ID}.po" for loc in ("id", "pt_BR")}
    info = service.campaign_info(web, ID)
    assert (info["name"], info["version"], info["stored"], info["state"]) == ("New prices", 2, True, "draft")
    assert store.is_stored(web.settings, ID)  # this machine's copy follows each save


def test_a_templates_folder_renamed_in_the_file_moves_the_templates_and_a_locale_added_gets_a_catalog(
        web: Web) -> None:
    service.create_campaign(web, STARTERS[ID])
    text = service.campaign_info(web, ID)["file"]
    text = text.replace('templates: "price-change"', 'templates: "acme"').replace(
        '"pt-BR"]', '"pt-BR", "es-MX"]')

    saved = service.save_file(web, ID, text)

    bundle = service.bundle(web, ID)
    assert not [p for p in bundle if p.startswith("templates/price-change/")]
    assert "templates/acme/words.yaml" in bundle and f"locales/es_MX/LC_MESSAGES/{ID}.po" in bundle
    assert {e.status for e in service.get_translations(web, ID, "es-MX")} == {"missing"}
    assert f"locales/es_MX/LC_MESSAGES/{ID}.po" in {p.file for p in saved.problems}


def test_a_file_that_is_not_a_campaign_or_names_another_id_is_refused_with_its_place(web: Web) -> None:
    service.create_campaign(web, STARTERS[ID])
    text = service.campaign_info(web, ID)["file"]

    with pytest.raises(CampaignError) as broken:
        service.save_file(web, ID, text.replace("waves:", "waves: [", 1))
    with pytest.raises(CampaignError) as other:
        service.save_file(web, ID, text.replace(f'id: "{ID}"', 'id: "other"'))

    assert broken.value.problems[0].file == f"campaigns/{ID}.yaml" and broken.value.problems[0].line
    assert other.value.problems[0].field == "id"
    assert service.campaign_info(web, ID)["version"] == 1


def test_a_campaign_kept_in_files_is_read_and_previewed_but_never_edited_by_the_studio(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    web = Web(dashboard_settings(tmp_path, campaigns_dir=ROOT / "campaigns", studio_dir=tmp_path / "studio"),
              sessions, None, lambda: datetime(2024, 9, 1, tzinfo=UTC))

    info = service.campaign_info(web, SHIPPED_ID)
    entries = service.get_translations(web, SHIPPED_ID, "id")
    preview = service.preview(web, SHIPPED_ID, locale="id", send_key=service.preview_choices(
        web, SHIPPED_ID)["sends"][0]["send_key"], channel="email")

    assert (info["stored"], info["version"], info["state"]) == (False, None, "draft")
    assert service.get_words(web, SHIPPED_ID) is None  # templates written by hand
    assert entries and {e.status for e in entries} == {"done"}
    assert preview["subject"] and preview["html"]
    assert service.gate(web, SHIPPED_ID)[0] == []
    for edit in (lambda: service.save_file(web, SHIPPED_ID, info["file"]),
                 lambda: service.put_translations(web, SHIPPED_ID, "id", {}),
                 lambda: service.put_words(web, SHIPPED_ID, {})):
        with pytest.raises(CampaignStateError, match="lives in files"):
            edit()
    with pytest.raises(NotFound):
        service.campaign_info(web, "../../etc/passwd")


def test_a_preview_for_a_recipient_is_written_to_them(web: Web) -> None:
    service.create_campaign(web, STARTERS[ID])
    translated(web)

    sample = service.preview(web, ID, locale="pt-BR", send_key="price@P7D", channel="email")
    ana = service.preview(web, ID, locale="pt-BR", send_key="price@P7D", channel="email", recipient_id="ana")

    assert "Ana Souza" in ana["text"] and "Ana Souza" not in sample["text"]
    assert ana["subject"].startswith("[pt-BR]") and ana["problems"] == []
    with pytest.raises(NotFound):
        service.preview(web, ID, locale="pt-BR", send_key="price@P7D", channel="email", recipient_id="nobody")
    with pytest.raises(NotFound):
        service.rejects_csv(web, "no-such-upload")  # refused at once, not in the middle of a download


def test_scheduling_refuses_a_campaign_the_gate_refuses_with_every_problem(web: Web) -> None:
    service.create_campaign(web, STARTERS[ID])

    with pytest.raises(CampaignError) as refused:
        service.schedule(web, ID)

    assert {p.file.rsplit("/", 3)[-3] for p in refused.value.problems} == {"id", "pt_BR"}
    assert {p.file for p in refused.value.problems} == {f"locales/{loc}/LC_MESSAGES/{ID}.po" for loc in ("id", "pt_BR")}
    with web.sessions() as s:
        assert s.get(CampaignRow, ID) is None


@pytest.fixture
def dashboard(web: Web) -> Iterator[TestClient]:
    with TestClient(create_app(web.settings, web.sessions, clock=web.clock), base_url="http://127.0.0.1") as c:
        assert log_in(c).status_code == 303
        yield c


def control(client: TestClient, action: str, **data: str) -> int:
    csrf = nonce_of(client.get(f"/campaigns/{ID}").text)
    return client.post(f"/campaigns/{ID}/{action}", data={"csrf": csrf, **data}, follow_redirects=False).status_code


def test_the_dashboard_schedules_a_stored_campaign_from_its_studio_copy_and_an_edit_blocks_it_until_again(
        web: Web, dashboard: TestClient) -> None:
    service.create_campaign(web, STARTERS[ID])
    translated(web)

    assert control(dashboard, "schedule") == 303
    with web.sessions() as s:
        row = s.get(CampaignRow, ID)
        approved = row.content_fingerprint if row else None
    campaign = parse_campaign(service.campaign_info(web, ID)["file"], "x")
    assert approved == Content.of(campaign, *web.settings.copy_dirs(ID)).fingerprint
    assert service.campaign_info(web, ID)["phase"] == "sending"
    assert service.progress(web, ID)["planned"] == 3 * 3  # Ana by email and push, Budi by email, three waves

    translated(web, mark=" (edited)")  # the copy changes under a scheduled campaign: the freeze holds it
    assert service.campaign_info(web, ID)["phase"] == "blocked"
    assert service.progress(web, ID)["blocked"]
    assert control(dashboard, "pause") == 303
    assert service.campaign_info(web, ID)["state"] == "paused"
    assert control(dashboard, "resume") == 303
    service.schedule(web, ID)  # approved again
    assert service.campaign_info(web, ID)["phase"] == "sending"
    assert control(dashboard, "cancel") == 400  # the dashboard asks for its confirmation
    assert control(dashboard, "cancel", confirm="yes") == 303
    with pytest.raises(CampaignStateError):
        service.set_state(web, ID, "resume")
    assert service.campaign_info(web, ID)["state"] == "cancelled"


def test_two_people_translating_two_locales_at_once_both_keep_their_work(web: Web) -> None:
    import threading

    service.create_campaign(web, STARTERS[ID])
    start, failures = threading.Barrier(2), []

    def translate(locale: str) -> None:
        entries = service.get_translations(web, ID, locale)
        start.wait()
        try:
            for entry in entries:  # one save per entry, interleaved with the other person's
                service.put_translations(web, ID, locale, {
                    entry.key: [f"[{locale}] {entry.source[-1]}"] * max(1, len(entry.plural_names))})
        except Exception as exc:  # pragma: no cover - what the assertion shows
            failures.append(exc)

    people = [threading.Thread(target=translate, args=(locale,)) for locale in ("id", "pt-BR")]
    for person in people:
        person.start()
    for person in people:
        person.join(120)

    assert failures == []
    assert {e.status for loc in ("id", "pt-BR") for e in service.get_translations(web, ID, loc)} == {"done"}
    assert service.gate(web, ID)[0] == []


def test_a_preview_shows_each_saved_edit_at_once_though_its_renderer_stays_warm(web: Web) -> None:
    service.create_campaign(web, STARTERS[ID])
    translated(web)
    choice = service.preview_choices(web, ID)
    key = choice["sends"][0]["send_key"]
    words = service.get_words(web, ID)
    assert words is not None
    stage = next(iter(words["stages"]))
    for i in range(3):  # the words, then a translation, then the file's sender: each seen in the next preview
        words["stages"][stage]["paragraphs"][0] = f"Edit number {i} of the news."
        service.put_words(web, ID, words)
        assert f"Edit number {i} of the news." in service.preview(web, ID, locale="en", send_key=key,
                                                                   channel="email")["text"]
    entry = next(e for e in service.get_translations(web, ID, "id") if "Edit number 2" in e.source[-1])
    service.put_translations(web, ID, "id", {entry.key: ["Suntingan kedua dari berita."]})
    assert "Suntingan kedua" in service.preview(web, ID, locale="id", send_key=key, channel="email")["text"]
    text = service.campaign_info(web, ID)["file"]
    service.save_file(web, ID, text.replace('  name: "Acme Stream"', '  name: "Acme Music"', 1))
    assert "Acme Music" in service.preview(web, ID, locale="en", send_key=key, channel="email")["text"]


def test_an_edit_of_a_scheduled_campaign_says_it_waits_for_approval_and_an_edit_from_an_old_version_is_refused(
        web: Web) -> None:
    service.create_campaign(web, STARTERS[ID])
    translated(web)
    service.schedule(web, ID)
    version = service.campaign_info(web, ID)["version"]
    words = service.get_words(web, ID)
    assert words is not None
    stage = next(iter(words["stages"]))
    words["stages"][stage]["paragraphs"][0] = "A new first sentence."
    saved = service.put_words(web, ID, words, base_version=version)
    assert any("sends nothing more until you schedule it again" in p.message for p in saved.warnings)

    words["stages"][stage]["paragraphs"][0] = "Another tab's sentence."
    with pytest.raises(service.StaleVersion, match=f"version {saved.version} was saved after version {version}"):
        service.put_words(web, ID, words, base_version=version)  # made from the version before the save above
    assert "A new first sentence." in str(service.get_words(web, ID))


def test_the_dashboards_file_editor_saves_a_stored_campaign_as_a_new_version_not_a_file_beside_it(
        web: Web, dashboard: TestClient) -> None:
    service.create_campaign(web, STARTERS[ID])
    translated(web)  # the editor saves only a campaign whose every message renders
    version = service.campaign_info(web, ID)["version"]
    text = service.campaign_info(web, ID)["file"].replace('  name: "Acme Stream"', '  name: "Acme Music"', 1)
    csrf = nonce_of(dashboard.get(f"/campaigns/{ID}/edit").text)
    saved = dashboard.post(f"/campaigns/{ID}/edit", data={"csrf": csrf, "text": text}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    info = service.campaign_info(web, ID)
    assert info["version"] == version + 1 and '"Acme Music"' in info["file"]
    assert not (web.settings.campaigns_dir / f"{ID}.yaml").exists()  # the ledger's version, not a local file
