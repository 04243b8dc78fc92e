"""The studio's words: written once in the source language, with placeholders and plural forms, they become the
campaign's templates and catalogs; the messages say them in English and, once translated, in Indonesian and
Portuguese; a changed sentence is a new, missing entry, never a fuzzy guess."""

from __future__ import annotations

import io
from typing import Any

import pytest
from babel.messages.pofile import read_po

from notifier.errors import CampaignError
from notifier.render import Renderer
from notifier.review import Rendered, render_sample, samples
from notifier.studio import store
from notifier.studio.starter import STARTERS, new_bundle, starter_from_json
from notifier.studio.templating import apply_words
from notifier.studio.translations import entries, gate, set_translations
from notifier.studio.words import default_words, words_from_json, words_of, words_to_json

KEEP = ("Only {days} day left to keep your old price of {refund}.", "Only {days} days left to keep your old price "
                                                                   "of {refund}.")
ID_KEEP = ("Tinggal %(num)d hari lagi untuk mempertahankan harga lama Anda sebesar %(refund)s.",)
PT_KEEP = ("Só falta %(num)d dia para manter seu preço antigo de %(refund)s.",
           "Faltam %(num)d de dias para manter seu preço antigo de %(refund)s.",
           "Faltam %(num)d dias para manter seu preço antigo de %(refund)s.")


def acme_words(**reminder: Any) -> dict[str, Any]:
    """Acme's words: the defaults, with a reminder paragraph that has a placeholder and plural forms."""
    data = words_to_json(default_words("en"))
    data["stages"]["reminder"]["paragraphs"] = ["Hi {name},", KEEP[1], "Acme Stream costs 20% more from {date}."]
    data["stages"]["reminder"]["plurals"]["paragraphs[1]"] = list(KEEP)
    data["stages"]["reminder"].update(reminder)
    return data


def acme_bundle(data: dict[str, Any] | None = None) -> store.Bundle:
    bundle = new_bundle(starter_from_json(STARTERS["price-change"]))
    return apply_words(bundle, words_from_json(data or acme_words(), "en"))


def translate_rest(bundle: store.Bundle, locale: str) -> store.Bundle:
    """A translator's work on every entry still missing, stood in for by a marked copy of the English."""
    changes = {e.key: [f"[{locale}] {e.source[min(i, len(e.source) - 1)]}" for i in range(len(e.target))]
               for e in entries(bundle, locale) if e.status != "done"}
    return set_translations(bundle, locale, changes)


def rendered(bundle: store.Bundle) -> list[Rendered]:
    """Every locale x send of the campaign, as the sender renders them."""
    campaign = store.campaign_of(bundle)
    with store.unpacked(bundle) as u:
        renderer = Renderer(u.templates_dir, u.locales_dir)
        return [render_sample(renderer, campaign, s) for s in samples(campaign)]


def reminder_of(bundle: store.Bundle, locale: str) -> Rendered:
    return next(r for r in rendered(bundle) if r.sample.locale == locale and r.sample.label.endswith("@P7D"))


def test_marketers_words_with_a_placeholder_and_plurals_reach_the_message_in_english() -> None:
    bundle = translate_rest(translate_rest(acme_bundle(), "id"), "pt-BR")
    en = reminder_of(bundle, "en")
    assert "Only 7 days left to keep your old price of" in en.email.text
    assert "Acme Stream costs 20% more from 28 February 2027." in en.email.text
    assert "Only 7 days left to keep your old price of" in en.email.html
    assert en.email.subject == "7 days left: The new price starts"
    assert en.push.title == "7 days left"
    assert "Maria Fernanda de Souza Albuquerque" in en.email.text  # {name} in "Hi {name},"


def test_translated_words_reach_the_message_in_indonesian_and_portuguese() -> None:
    bundle = acme_bundle()
    msgid = KEEP[0].replace("{days}", "%(num)d").replace("{refund}", "%(refund)s")
    bundle = set_translations(bundle, "id", {msgid: ID_KEEP})
    bundle = set_translations(bundle, "pt-BR", {msgid: PT_KEEP})
    bundle = translate_rest(translate_rest(bundle, "id"), "pt-BR")
    errors, _ = gate(bundle)
    assert errors == []
    ident = reminder_of(bundle, "id")
    assert "Tinggal 7 hari lagi untuk mempertahankan harga lama Anda sebesar" in ident.email.text
    assert "Tinggal 7 hari lagi" in ident.email.html
    pt = reminder_of(bundle, "pt-BR")
    assert "Faltam 7 dias para manter seu preço antigo de R$" in pt.email.text


def test_a_paragraph_with_the_refund_is_left_out_for_a_reader_without_one() -> None:
    from notifier.render import Personal

    bundle = translate_rest(translate_rest(acme_bundle(), "id"), "pt-BR")
    campaign = store.campaign_of(bundle)
    sample = next(s for s in samples(campaign) if s.locale == "en" and s.label.endswith("@P7D"))
    with store.unpacked(bundle) as u:
        text = render_sample(Renderer(u.templates_dir, u.locales_dir), campaign, sample, Personal()).email.text
    assert "old price" not in text and "Hi" not in text
    assert "Acme Stream costs 20% more" in text


