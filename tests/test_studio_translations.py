"""Translations side by side, and out to translators and back: PO edited with Babel, XLIFF 2.0 edited with
translate-toolkit; an entry that breaks the gate is refused with its file and line (or unit), the rest taken."""

from __future__ import annotations

import io

import pytest
from babel.messages.pofile import read_po, write_po
from lxml import etree
from translate.storage.xliff2 import Xliff2File

from notifier.errors import CampaignError, NotFound
from notifier.studio import store
from notifier.studio.translations import (
    check_forms,
    entries,
    export_po,
    export_xliff,
    gate,
    import_translations,
    set_translations,
)
from tests.test_studio_words import acme_bundle, acme_words, reminder_of, translate_rest

HELLO = "Hi %(name)s,"
DAYS = "%(num)d day left"  # the reminder's heading: a plural


def by_key(bundle: store.Bundle, locale: str) -> dict:
    return {e.key: e for e in entries(bundle, locale)}


def test_entries_show_status_plural_forms_of_the_target_and_where_the_text_is_used() -> None:
    bundle = set_translations(acme_bundle(), "pt-BR", {HELLO: ["Olá, %(name)s,"]})
    pt, ident, en = by_key(bundle, "pt-BR"), by_key(bundle, "id"), by_key(bundle, "en")
    assert pt[HELLO].status == "done" and pt[HELLO].target == ("Olá, %(name)s,",)
    assert pt[DAYS].plural_names == ("one", "many", "other") and pt[DAYS].target == ("", "", "")
    assert ident[DAYS].plural_names == ("other",) and ident[DAYS].status == "missing"
    assert pt[HELLO].plural_names == ()
    assert en[DAYS].status == "done" and en[DAYS].plural_names == ("one", "other")
    assert pt[HELLO].where and all(w.startswith("price-change/_copy.j2:") for w in pt[HELLO].where)


def test_entry_problems_name_a_dropped_placeholder_and_a_push_too_long() -> None:
    long = "Hari terakhir untuk bertindak adalah %(date)s. " * 5
    bundle = set_translations(acme_bundle(), "id", {HELLO: ["Halo,"], "Last chance: %(deadline)s": ["Kesempatan"],
                                                     "%(deadline)s: the last day to act is %(date)s.": [long]})
    found = by_key(bundle, "id")
    assert found[HELLO].problems == ("form 0 drops placeholder(s) name",)
    assert any("push body is about" in p and "limit 178" in p
               for p in found["%(deadline)s: the last day to act is %(date)s."].problems)


def test_set_translations_refuses_an_unknown_entry_or_the_wrong_number_of_forms() -> None:
    with pytest.raises(CampaignError) as caught:
        set_translations(acme_bundle(), "pt-BR", {"Nope": ["Não"], DAYS: ["%(num)d dia", "%(num)d dias"]})
    assert {p.field for p in caught.value.problems} == {"Nope", DAYS}
    with pytest.raises(NotFound):
        entries(acme_bundle(), "fr")


def test_a_po_exported_edited_with_babel_and_imported_is_taken_and_renders() -> None:
    bundle = translate_rest(acme_bundle(), "id")
    exported = read_po(io.BytesIO(export_po(bundle, "pt-BR")), locale="pt_BR")
    for m in exported:
        if m.id:
            m.string = tuple(f"(pt) {m.id[-1]}" for _ in range(3)) if isinstance(m.id, tuple) else f"(pt) {m.id}"
    buf = io.BytesIO()
    write_po(buf, exported)
    imported, problems = import_translations(bundle, "pt-BR", buf.getvalue(), "acme-pt_BR.po")
    assert problems == []
    assert {e.status for e in entries(imported, "pt-BR")} == {"done"}
    assert gate(imported)[0] == []
    assert reminder_of(imported, "pt-BR").push.title == "(pt) 7 days left"


def test_an_import_with_a_dropped_placeholder_refuses_that_entry_with_file_and_line_and_takes_the_rest() -> None:
    bundle = acme_bundle()
    exported = read_po(io.BytesIO(export_po(bundle, "id")), locale="id")
    exported[HELLO].string = "Halo,"  # %(name)s dropped
    exported["Act now"].string = "Bertindak sekarang"
    exported["Last chance"].string = "Kesempatan terakhir %(refund)s"  # invented
    buf = io.BytesIO()
    write_po(buf, exported)
    lines = buf.getvalue().decode().splitlines()
    hello_line = lines.index(f'msgid "{HELLO}"') + 1
    imported, problems = import_translations(bundle, "id", buf.getvalue(), "id.po")
    found = by_key(imported, "id")
    assert found["Act now"].status == "done" and found["Act now"].target == ("Bertindak sekarang",)
    assert found[HELLO].status == "missing" and found["Last chance"].status == "missing"
    where = {str(p) for p in problems}
    assert f"id.po:{hello_line}: msgid '{HELLO}': form 0 drops placeholder(s) name" in where
    assert any(p.startswith("id.po:") and "adds placeholder(s) refund" in p for p in where)


