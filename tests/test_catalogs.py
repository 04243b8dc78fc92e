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
from notifier.catalogs import check_catalogs, expected_plural_forms, extract, pot_path, refit_plural_forms, update
from notifier.errors import Problem
from notifier.i18n import catalog_path, load_translations, posix
from tests.conftest import CAMPAIGN_FILE, ROOT

CAMPAIGN = load_campaign(CAMPAIGN_FILE)
LOCALES, DOMAIN = CAMPAIGN.locales, CAMPAIGN.id
TEMPLATES = ROOT / "templates" / "tiktok-music-shutdown"


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


# --- the committed catalogs --------------------------------------------------------------------------------


def test_the_committed_pot_has_exactly_the_strings_of_the_templates(tmp_path: Path) -> None:
    count = extract(TEMPLATES, tmp_path, DOMAIN)
    fresh, committed = _msgids(pot_path(tmp_path, DOMAIN)), _msgids(pot_path(ROOT / "locales", DOMAIN))
    assert fresh == committed
    assert count == len(committed) == 36  # 30, and "in Brazil" and its kin: a phrase per country (and one for others)
    assert ("%(num)d day left", "%(num)d days left") in committed


def test_the_committed_catalogs_pass_the_gate() -> None:
    assert check_catalogs(ROOT / "locales", LOCALES, DOMAIN) == []


def test_no_compiled_catalog_is_committed_or_needed() -> None:
    tracked = subprocess.run(["git", "ls-files", "locales"], capture_output=True, text=True, cwd=ROOT).stdout.split()
    assert tracked and not [f for f in tracked if f.endswith(".mo")]


def test_file_timestamps_and_stray_mo_files_change_nothing(locales: Path) -> None:
    """A clone's files carry whatever times git gave them; a leftover .mo from another tool is not read."""
    for i, po in enumerate(sorted(locales.rglob("*.po"))):
        os.utime(po, (i * 1_000_000, i * 1_000_000))  # 1970, older than the template
    os.utime(pot_path(locales, DOMAIN), None)
    catalog_path(locales, "pt-BR", "mo", domain=DOMAIN).write_bytes(b"not a catalog")
    assert check_catalogs(locales, LOCALES, DOMAIN) == []
    assert load_translations(locales, "pt-BR", DOMAIN).ugettext("Last day") == "Último dia"


def test_the_plural_rules_we_ship_are_cldrs() -> None:
    """Our table against the CLDR data of the installed Babel (each form's category in gettext's order)."""
    from babel import Locale

    from notifier.catalogs import _plural_rule
    order = ("zero", "one", "two", "few", "many", "other")
    for locale in LOCALES:
        cldr = Locale.parse(posix(locale)).plural_form
        used = [tag for tag in order if tag in cldr.tags | {"other"}]
        nplurals, rule = _plural_rule(expected_plural_forms(locale))
        assert nplurals == len(used), locale
        for n in (0, 1, 2, 3, 5, 11, 21, 100, 101, 1_000, 1_000_000, 2_000_000, 10_000_000):
            assert used[rule(n)] == cldr(n), (locale, n)


# --- the gate catches each kind of broken catalog ----------------------------------------------------------


def test_an_untranslated_entry_is_named_by_file_line_msgid_and_locale(locales: Path) -> None:
    po = catalog_path(locales, "pt-BR", "po", domain=DOMAIN)
    _edit(po, 'msgstr "Último dia"', 'msgstr ""')
    assert check_catalogs(locales, LOCALES, DOMAIN) == [
        Problem(str(po), _line_of(po, 'msgid "Last day"'), "msgid 'Last day' (pt-BR)", "untranslated"),
    ]


def test_a_fuzzy_entry_fails_until_a_translator_reviews_it(locales: Path) -> None:
    po = catalog_path(locales, "es-MX", "po", domain=DOMAIN)
    _edit(po, '#, python-format\nmsgid "Hi %(name)s,"', '#, fuzzy, python-format\nmsgid "Hi %(name)s,"')
    assert check_catalogs(locales, LOCALES, DOMAIN) == [
        Problem(str(po), _line_of(po, 'msgid "Hi %(name)s,"'), "msgid 'Hi %(name)s,' (es-MX)",
                "fuzzy: a translator must review it before it can be sent"),
    ]


def test_a_translation_that_drops_a_placeholder_fails(locales: Path) -> None:
    po = catalog_path(locales, "pt-BR", "po", domain=DOMAIN)
    _edit(po, 'msgstr "O TikTok Music será encerrado em %(date)s"', 'msgstr "O TikTok Music será encerrado em breve"')
    problems = check_catalogs(locales, LOCALES, DOMAIN)
    assert problems == [
        Problem(str(po), _line_of(po, 'msgid "TikTok Music is closing on %(date)s"'),
                "msgid 'TikTok Music is closing on %(date)s' (pt-BR)", "form 0 drops placeholder(s) date"),
    ]
    assert str(problems[0]).startswith(f"{po}:")


