"""Each campaign is its own gettext domain: its own template, its own catalogs, its own frozen copy.

Two campaigns run side by side here: the shipped one, and a second scheduled from a copy of its file under
another id, with a copy of its templates folder. Everything is written under tmp_path; the real tree is only read.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.catalog import Message
from babel.messages.pofile import read_po
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifier import review
from notifier.campaign import Campaign, parse_campaign
from notifier.catalogs import check_catalogs, pot_path
from notifier.cli import cli
from notifier.config import Settings
from notifier.errors import CampaignError, Problem
from notifier.i18n import CatalogError, catalog_path, load_translations, posix
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.ledger.models import DeliveryRow, DeliveryState
from notifier.planner import parse_send_key, plan_zone
from notifier.render import Content, Renderer
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, ROOT, without_spread

FIRST = "tiktok-music-shutdown"
SECOND = "acme-radio-shutdown"
JAKARTA_FIRST = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # the merged first message, 10:00 in Jakarta
LAST_DAY = "refund@P1D"


def _second_spec(templates: str = SECOND) -> str:
    """The shipped campaign file (without its spread) under another id, pointing at ``templates``."""
    spec = without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8"))
    assert spec.count(f"id: {FIRST}\n") == 1 and spec.count(f"templates: {FIRST} ") == 1
    return spec.replace(f"id: {FIRST}\n", f"id: {SECOND}\n").replace(f"templates: {FIRST} ", f"templates: {templates} ")


def _copy_catalogs(locales: Path, campaign: Campaign, source: str) -> None:
    """Start ``campaign``'s catalogs as copies of the ``source`` campaign's files (what a translator might do)."""
    shutil.copyfile(pot_path(locales, source), pot_path(locales, campaign.id))
    for locale in campaign.locales:
        shutil.copyfile(catalog_path(locales, locale, domain=source), catalog_path(locales, locale, domain=campaign.id))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} should occur once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Private templates, catalogs and campaign files: the shipped campaign and SECOND, with its own catalogs."""
    templates = Path(shutil.copytree(ROOT / "templates", tmp_path / "templates"))
    shutil.copytree(templates / FIRST, templates / SECOND)
    locales = Path(shutil.copytree(ROOT / "locales", tmp_path / "locales"))
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / CAMPAIGN_FILE.name).write_text(without_spread(CAMPAIGN_FILE.read_text(encoding="utf-8")),
                                              encoding="utf-8")  # its ticks at a send's own time
    (campaigns / f"{SECOND}.yaml").write_text(_second_spec(), encoding="utf-8")
    _copy_catalogs(locales, parse_campaign(_second_spec()), FIRST)
    return Settings(templates_dir=templates, locales_dir=locales, campaigns_dir=campaigns,
                    outbox_dir=tmp_path / "outbox", database_url=f"sqlite:///{tmp_path / 'cli.db'}")


def _campaign(settings: Settings, ident: str) -> Campaign:
    path = settings.campaigns_dir / f"{ident}.yaml"
    return parse_campaign(path.read_text(encoding="utf-8"), source=str(path))


def _i18n(settings: Settings, *args: str) -> Result:
    env = {"NOTIFIER_TEMPLATES_DIR": str(settings.templates_dir), "NOTIFIER_LOCALES_DIR": str(settings.locales_dir),
           "NOTIFIER_CAMPAIGNS_DIR": str(settings.campaigns_dir), "NOTIFIER_DATABASE_URL": settings.database_url}
    return CliRunner().invoke(cli, ["i18n", *args], env=env)


def _last_day_push_title(renderer: Renderer, campaign: Campaign, locale: str) -> str:
    sample = next(s for s in review.samples(campaign) if s.locale == locale and s.items == parse_send_key(LAST_DAY))
    return review.render_sample(renderer, campaign, sample).push.title


# --- files -------------------------------------------------------------------------------------------------