def test_an_xliff_2_exported_edited_with_translate_toolkit_and_imported_is_taken() -> None:
    bundle = translate_rest(acme_bundle(), "id")
    data = export_xliff(bundle, "pt-BR")
    root = etree.fromstring(data)
    assert root.get("version") == "2.0" and root.nsmap[None] == "urn:oasis:names:tc:xliff:document:2.0"
    assert root.get("srcLang") == "en" and root.get("trgLang") == "pt-BR"
    xliff = Xliff2File.parsestring(data)
    ids = [u.getid() for u in xliff.units]
    # Three plurals (the subject, the heading and push title, a paragraph), a unit per form of Portuguese.
    assert len(ids) == len(set(ids)) and sum(i.endswith(("-one", "-many", "-other")) for i in ids) == 3 * 3
    for unit in xliff.units:
        unit.settarget(f"(pt) {unit.source}")
        unit.marktranslated()
    imported, problems = import_translations(bundle, "pt-BR", bytes(xliff), "acme.xlf")
    assert problems == []
    assert {e.status for e in entries(imported, "pt-BR")} == {"done"}
    heading = by_key(imported, "pt-BR")[DAYS]
    assert heading.target == ("(pt) %(num)d day left", "(pt) %(num)d days left", "(pt) %(num)d days left")
    assert gate(imported)[0] == []


def test_an_xliff_unit_with_a_dropped_placeholder_is_refused_by_its_unit_id() -> None:
    bundle = acme_bundle()
    xliff = Xliff2File.parsestring(export_xliff(bundle, "id"))
    for unit in xliff.units:
        unit.settarget("Halo," if unit.source == HELLO else f"(id) {unit.source}")
    broken = next(u.getid() for u in xliff.units if u.source == HELLO)
    imported, problems = import_translations(bundle, "id", bytes(xliff), "acme-id.xliff")
    assert [(p.file, p.field) for p in problems] == [("acme-id.xliff", f"unit {broken}")]
    assert "drops placeholder(s) name" in problems[0].message
    found = by_key(imported, "id")
    assert found[HELLO].status == "missing"
    assert sum(e.status == "done" for e in found.values()) == len(found) - 1


def test_a_file_that_is_neither_po_nor_xliff_is_one_problem_and_changes_nothing() -> None:
    bundle = acme_bundle()
    same, problems = import_translations(bundle, "id", b"<xliff version='1.2'><file/></xliff>", "x.xlf")
    assert same == bundle and len(problems) == 1 and problems[0].file == "x.xlf"
    same, problems = import_translations(bundle, "id", b"Hello, this is not a catalog", "x.po")
    assert same == bundle and problems[0].message.startswith("not a PO file")
    same, problems = import_translations(bundle, "id", export_po(bundle, "id"), "untouched.po")
    assert same == bundle and [p.message for p in problems] == ["no translation of this campaign's messages in it"]


def test_gate_names_every_untranslated_entry_by_its_file_in_the_bundle() -> None:
    errors, warnings = gate(acme_bundle())
    files = {p.file for p in errors}
    assert files == {"locales/id/LC_MESSAGES/price-change.po", "locales/pt_BR/LC_MESSAGES/price-change.po"}
    assert all(p.message == "untranslated" for p in errors) and warnings == []


def test_a_translation_or_a_word_with_html_is_refused_so_no_tag_reaches_an_inbox() -> None:
    bundle = acme_bundle()
    exported = read_po(io.BytesIO(export_po(bundle, "id")), locale="id")
    exported[HELLO].string = '<b>Halo</b> <a href="https://evil.example/login">%(name)s</a>,'
    exported["Act now"].string = "Bertindak sekarang"
    buf = io.BytesIO()
    write_po(buf, exported)
    imported, problems = import_translations(bundle, "id", buf.getvalue(), "id.po")
    assert by_key(imported, "id")[HELLO].status == "missing"  # refused, the rest taken
    assert by_key(imported, "id")["Act now"].status == "done"
    assert any("a translation is plain text" in str(p) and str(p).startswith("id.po:") for p in problems)

    typed = set_translations(translate_rest(translate_rest(bundle, "id"), "pt-BR"), "pt-BR",
                             {HELLO: ["Olá <script>x</script> %(name)s,"]})
    errors, _warnings = gate(typed)
    assert any("a translation is plain text" in p.message for p in errors)  # the gate stops scheduling

    with pytest.raises(CampaignError) as refused:
        acme_bundle(acme_words(paragraphs=["Hi {name},", "Keep it.", "<script>alert(2)</script>"]))
    assert any("plain text" in p.message and p.field == "reminder.paragraphs[2]" for p in refused.value.problems)


def test_check_forms_gives_the_verdict_entries_would_give_before_anything_is_saved() -> None:
    bundle = acme_bundle()
    assert check_forms(bundle, "id", HELLO, ["Halo,"]) == ("done", ("form 0 drops placeholder(s) name",))
    status, problems = check_forms(bundle, "id", HELLO, ["<b>Halo</b> %(name)s,"])
    assert status == "done" and any("a translation is plain text" in p for p in problems)
    assert check_forms(bundle, "id", HELLO, ["Halo %(name)s,"]) == ("done", ())
    assert check_forms(bundle, "id", HELLO, [""]) == ("missing", ())
    assert check_forms(bundle, "pt-BR", DAYS, ["%(num)d dia", "%(num)d dias", "%(num)d dias"])[1] == ()
    assert by_key(bundle, "id")[HELLO].status == "missing"  # nothing was saved
    saved = set_translations(bundle, "id", {HELLO: ["Halo,"]})
    assert check_forms(bundle, "id", HELLO, ["Halo,"])[1] == by_key(saved, "id")[HELLO].problems  # one check
    with pytest.raises(NotFound):
        check_forms(bundle, "id", "no such message", ["x"])