def test_a_translation_that_invents_a_placeholder_fails(locales: Path) -> None:
    po = catalog_path(locales, "pt-BR", "po", domain=DOMAIN)
    _edit(po, 'msgstr "Valor estimado do seu reembolso: %(amount)s."',
          'msgstr "Valor estimado do seu reembolso: %(amount)s %(oops)s."')
    assert check_catalogs(locales, LOCALES, DOMAIN) == [
        Problem(str(po), _line_of(po, 'msgid "Your estimated refund: %(amount)s."'),
                "msgid 'Your estimated refund: %(amount)s.' (pt-BR)", "form 0 adds placeholder(s) oops"),
    ]


def test_a_plural_entry_missing_a_form_fails(locales: Path) -> None:
    po = catalog_path(locales, "es-MX", "po", domain=DOMAIN)
    _edit(po, 'msgstr[2] "%(num)d días restantes"\n', '')
    # Babel pads a missing form with "" when it reads the file, so the gate sees that form as untranslated.
    assert check_catalogs(locales, LOCALES, DOMAIN) == [
        Problem(str(po), _line_of(po, 'msgid "%(num)d day left"'), "msgid '%(num)d day left' (es-MX)", "untranslated"),
    ]


def test_an_indonesian_header_with_two_plural_forms_fails(locales: Path) -> None:
    po = catalog_path(locales, "id", "po", domain=DOMAIN)
    _edit(po, "nplurals=1; plural=0;", "nplurals=2; plural=(n != 1);")
    problems = check_catalogs(locales, LOCALES, DOMAIN)
    assert problems[0] == Problem(str(po), None, "Plural-Forms", "header says 'nplurals=2; plural=(n != 1);', "
                                                                 "id needs 'nplurals=1; plural=0;'")
    # Each one-form plural entry now lacks the second form the header asks for.
    plural_ids = ["%(num)d day left", "%(num)d day left to transfer your TikTok Music playlists",
                  "%(num)d day left to request your TikTok Music refund"]
    assert [(p.field, p.message) for p in problems[1:4]] == [(f"msgid {i!r} (id)", "untranslated") for i in plural_ids]
    assert {p.file for p in problems} == {str(po)} and len(problems) == 4


def test_an_edited_po_is_what_is_read_next_with_nothing_to_compile(locales: Path) -> None:
    assert load_translations(locales, "id", DOMAIN).ugettext("Last day") == "Hari terakhir"
    po = catalog_path(locales, "id", "po", domain=DOMAIN)
    _edit(po, 'msgstr "Hari terakhir"', 'msgstr "Hari Terakhir"')
    assert check_catalogs(locales, LOCALES, DOMAIN) == []
    assert load_translations(locales, "id", DOMAIN).ugettext("Last day") == "Hari Terakhir"


def test_every_problem_of_every_locale_is_reported_at_once(locales: Path) -> None:
    _edit(catalog_path(locales, "pt-BR", "po", domain=DOMAIN), 'msgstr "Último dia"', 'msgstr ""')
    _edit(catalog_path(locales, "es-MX", "po", domain=DOMAIN), 'msgstr "Último día"', 'msgstr ""')
    _edit(catalog_path(locales, "id", "po", domain=DOMAIN), 'msgstr "Hari terakhir"', 'msgstr ""')
    untranslated = {p.field for p in check_catalogs(locales, LOCALES, DOMAIN) if p.message == "untranslated"}
    assert untranslated == {"msgid 'Last day' (pt-BR)", "msgid 'Last day' (es-MX)", "msgid 'Last day' (id)"}


# --- update keeps translations and adds new strings untranslated -------------------------------------------