def test_a_campaigns_catalogs_are_named_by_its_id() -> None:
    locales = ROOT / "locales"
    assert pot_path(locales, FIRST) == locales / f"{FIRST}.pot"
    assert catalog_path(locales, "pt-BR", domain=FIRST) == locales / "pt_BR" / "LC_MESSAGES" / f"{FIRST}.po"
    assert pot_path(locales, FIRST).is_file()
    assert not list(locales.rglob("messages.po*")), "the shared catalog of before per-campaign domains is gone"


@pytest.mark.parametrize("domain", ["../messages", "a/b", "", "Tiktok", ".hidden"])
def test_a_domain_that_is_not_a_campaign_id_is_refused(domain: str) -> None:
    with pytest.raises(CatalogError, match="is not a catalog domain"):
        catalog_path(ROOT / "locales", "en", domain=domain)
    with pytest.raises(CatalogError, match="is not a catalog domain"):
        pot_path(ROOT / "locales", domain)


# --- two campaigns, two translations -----------------------------------------------------------------------


def test_two_campaigns_translate_last_day_differently_and_each_renders_its_own(settings: Settings) -> None:
    first, second = _campaign(settings, FIRST), _campaign(settings, SECOND)
    _edit(catalog_path(settings.locales_dir, "pt-BR", domain=SECOND), 'msgstr "Último dia"', 'msgstr "Hoje é o fim"')
    assert check_catalogs(settings.locales_dir, second.locales, SECOND) == []

    assert load_translations(settings.locales_dir, "pt-BR", FIRST).ugettext("Last day") == "Último dia"
    assert load_translations(settings.locales_dir, "pt-BR", SECOND).ugettext("Last day") == "Hoje é o fim"
    renderer = Renderer(settings.templates_dir, settings.locales_dir)  # one renderer for both, as dispatch has
    assert _last_day_push_title(renderer, first, "pt-BR") == "Último dia"
    assert _last_day_push_title(renderer, second, "pt-BR") == "Hoje é o fim"
    assert _last_day_push_title(renderer, first, "pt-BR") == "Último dia"  # not the other's, cached or not


def test_two_campaigns_sharing_one_templates_folder_still_render_their_own_catalogs(settings: Settings) -> None:
    first, second = _campaign(settings, FIRST), parse_campaign(_second_spec(templates=FIRST))
    _edit(catalog_path(settings.locales_dir, "pt-BR", domain=SECOND), 'msgstr "Último dia"', 'msgstr "Hoje é o fim"')
    renderer = Renderer(settings.templates_dir, settings.locales_dir)
    assert _last_day_push_title(renderer, first, "pt-BR") == "Último dia"
    assert _last_day_push_title(renderer, second, "pt-BR") == "Hoje é o fim"


def _schedule(sessions: sessionmaker[Session], settings: Settings, campaign: Campaign, now: datetime) -> None:
    spec = Path(campaign.source).read_text(encoding="utf-8")
    with transaction(sessions) as s:
        queries.schedule(s, campaign, spec, now, Content.of(campaign, settings.templates_dir, settings.locales_dir),
                         plan_zone)


