"""Push length: the shipped copy fits Android's collapsed view in every language, and the gate holds the line.

The gate warns of a body over 110 characters (cut in Android's collapsed view) and a title over 40, and refuses a
body over 178 (cut on iOS's lock screen) and a title over 65, naming the locale, the send and the text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from notifier.campaign import Campaign, load_campaign, zone
from notifier.errors import Problem
from notifier.i18n import catalog_path, format_day
from notifier.planner import plan_zone
from notifier.preview import write_gallery
from notifier.render import PUSH_BODY_FITS, PUSH_BODY_MAX, PUSH_TITLE_FITS, Personal, Renderer
from notifier.review import SAMPLE_PLACES, review, warnings
from tests.conftest import CAMPAIGN_FILE, ROOT

CAMPAIGN = load_campaign(CAMPAIGN_FILE)
TEMPLATES = ROOT / "templates"
WHERE = str(TEMPLATES / CAMPAIGN.templates)
# A push body with no placeholder: its msgstr is the whole rendered body (pt-BR's sample sends it once).
LAST_DAY_MSGSTR = 'msgstr "Hoje é o último dia para transferir suas playlists para outro serviço de música."'
LAST_DAY_SEND = "pt-BR playlist-transfer@P1D"


def _every_push(campaign: Campaign) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """("locale country send", stage, title, body, deadline dates) of every push the campaign can send: each
    locale × country (in its sample zone) × planned send, and each deadline of a merged send on its own (the
    staleness guard may drop the others)."""
    renderer = Renderer(TEMPLATES, ROOT / "locales")
    found = []
    for country in campaign.countries:
        tz = zone(SAMPLE_PLACES[country].zone)
        for send in plan_zone(campaign, tz).sends:
            alone = [tuple(i for i in send.items if i.deadline == d) for d in send.deadlines]
            for items in dict.fromkeys([send.items, *alone]):
                for locale in campaign.locales:
                    v = renderer.variant(campaign, locale, items, tz, send.send_at, country, Personal("Ana", "x"))
                    dates = tuple(format_day(campaign.deadline(i.deadline).instant_in(tz).date(), locale, country)
                                  for i in items)
                    label = "+".join(f"{i.deadline}@{i.wave}" for i in items)
                    found.append((f"{locale} {country} {label}", v.stage, v.push_title, v.push_body, dates))
    return found


def test_every_shipped_push_shows_whole_in_androids_collapsed_view() -> None:
    pushes = _every_push(CAMPAIGN)
    assert len(pushes) == 4 * 5 * 8  # 4 locales × 5 countries × (7 sends + the merged send's 2 deadlines alone)
    assert {stage for _, stage, *_ in pushes} == {"announcement", "reminder", "last_day"}
    too_long = [(where, len(body), body) for where, _, _, body, _ in pushes if len(body) > PUSH_BODY_FITS]
    assert too_long == []
    assert [(where, title) for where, _, title, _, _ in pushes if len(title) > PUSH_TITLE_FITS] == []


def test_no_shipped_push_names_a_date_twice() -> None:
    """The refund deadline is the closing day: a merged body once said "28 November 2024" twice."""
    pushes = _every_push(CAMPAIGN)
    assert [(where, body) for where, _, _, body, dates in pushes if any(body.count(d) > 1 for d in dates)] == []
    merged = [(where, body, dates) for where, _, _, body, dates in pushes if len(dates) == 2]
    assert len(merged) == 4 * 5  # the first send, in each locale and country: it names both deadlines, once each
    assert [where for where, body, dates in merged if any(body.count(d) != 1 for d in dates)] == []


# --- the gate --------------------------------------------------------------------------------------------


def _body_of(length: int) -> str:
    sentence = "Hoje é o último dia para transferir suas playlists, que depois não poderão ser recuperadas."
    text = " ".join([sentence] * 3)[:length - 1].rstrip() + "."
    assert len(text) == length and "  " not in text
    return text


def _locales_with_last_day_body(tmp_path: Path, body: str) -> Path:
    """A copy of the shipped catalogs where pt-BR's last-day transfer push body is ``body``."""
    locales = Path(shutil.copytree(ROOT / "locales", tmp_path / "locales"))
    po = catalog_path(locales, "pt-BR", "po", domain=CAMPAIGN.id)
    text = po.read_text(encoding="utf-8")
    assert text.count(LAST_DAY_MSGSTR) == 1
    po.write_text(text.replace(LAST_DAY_MSGSTR, f'msgstr "{body}"'), encoding="utf-8")
    return locales


