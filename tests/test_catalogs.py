"""The translation gate: committed catalogs are current and sound, and every kind of broken catalog is caught.

Every test that breaks or rewrites a catalog works on a copy under tmp_path; the real locales/ is only read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from notifier.campaign import load_campaign
from notifier.catalogs import check_catalogs, compile_catalogs, extract, pot_path, update
from notifier.errors import Problem
from notifier.i18n import catalog_path, posix
from tests.conftest import CAMPAIGN_FILE, ROOT

LOCALES = load_campaign(CAMPAIGN_FILE).locales
TEMPLATES = ROOT / "templates" / "tiktok-music-shutdown"
STALE_MO = "compiled catalog is missing or older than messages.po (run: notifier i18n compile)"


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    """A copy of the committed catalogs that a test may break."""
    return Path(shutil.copytree(ROOT / "locales", tmp_path / "locales"))


def _edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (which must occur once) in a catalog; returns the 1-based line where ``old`` started."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} should occur once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def _line_of(path: Path, line_text: str) -> int:
    return path.read_text(encoding="utf-8").splitlines().index(line_text) + 1


def _msgids(pot: Path) -> set[tuple[str, str | None]]:
    with pot.open("rb") as f:
        catalog = read_po(f)
    return {(m.id, None) if isinstance(m.id, str) else (m.id[0], m.id[1]) for m in catalog if m.id}


def _read(po: Path, locale: str) -> Catalog:
    with po.open("rb") as f:
        return read_po(f, locale=posix(locale))


def _stale(locales_dir: Path, locale: str) -> Problem:
    return Problem(str(catalog_path(locales_dir, locale, "mo")), None, None, STALE_MO)


# --- the committed catalogs --------------------------------------------------------------------------------


def test_the_committed_pot_has_exactly_the_strings_of_the_templates(tmp_path: Path) -> None:
    count = extract([TEMPLATES], tmp_path)
    fresh, committed = _msgids(pot_path(tmp_path)), _msgids(pot_path(ROOT / "locales"))
    assert fresh == committed
    assert count == len(committed) == 30
    assert ("%(num)d day left", "%(num)d days left") in committed


def test_the_committed_catalogs_pass_the_gate() -> None:
    assert check_catalogs(ROOT / "locales", LOCALES) == []


def test_the_committed_mo_files_are_what_compiling_the_po_files_produces(locales: Path) -> None:
    written = compile_catalogs(locales, LOCALES)
    assert len(written) == len(LOCALES)
    for locale in LOCALES:
        assert catalog_path(locales, locale).read_bytes() == catalog_path(ROOT / "locales", locale).read_bytes(), locale


# --- the gate catches each kind of broken catalog ----------------------------------------------------------


def test_an_untranslated_entry_is_named_by_file_line_msgid_and_locale(locales: Path) -> None:
    po = catalog_path(locales, "pt-BR", "po")
    _edit(po, 'msgstr "Último dia"', 'msgstr ""')
    assert check_catalogs(locales, LOCALES) == [
        Problem(str(po), _line_of(po, 'msgid "Last day"'), "msgid 'Last day' (pt-BR)", "untranslated"),
        _stale(locales, "pt-BR"),
    ]


def test_a_fuzzy_entry_fails_until_a_translator_reviews_it(locales: Path) -> None:
    po = catalog_path(locales, "es-MX", "po")
    _edit(po, '#, python-format\nmsgid "Hi %(name)s,"', '#, fuzzy, python-format\nmsgid "Hi %(name)s,"')
    assert check_catalogs(locales, LOCALES) == [
        Problem(str(po), _line_of(po, 'msgid "Hi %(name)s,"'), "msgid 'Hi %(name)s,' (es-MX)",
                "fuzzy: a translator must review it before it can be sent"),
        _stale(locales, "es-MX"),  # gettext leaves fuzzy entries out of the .mo
    ]


def test_a_translation_that_drops_a_placeholder_fails(locales: Path) -> None:
    po = catalog_path(locales, "pt-BR", "po")
    _edit(po, 'msgstr "O TikTok Music será encerrado em %(date)s"', 'msgstr "O TikTok Music será encerrado em breve"')
    problems = check_catalogs(locales, LOCALES)
    assert problems == [
        Problem(str(po), _line_of(po, 'msgid "TikTok Music is closing on %(date)s"'),
                "msgid 'TikTok Music is closing on %(date)s' (pt-BR)", "form 0 drops placeholder(s) date"),
        _stale(locales, "pt-BR"),
    ]
    assert str(problems[0]).startswith(f"{po}:")


def test_a_translation_that_invents_a_placeholder_fails(locales: Path) -> None:
    po = catalog_path(locales, "pt-BR", "po")
    _edit(po, 'msgstr "Valor estimado do seu reembolso: %(amount)s."',
          'msgstr "Valor estimado do seu reembolso: %(amount)s %(oops)s."')
    assert check_catalogs(locales, LOCALES) == [
        Problem(str(po), _line_of(po, 'msgid "Your estimated refund: %(amount)s."'),
                "msgid 'Your estimated refund: %(amount)s.' (pt-BR)", "form 0 adds placeholder(s) oops"),
        _stale(locales, "pt-BR"),
    ]


def test_a_plural_entry_missing_a_form_fails(locales: Path) -> None:
    po = catalog_path(locales, "es-MX", "po")
    _edit(po, 'msgstr[0] "%(num)d día restante"\nmsgstr[1] "%(num)d días restantes"\n',
          'msgstr[0] "%(num)d días restantes"\n')
    # Babel pads a missing form with "" when it reads the file, so the gate sees that form as untranslated.
    assert check_catalogs(locales, LOCALES) == [
        Problem(str(po), _line_of(po, 'msgid "%(num)d day left"'), "msgid '%(num)d day left' (es-MX)", "untranslated"),
        _stale(locales, "es-MX"),
    ]


def test_an_indonesian_header_with_two_plural_forms_fails(locales: Path) -> None:
    po = catalog_path(locales, "id", "po")
    _edit(po, "nplurals=1; plural=0;", "nplurals=2; plural=(n != 1);")
    problems = check_catalogs(locales, LOCALES)
    assert problems[0] == Problem(str(po), None, "Plural-Forms", "header says 'nplurals=2; plural=(n != 1);', "
                                                                 "id needs 'nplurals=1; plural=0;'")
    # Each one-form plural entry now lacks the second form the header asks for.
    plural_ids = ["%(num)d day left", "%(num)d day left to transfer your TikTok Music playlists",
                  "%(num)d day left to request your TikTok Music refund"]
    assert [(p.field, p.message) for p in problems[1:4]] == [(f"msgid {i!r} (id)", "untranslated") for i in plural_ids]
    assert {p.file for p in problems[:4]} == {str(po)}
    assert problems[4:] == [_stale(locales, "id")]


def test_a_po_edited_without_recompiling_fails_until_compiled(locales: Path) -> None:
    po = catalog_path(locales, "id", "po")
    _edit(po, 'msgstr "Hari terakhir"', 'msgstr "Hari Terakhir"')
    assert check_catalogs(locales, LOCALES) == [_stale(locales, "id")]
    compile_catalogs(locales, ["id"])
    assert check_catalogs(locales, LOCALES) == []


def test_every_problem_of_every_locale_is_reported_at_once(locales: Path) -> None:
    _edit(catalog_path(locales, "pt-BR", "po"), 'msgstr "Último dia"', 'msgstr ""')
    _edit(catalog_path(locales, "es-MX", "po"), 'msgstr "Último día"', 'msgstr ""')
    _edit(catalog_path(locales, "id", "po"), 'msgstr "Hari terakhir"', 'msgstr ""')
    untranslated = {p.field for p in check_catalogs(locales, LOCALES) if p.message == "untranslated"}
    assert untranslated == {"msgid 'Last day' (pt-BR)", "msgid 'Last day' (es-MX)", "msgid 'Last day' (id)"}


# --- update keeps translations and adds new strings untranslated -------------------------------------------


def test_update_keeps_translations_and_adds_a_new_string_as_untranslated(tmp_path: Path, locales: Path) -> None:
    templates = Path(shutil.copytree(TEMPLATES, tmp_path / "templates" / "tiktok-music-shutdown"))
    push_body = templates / "push_body.txt"
    push_body.write_text(push_body.read_text(encoding="utf-8") + '{{ _("A brand new sentence") }}\n',
                         encoding="utf-8")
    assert extract([templates], locales) == 31
    update(locales, LOCALES)

    problems = check_catalogs(locales, LOCALES)
    new = [p for p in problems if p.field and "'A brand new sentence'" in p.field]
    assert {(p.field, p.message) for p in new} == {
        (f"msgid 'A brand new sentence' ({loc})", "untranslated") for loc in LOCALES}
    assert {p.file for p in new} == {str(catalog_path(locales, loc, "po")) for loc in LOCALES}
    assert all(p.message == STALE_MO or p in new for p in problems)

    for loc, last_day, days_left in (("id", "Hari terakhir", ("%(num)d hari lagi",)),
                                     ("pt-BR", "Último dia", ("%(num)d dia restante", "%(num)d dias restantes")),
                                     ("es-MX", "Último día", ("%(num)d día restante", "%(num)d días restantes"))):
        catalog = _read(catalog_path(locales, loc, "po"), loc)
        assert catalog["Last day"].string == last_day
        assert catalog["%(num)d day left"].string == days_left
        assert not any(m.fuzzy for m in catalog if m.id)
        kept = {m.id: m.string for m in _read(catalog_path(ROOT / "locales", loc, "po"), loc) if m.id}
        assert {m.id: m.string for m in catalog if m.id and m.id != "A brand new sentence"} == kept


# --- the CLI gate ------------------------------------------------------------------------------------------


def _check(locales_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOTIFIER_LOCALES_DIR": str(locales_dir)}
    return subprocess.run([sys.executable, "-m", "notifier", "i18n", "check"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_i18n_check_exits_2_with_one_line_per_problem_on_a_broken_catalog(locales: Path) -> None:
    po = catalog_path(locales, "pt-BR", "po")
    _edit(po, 'msgstr "O TikTok Music será encerrado em %(date)s"', 'msgstr "O TikTok Music será encerrado em breve"')
    _edit(po, 'msgstr "Último dia"', 'msgstr ""')
    result = _check(locales)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    date_line = _line_of(po, 'msgid "TikTok Music is closing on %(date)s"')
    last_day_line = _line_of(po, 'msgid "Last day"')
    assert result.stderr.splitlines() == [
        f"error: {po}:{date_line}: msgid 'TikTok Music is closing on %(date)s' (pt-BR): "
        "form 0 drops placeholder(s) date",
        f"error: {po}:{last_day_line}: msgid 'Last day' (pt-BR): untranslated",
        f"error: {catalog_path(locales, 'pt-BR', 'mo')}: {STALE_MO}",
    ]


def test_i18n_check_passes_on_the_committed_catalogs() -> None:
    result = _check(ROOT / "locales")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("catalogs ok: en, es-MX, id, pt-BR;")