def _sent_by_campaign(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as s:
        rows = s.scalars(select(DeliveryRow.campaign_id).where(DeliveryRow.state == DeliveryState.SENT)).all()
    return {cid: rows.count(cid) for cid in set(rows)}


def test_an_edited_translation_of_one_campaign_freezes_only_that_campaign(
        sessions: sessionmaker[Session], add_recipient, settings: Settings) -> None:
    add_recipient("ana", timezone="Asia/Jakarta", country="ID", locale="id", tokens=["ana-phone"])
    first, second = _campaign(settings, FIRST), _campaign(settings, SECOND)
    for campaign in (first, second):
        _schedule(sessions, settings, campaign, datetime(2024, 9, 1, tzinfo=UTC))
    approved = {c.id: Content.of(c, settings.templates_dir, settings.locales_dir) for c in (first, second)}

    po = catalog_path(settings.locales_dir, "pt-BR", domain=SECOND)
    _edit(po, 'msgstr "Último dia"', 'msgstr "Último dia!"')
    now = {c.id: Content.of(c, settings.templates_dir, settings.locales_dir) for c in (first, second)}
    assert now[FIRST] == approved[FIRST]
    assert now[SECOND].fingerprint != approved[SECOND].fingerprint
    changed = {k for k, v in now[SECOND].manifest.items() if approved[SECOND].manifest[k] != v}
    assert changed == {f"locales/pt_BR/LC_MESSAGES/{SECOND}.po"}

    report = build_dispatcher(settings, sessions, simulated_clock=True).tick(JAKARTA_FIRST)

    assert set(report.refused) == {SECOND}
    assert f"locales/pt_BR/LC_MESSAGES/{SECOND}.po: changed" in report.refused[SECOND]
    assert f"notifier campaign schedule {SECOND}" in report.refused[SECOND]
    assert _sent_by_campaign(sessions) == {FIRST: 2}  # the first campaign keeps sending: email and push

    _schedule(sessions, settings, second, JAKARTA_FIRST)  # marketing approves the edit
    assert build_dispatcher(settings, sessions, simulated_clock=True).tick(JAKARTA_FIRST).refused == {}
    assert _sent_by_campaign(sessions) == {FIRST: 2, SECOND: 2}


# --- the commands, per campaign ----------------------------------------------------------------------------


def _entries(po: Path, locale: str | None = None) -> list[Message]:
    with po.open("rb") as f:
        return [m for m in read_po(f, locale=posix(locale) if locale else None) if m.id]


def test_update_on_a_new_campaign_starts_its_catalogs_empty_without_another_campaigns_text(
        settings: Settings) -> None:
    """The shipped catalogs already translate every one of these strings, and one reads almost the same
    ("Last day!" against "Last day"): nothing of them may leak into the new campaign, not even as fuzzy."""
    for locale in _campaign(settings, SECOND).locales:  # SECOND is brand new: no catalogs yet
        catalog_path(settings.locales_dir, locale, domain=SECOND).unlink()
    pot_path(settings.locales_dir, SECOND).unlink()
    _edit(settings.templates_dir / SECOND / "_copy.j2", '_("Last day")', '_("Last day!")')
    before = {p: p.read_bytes() for p in settings.locales_dir.rglob(f"{FIRST}.po*")}

    assert _i18n(settings, "extract", SECOND).exit_code == 0
    result = _i18n(settings, "update", SECOND)

    assert result.exit_code == 0, result.output
    second = _campaign(settings, SECOND)
    assert sorted(result.output.splitlines()) == sorted(
        f"updated {catalog_path(settings.locales_dir, loc, domain=SECOND)}" for loc in second.locales)
    for locale in second.locales:
        po = catalog_path(settings.locales_dir, locale, domain=SECOND)
        entries = _entries(po, locale)
        assert len(entries) == 36 and "Last day!" in {m.id for m in entries}
        for m in entries:
            strings = m.string if isinstance(m.string, tuple) else (m.string,)
            assert not any(strings), (locale, m.id, m.string)
            assert not m.fuzzy and not m.previous_id, (locale, m.id)
        assert "#|" not in po.read_text(encoding="utf-8")
    assert {p: p.read_bytes() for p in settings.locales_dir.rglob(f"{FIRST}.po*")} == before
    problems = check_catalogs(settings.locales_dir, second.locales, SECOND)
    assert problems and {p.message for p in problems} == {"untranslated"}
    assert check_catalogs(settings.locales_dir, second.locales, FIRST) == []


def test_extract_writes_each_campaigns_template_from_its_own_folder(settings: Settings) -> None:
    _edit(settings.templates_dir / SECOND / "push_body.txt", "{{", '{{ _("Only on Acme") }}{{')

    result = _i18n(settings, "extract")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{pot_path(settings.locales_dir, SECOND)}: 37 messages",
                                          f"{pot_path(settings.locales_dir, FIRST)}: 36 messages"]
    assert "Only on Acme" in {m.id for m in _entries(pot_path(settings.locales_dir, SECOND))}
    assert "Only on Acme" not in {m.id for m in _entries(pot_path(settings.locales_dir, FIRST))}
    assert f"#: {SECOND}/push_body.txt" in pot_path(settings.locales_dir, SECOND).read_text(encoding="utf-8")