def test_update_keeps_translations_and_adds_a_new_string_as_untranslated(tmp_path: Path, locales: Path) -> None:
    templates = Path(shutil.copytree(TEMPLATES, tmp_path / "templates" / "tiktok-music-shutdown"))
    push_body = templates / "push_body.txt"
    push_body.write_text(push_body.read_text(encoding="utf-8") + '{{ _("A brand new sentence") }}\n',
                         encoding="utf-8")
    assert extract(templates, locales, DOMAIN) == 37
    update(locales, LOCALES, DOMAIN)

    problems = check_catalogs(locales, LOCALES, DOMAIN)
    new = [p for p in problems if p.field and "'A brand new sentence'" in p.field]
    assert {(p.field, p.message) for p in new} == {
        (f"msgid 'A brand new sentence' ({loc})", "untranslated") for loc in LOCALES}
    assert {p.file for p in new} == {str(catalog_path(locales, loc, "po", domain=DOMAIN)) for loc in LOCALES}
    assert all(p in new for p in problems)

    for loc, last_day, days_left in (("id", "Hari terakhir", ("%(num)d hari lagi",)),
                                     ("pt-BR", "Último dia", ("%(num)d dia restante", "%(num)d de dias restantes",
                                                             "%(num)d dias restantes")),
                                     ("es-MX", "Último día", ("%(num)d día restante", "%(num)d de días restantes",
                                                             "%(num)d días restantes"))):
        catalog = _read(catalog_path(locales, loc, "po", domain=DOMAIN), loc)
        assert catalog["Last day"].string == last_day
        assert catalog["%(num)d day left"].string == days_left
        assert not any(m.fuzzy for m in catalog if m.id)
        kept = {m.id: m.string for m in _read(catalog_path(ROOT / "locales", loc, "po", domain=DOMAIN), loc) if m.id}
        assert {m.id: m.string for m in catalog if m.id and m.id != "A brand new sentence"} == kept


def _as_babel_2_18_wrote_it(po: Path) -> None:
    """The es-MX catalog as it was before CLDR's "many": two plural forms, one and other."""
    text = po.read_text(encoding="utf-8").replace(expected_plural_forms("es-MX"), "nplurals=2; plural=(n != 1);")
    lines = text.splitlines(keepends=True)
    po.write_text("".join(line.replace("msgstr[2]", "msgstr[1]") for line in lines
                          if not line.startswith("msgstr[1]")), encoding="utf-8")


def test_update_to_a_rule_with_more_forms_keeps_each_form_and_flags_the_new_one(locales: Path) -> None:
    po = catalog_path(locales, "es-MX", "po", domain=DOMAIN)
    _as_babel_2_18_wrote_it(po)
    assert _read(po, "es-MX")["%(num)d day left"].string == ("%(num)d día restante", "%(num)d días restantes")

    update(locales, LOCALES, DOMAIN)

    catalog = _read(po, "es-MX")
    assert catalog.plural_forms == expected_plural_forms("es-MX")
    entry = catalog["%(num)d day left"]
    # "other" stays "other" (7 days), the new "many" (millions) starts as its copy: no form is ever empty.
    assert entry.string == ("%(num)d día restante", "%(num)d días restantes", "%(num)d días restantes")
    assert entry.fuzzy
    plurals = [m for m in catalog if m.id and isinstance(m.id, tuple)]
    assert len(plurals) == 3 and all(all(m.string) and m.fuzzy for m in plurals)
    # The gate (and so campaign validate and schedule) refuses until a translator has looked at them.
    assert {(p.field, p.message) for p in check_catalogs(locales, LOCALES, DOMAIN)} == {
        (f"msgid {m.id[0]!r} (es-MX)", "fuzzy: a translator must review it before it can be sent") for m in plurals}
    # An entry whose forms did not change stays as it was.
    assert not catalog["Last day"].fuzzy


def test_refitting_plural_forms_maps_each_form_by_the_numbers_it_covers() -> None:
    es_old, es_new = "nplurals=2; plural=(n != 1);", expected_plural_forms("es-MX")
    assert refit_plural_forms(("one", "other"), es_old, es_new) == (("one", "other", "other"), True)
    pt_old = "nplurals=2; plural=(n > 1);"
    assert refit_plural_forms(("one", "other"), pt_old, expected_plural_forms("pt-BR")) == (
        ("one", "other", "other"), True)
    # Fewer forms (Indonesian's wrong two-form header to its one): the form most numbers used.
    assert refit_plural_forms(("satu", "lain"), "nplurals=2; plural=(n != 1);", "nplurals=1; plural=0;") == (
        ("lain",), True)
    assert refit_plural_forms(("one", "other"), es_old, es_old) == (("one", "other"), False)


# --- the CLI gate ------------------------------------------------------------------------------------------


def _check(locales_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOTIFIER_LOCALES_DIR": str(locales_dir)}
    return subprocess.run([sys.executable, "-m", "notifier", "i18n", "check"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_i18n_check_exits_2_with_one_line_per_problem_on_a_broken_catalog(locales: Path) -> None:
    po = catalog_path(locales, "pt-BR", "po", domain=DOMAIN)
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
    ]


def test_i18n_check_passes_on_the_committed_catalogs() -> None:
    result = _check(ROOT / "locales")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("catalogs ok: en, es-MX, id, pt-BR;")