def test_a_changed_sentence_is_a_new_missing_entry_never_a_fuzzy_match_of_the_old_one() -> None:
    bundle = translate_rest(acme_bundle(), "id")
    old = "A reminder from %(sender)s."
    assert next(e for e in entries(bundle, "id") if e.key == old).status == "done"
    changed = apply_words(bundle, words_from_json(acme_words(preheader="A friendly reminder from {sender}."), "en"))
    found = {e.key: e for e in entries(changed, "id")}
    assert old not in found
    assert found["A friendly reminder from %(sender)s."].status == "missing"
    assert found["A friendly reminder from %(sender)s."].target == ("",)
    po = changed[store.catalog_key("price-change", "id")]
    assert b"[id] A reminder from" not in po
    assert not [m for m in read_po(io.BytesIO(po)) if m.id and m.fuzzy]
    assert {e.status for k, e in found.items() if k != "A friendly reminder from %(sender)s."} == {"done"}
    # The source language says the new sentence at once.
    en = {e.key: e for e in entries(changed, "en")}
    assert en["A friendly reminder from %(sender)s."].target == ("A friendly reminder from %(sender)s.",)


def test_a_changed_plural_form_is_missing_too() -> None:
    bundle = translate_rest(acme_bundle(), "pt-BR")
    data = acme_words()
    data["stages"]["reminder"]["plurals"]["paragraphs[1]"] = [KEEP[0], "Just {days} days left to keep {refund}."]
    changed = apply_words(bundle, words_from_json(data, "en"))
    msgid = KEEP[0].replace("{days}", "%(num)d").replace("{refund}", "%(refund)s")
    entry = next(e for e in entries(changed, "pt-BR") if e.key == msgid)
    assert entry.status == "missing" and entry.target == ("", "", "")
    assert entry.source[1] == "Just %(num)d days left to keep %(refund)s."


def test_an_unknown_placeholder_is_located_with_the_likely_one() -> None:
    data = acme_words()
    data["stages"]["reminder"]["paragraphs"][2] = "Acme Stream costs more from {dat}."
    with pytest.raises(CampaignError) as caught:
        words_from_json(data, "en")
    [problem] = caught.value.problems
    assert problem.field == "reminder.paragraphs[2]"
    assert "unknown placeholder {dat}: did you mean {date}?" in problem.message


def test_a_text_with_days_needs_one_form_per_plural_form_and_a_name_only_in_paragraphs() -> None:
    data = acme_words(subject="{days} days left, {name}")
    data["stages"]["reminder"]["plurals"].pop("subject")
    with pytest.raises(CampaignError) as caught:
        words_from_json(data, "en")
    fields = {p.field: p.message for p in caught.value.problems}
    assert "2 forms" in fields["reminder.plurals.subject"]
    assert "only be in a paragraph" in fields["reminder.subject"]
    data = acme_words()
    data["stages"]["reminder"]["plurals"]["paragraphs[1]"] = [KEEP[0]]
    with pytest.raises(CampaignError, match=r"reminder.plurals.paragraphs\[1\]: expected 2 texts"):
        words_from_json(data, "en")


def test_the_words_are_kept_with_the_templates_and_read_back() -> None:
    words = words_from_json(acme_words(), "en")
    bundle = apply_words(acme_bundle(), words)
    assert words_of(bundle) == words
    assert "templates/price-change/words.yaml" in bundle
    pot = read_po(io.BytesIO(bundle["locales/price-change.pot"]))
    assert "Acme Stream costs 20%% more from %(date)s." in pot


def test_words_for_a_locale_the_campaign_lacks_are_refused() -> None:
    with pytest.raises(CampaignError, match="not one of the campaign's locales"):
        apply_words(acme_bundle(), default_words("es-MX"))


def test_a_source_language_with_one_plural_form_writes_a_text_with_days_once() -> None:
    data = words_to_json(default_words("id"))
    data["stages"]["reminder"].update(heading="{days} hari lagi", plurals={})
    words = words_from_json(data, "id")
    assert words.stages["reminder"].plurals["heading"] == ("{days} hari lagi",)
    starter = starter_from_json({**STARTERS["price-change"], "source_locale": "id"})
    bundle = translate_rest(translate_rest(apply_words(new_bundle(starter), words), "en"), "pt-BR")
    assert gate(bundle)[0] == []
    assert "7 hari lagi" in reminder_of(bundle, "id").email.html


def test_the_deadlines_label_is_translated_like_the_words_so_no_english_is_left_in_an_indonesian_message() -> None:
    bundle = acme_bundle()
    label = next(e for e in entries(bundle, "id") if e.source == ("The new price starts",))  # an entry to translate
    assert label.status == "missing"
    bundle = set_translations(bundle, "id", {label.key: ["Harga baru berlaku"]})
    bundle = translate_rest(translate_rest(bundle, "id"), "pt-BR")
    indonesian = reminder_of(bundle, "id")
    assert "Harga baru berlaku" in indonesian.email.subject
    assert "The new price starts" not in indonesian.email.text + indonesian.email.html + indonesian.push.body
    assert "The new price starts" in reminder_of(bundle, "en").email.subject  # the source language as written