def test_update_of_one_campaign_leaves_the_others_catalogs_alone(settings: Settings) -> None:
    _edit(settings.templates_dir / SECOND / "push_body.txt", "{{", '{{ _("Only on Acme") }}{{')
    before = {p: p.read_bytes() for p in settings.locales_dir.rglob(f"{FIRST}.po*")}

    assert _i18n(settings, "extract", SECOND).exit_code == 0
    assert _i18n(settings, "update", SECOND).exit_code == 0

    assert {p: p.read_bytes() for p in settings.locales_dir.rglob(f"{FIRST}.po*")} == before
    po = catalog_path(settings.locales_dir, "id", domain=SECOND)
    assert {m.id: m.string for m in _entries(po, "id")}["Only on Acme"] == ""


def test_check_gates_each_campaign_against_its_own_template(settings: Settings) -> None:
    po = catalog_path(settings.locales_dir, "es-MX", domain=SECOND)
    _edit(po, 'msgstr "Último día"', 'msgstr ""')

    first_only = _i18n(settings, "check", FIRST)
    assert first_only.exit_code == 0, first_only.output
    assert first_only.output == (f"catalogs ok: en, es-MX, id, pt-BR; every message of {FIRST} renders within its "
                                 "limits\n")
    both = _i18n(settings, "check")
    assert isinstance(both.exception, CampaignError)
    line = po.read_text(encoding="utf-8").splitlines().index('msgid "Last day"') + 1
    assert both.exception.problems == [Problem(str(po), line, "msgid 'Last day' (es-MX)", "untranslated")]


def test_check_names_a_campaign_whose_catalogs_were_never_made(settings: Settings) -> None:
    pot_path(settings.locales_dir, SECOND).unlink()
    assert check_catalogs(settings.locales_dir, ("en",), SECOND) == [
        Problem(str(pot_path(settings.locales_dir, SECOND)), None, None,
                f"missing (run: notifier i18n extract {SECOND})")]
    with pytest.raises(CatalogError, match=f"run: notifier i18n extract {SECOND}"):
        from notifier.catalogs import update

        update(settings.locales_dir, ("en",), SECOND)


def test_the_committed_catalogs_pass_the_gate_for_every_shipped_campaign() -> None:
    result = CliRunner().invoke(cli, ["i18n", "check"], env={"NOTIFIER_LOCALES_DIR": str(ROOT / "locales"),
                                                             "NOTIFIER_TEMPLATES_DIR": str(ROOT / "templates"),
                                                             "NOTIFIER_CAMPAIGNS_DIR": str(ROOT / "campaigns")})
    assert result.exit_code == 0, result.output
    assert result.output == (f"catalogs ok: en, es-MX, id, pt-BR; every message of {FIRST} renders within its limits\n"
                             "catalogs ok: the pages of notifier serve\n")


def test_an_untranslated_string_of_the_serve_pages_fails_the_gate(tmp_path: Path) -> None:
    from notifier.web import locales

    copy = tmp_path / "web-locales"
    shutil.copytree(locales.HERE, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    po = copy / "id" / "LC_MESSAGES" / "web.po"
    po.write_text(po.read_text(encoding="utf-8").replace('msgstr "Berhenti berlangganan"', 'msgstr ""'),
                  encoding="utf-8")
    from notifier.catalogs import check_catalogs

    problems = check_catalogs(copy, locales.UI_LOCALES, locales.DOMAIN)
    assert problems and "web.po" in str(problems[0])