def test_the_shipped_copy_passes_the_gate_without_a_warning() -> None:
    renderer = Renderer(TEMPLATES, ROOT / "locales")
    assert review(CAMPAIGN, renderer) == [] and warnings(CAMPAIGN, renderer) == []


def test_a_push_body_over_110_characters_is_a_warning_naming_the_locale_and_the_text(tmp_path: Path) -> None:
    body = _body_of(120)
    renderer = Renderer(TEMPLATES, _locales_with_last_day_body(tmp_path, body))

    assert review(CAMPAIGN, renderer) == []  # it may be sent
    assert warnings(CAMPAIGN, renderer) == [Problem(
        WHERE, None, LAST_DAY_SEND,
        f"push body is 120 characters: Android's collapsed view cuts it after 110: {body!r}")]


def test_a_push_body_of_110_characters_passes_without_a_warning(tmp_path: Path) -> None:
    renderer = Renderer(TEMPLATES, _locales_with_last_day_body(tmp_path, _body_of(PUSH_BODY_FITS)))
    assert review(CAMPAIGN, renderer) == [] and warnings(CAMPAIGN, renderer) == []


def test_a_push_body_over_178_characters_is_refused_naming_the_locale_and_the_text(tmp_path: Path) -> None:
    body = _body_of(180)
    renderer = Renderer(TEMPLATES, _locales_with_last_day_body(tmp_path, body))

    assert review(CAMPAIGN, renderer) == [Problem(
        WHERE, None, LAST_DAY_SEND, f"push body is 180 characters (limit {PUSH_BODY_MAX}): {body!r}")]
    assert warnings(CAMPAIGN, renderer) == []  # refused, not warned of


def test_a_push_title_over_40_characters_is_a_warning(tmp_path: Path) -> None:
    templates = Path(shutil.copytree(TEMPLATES, tmp_path / "templates"))
    (templates / CAMPAIGN.templates / "push_title.txt").write_text("{{ 'T' * 45 }}", encoding="utf-8")
    renderer = Renderer(templates, ROOT / "locales")
    found = warnings(CAMPAIGN, renderer)
    said = f"push title is 45 characters: iOS and small Androids cut it after 40: {'T' * 45!r}"
    assert found and all(p.message == said for p in found)
    assert {p.field.split()[0] for p in found if p.field} == set(CAMPAIGN.locales)


def _i18n_check(locales: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOTIFIER_LOCALES_DIR": str(locales)}
    return subprocess.run([sys.executable, "-m", "notifier", "i18n", "check", str(CAMPAIGN_FILE)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_i18n_check_warns_of_a_long_push_and_still_passes(tmp_path: Path) -> None:
    body = _body_of(120)
    result = _i18n_check(_locales_with_last_day_body(tmp_path, body))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: {WHERE}: {LAST_DAY_SEND}: push body is 120 characters: Android's collapsed view cuts it after "
        f"110: {body!r}"]
    assert result.stdout.startswith("catalogs ok: en, es-MX, id, pt-BR;")


def test_i18n_check_refuses_a_push_over_178_characters_with_exit_2(tmp_path: Path) -> None:
    body = _body_of(180)
    result = _i18n_check(_locales_with_last_day_body(tmp_path, body))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {WHERE}: {LAST_DAY_SEND}: push body is 180 characters (limit 178): {body!r}"]



def test_the_gallery_flags_a_long_push_in_the_gates_own_words(tmp_path: Path) -> None:
    body = _body_of(120)
    renderer = Renderer(TEMPLATES, _locales_with_last_day_body(tmp_path, body))
    page = write_gallery(CAMPAIGN, renderer, tmp_path / "gallery", datetime(2024, 9, 1, tzinfo=UTC))

    assert "push body is 120 characters: Android&#x27;s collapsed view cuts it after 110" in page.read_text()
