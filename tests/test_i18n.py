"""Localization as a reader sees it: the exact words per locale, plurals, dates and money, and locale fallback."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from sqlalchemy.orm import Session, sessionmaker

from notifier import review
from notifier.campaign import Campaign, load_campaign, zone
from notifier.catalogs import expected_plural_forms, pot_path
from notifier.config import Settings
from notifier.i18n import (
    catalog_path,
    country_name,
    format_count,
    format_day,
    format_money,
    load_translations,
    negotiate,
    parse_tag,
    tag_of,
)
from notifier.ledger import queries
from notifier.planner import parse_send_key
from notifier.render import Personal, Renderer
from notifier.wiring import build_dispatcher
from tests.conftest import CAMPAIGN_FILE, ROOT

LOCALES_DIR = ROOT / "locales"
DOMAIN = load_campaign(CAMPAIGN_FILE).id
FIRST = "playlist-transfer@P30D+refund@P61D"
LAST_DAY = "refund@P1D"


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(ROOT / "templates", LOCALES_DIR)


def _rendered(renderer: Renderer, campaign: Campaign, locale: str, place: tuple[str, str], key: str,
              day: date) -> review.Rendered:
    """The send ``key`` as the sample reader of ``locale`` gets it, at 10:00 local on ``day`` (its planned time)."""
    tz_name, country = place
    sample = review.Sample(locale, tz_name, country, parse_send_key(key),
                           datetime(day.year, day.month, day.day, 10, 0, tzinfo=zone(tz_name)))
    assert sample in set(review.samples(campaign)), "the golden sample must be a send the campaign really plans"
    return review.render_sample(renderer, campaign, sample)


# --- golden messages ---------------------------------------------------------------------------------------

GOLDEN = {
    "id": {
        "place": ("Asia/Jakarta", "ID"),
        "greeting": "Halo, Siti Nurhaliza Kusumawardhani Putri,",
        FIRST: (
            # "pindahkan" (move something), not "pindah" (move oneself), and a verb for each deadline
            "TikTok Music akan ditutup: pindahkan playlist sebelum 28 Oktober 2024 dan ajukan "
            "pengembalian dana sebelum 28 November 2024",
            "TikTok Music akan ditutup",
            "Pindahkan playlist sebelum 28 Oktober 2024 dan ajukan pengembalian dana (jika ada) sebelum "
            "28 November 2024.",
        ),
        LAST_DAY: (
            "Hari terakhir: TikTok Music tutup besok, ajukan pengembalian dana hari ini",
            "Hari terakhir",
            "TikTok Music tutup besok. Hari ini adalah hari terakhir untuk mengajukan pengembalian dana.",
        ),
    },
    "pt-BR": {
        "place": ("America/Sao_Paulo", "BR"),
        "greeting": "Olá, Maria Fernanda de Souza Albuquerque,",
        FIRST: (
            "O TikTok Music será encerrado: playlists antes de 28 de outubro de 2024, "
            "reembolsos antes de 28 de novembro de 2024",
            "O TikTok Music está chegando ao fim",
            "Transfira suas playlists antes de 28 de outubro de 2024 e peça reembolso antes de "
            "28 de novembro de 2024.",
        ),
        LAST_DAY: (
            "Último dia: o TikTok Music sai do ar amanhã. Peça seu reembolso hoje",
            "Último dia",
            "O TikTok Music sai do ar amanhã. Hoje é o último dia para pedir seu reembolso.",
        ),
    },
    "es-MX": {
        "place": ("America/Mexico_City", "MX"),
        "greeting": "Hola, María Guadalupe Hernández Peñaloza:",
        FIRST: (
            "TikTok Music cierra: playlists antes del 28 de octubre de 2024 "
            "y reembolsos antes del 28 de noviembre de 2024",
            "TikTok Music se despide",
            "Transfiere tus playlists antes del 28 de octubre de 2024 y pide reembolso antes del "
            "28 de noviembre de 2024.",
        ),
        LAST_DAY: (
            "Último día: TikTok Music cierra mañana, pide tu reembolso hoy",
            "Último día",
            "TikTok Music cierra mañana. Hoy es el último día para pedir tu reembolso.",
        ),
    },
    "en": {
        "place": ("Australia/Sydney", "AU"),
        "greeting": "Hi Charlotte Elizabeth Montgomery-Whitfield,",
        FIRST: (
            "TikTok Music is closing: transfer your playlists before 28 October 2024 "
            "and request refunds before 28 November 2024",
            "TikTok Music is closing",
            "Transfer your playlists before 28 October 2024 and request any refund before 28 November 2024.",
        ),
        LAST_DAY: (
            "Last day: TikTok Music closes tomorrow, request your refund today",
            "Last day",
            "TikTok Music closes tomorrow. Today is the last day to request a refund.",
        ),
    },
}


def test_every_campaign_locale_has_golden_messages(campaign: Campaign) -> None:
    assert set(GOLDEN) == set(campaign.locales)


@pytest.mark.parametrize("locale", list(GOLDEN))
def test_the_merged_first_message_names_both_deadlines_in_the_readers_language(
        locale: str, campaign: Campaign, renderer: Renderer) -> None:
    golden = GOLDEN[locale]
    r = _rendered(renderer, campaign, locale, golden["place"], FIRST, date(2024, 9, 28))
    assert (r.email.subject, r.push.title, r.push.body) == golden[FIRST]
    assert r.variant.stage == "announcement"
    assert r.email.text.splitlines()[0] == golden["greeting"]


@pytest.mark.parametrize("locale", list(GOLDEN))
def test_the_refund_last_day_wave_says_closes_tomorrow_in_the_readers_language(
        locale: str, campaign: Campaign, renderer: Renderer) -> None:
    golden = GOLDEN[locale]
    r = _rendered(renderer, campaign, locale, golden["place"], LAST_DAY, date(2024, 11, 27))
    assert (r.email.subject, r.push.title, r.push.body) == golden[LAST_DAY]
    assert r.variant.stage == "last_day"
    assert r.email.text.splitlines()[0] == golden["greeting"]


# --- plurals -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("locale", "one", "seven"), [
    ("en", "1 day left", "7 days left"),
    ("pt-BR", "1 dia restante", "7 dias restantes"),
    ("es-MX", "1 día restante", "7 días restantes"),
    ("id", "1 hari lagi", "7 hari lagi"),
])
def test_days_left_takes_the_locales_plural_form(locale: str, one: str, seven: str) -> None:
    translations = load_translations(LOCALES_DIR, locale, DOMAIN)

    def days_left(n: int) -> str:
        return translations.ungettext("%(num)d day left", "%(num)d days left", n) % {"num": n}

    assert (days_left(1), days_left(7)) == (one, seven)


@pytest.mark.parametrize(("locale", "seven"), [
    ("pt-BR", "Faltam 7 dias para pedir seu reembolso do TikTok Music"),
    ("es-MX", "Quedan 7 días para pedir tu reembolso de TikTok Music"),
    ("id", "Tinggal 7 hari lagi untuk mengajukan pengembalian dana TikTok Music"),
    ("en", "7 days left to request your TikTok Music refund"),
])
def test_a_reminder_subject_uses_the_plural_form_for_seven_days(locale: str, seven: str, campaign: Campaign,
                                                                renderer: Renderer) -> None:
    place = GOLDEN[locale]["place"]
    r = _rendered(renderer, campaign, locale, place, "refund@P7D", date(2024, 11, 21))
    assert r.email.subject == seven
    assert r.push.title == load_translations(LOCALES_DIR, locale, DOMAIN).ungettext(
        "%(num)d day left", "%(num)d days left", 7) % {"num": 7}


# How each locale writes "<n> day(s)": CLDR's one / many / other forms, as a reader expects them.
def _days(locale: str, n: int) -> str:
    millions = n != 0 and n % 1_000_000 == 0
    return {
        "en": f"{n} day" if n == 1 else f"{n} days",
        "es-MX": f"{n} día" if n == 1 else f"{n} de días" if millions else f"{n} días",
        "pt-BR": f"{n} dia" if n in (0, 1) else f"{n} de dias" if millions else f"{n} dias",
        "id": f"{n} hari",
    }[locale]


PLURAL_COUNTS = (0, 1, 2, 5, 21, 1_000_000)
ENGLISH_WORDS = re.compile(r"\b(day|days|left|your|request|transfer)\b")


def _plural_msgids() -> list[tuple[str, str]]:
    with pot_path(LOCALES_DIR, DOMAIN).open("rb") as f:
        return [m.id for m in read_po(f) if m.id and isinstance(m.id, tuple)]


@pytest.mark.parametrize("locale", ["en", "es-MX", "pt-BR", "id"])
def test_every_plural_message_reads_in_its_locale_for_every_count(locale: str, campaign: Campaign,
                                                                  renderer: Renderer) -> None:
    """Through the campaign's own sandboxed environment, as the templates call ngettext."""
    env = renderer.env(campaign, locale)
    template = env.from_string("{{ ngettext(singular, plural, n) }}")
    msgids = _plural_msgids()
    assert len(msgids) == 3
    for singular, plural in msgids:
        for n in PLURAL_COUNTS:
            text = template.render(singular=singular, plural=plural, n=n)
            assert re.search(rf"(^|\s){re.escape(_days(locale, n))}(\s|$)", text), (singular, n, text)
            if locale != "en":
                assert not ENGLISH_WORDS.search(text), (singular, n, text)


def test_indonesian_has_one_plural_form_in_its_header_and_every_entry() -> None:
    assert expected_plural_forms("id") == "nplurals=1; plural=0;"
    po = catalog_path(LOCALES_DIR, "id", "po", domain=DOMAIN)
    text = po.read_text(encoding="utf-8")
    assert '"Plural-Forms: nplurals=1; plural=0;\\n"' in text
    with po.open("rb") as f:
        catalog = read_po(f, locale="id")
    assert catalog.num_plurals == 1
    plurals = [m for m in catalog if m.id and isinstance(m.id, tuple)]
    assert len(plurals) == 3
    assert all(len(m.string) == 1 and m.string[0] for m in plurals)
    # Babel pads or drops forms to fit the header when reading, so count them in the file itself too.
    assert text.count("msgid_plural") == 3 and text.count("msgstr[0]") == 3 and "msgstr[1]" not in text


# --- dates, numbers, money, countries ----------------------------------------------------------------------


@pytest.mark.parametrize(("locale", "closing", "transfer"), [
    ("id", "28 November 2024", "28 Oktober 2024"),
    ("pt-BR", "28 de novembro de 2024", "28 de outubro de 2024"),
    ("es-MX", "28 de noviembre de 2024", "28 de octubre de 2024"),
    ("en", "28 November 2024", "28 October 2024"),  # international English: day first, not "November 28"
])
def test_a_date_is_written_the_locales_way(locale: str, closing: str, transfer: str) -> None:
    assert format_day(date(2024, 11, 28), locale) == closing
    assert format_day(date(2024, 10, 28), locale) == transfer


@pytest.mark.parametrize(("locale", "expected"), [
    ("id", "1.234.567,5"), ("pt-BR", "1.234.567,5"), ("es-MX", "1,234,567.5"), ("en", "1,234,567.5"),
])
def test_a_count_uses_the_locales_separators(locale: str, expected: str) -> None:
    assert format_count(1234567.5, locale) == expected


@pytest.mark.parametrize(("amount", "currency", "locale", "expected"), [
    ("49000", "IDR", "id", "Rp49.000"),  # CLDR 46: the rupiah is written without cents
    ("21.90", "BRL", "pt-BR", "R$\xa021,90"),  # a no-break space keeps R$ with its number
    ("149900.50", "MXN", "es-MX", "$149,900.50"),  # pesos are plain $ in Mexico
    ("149900.50", "MXN", "en", "MX$149,900.50"),
    ("14.99", "AUD", "en", "A$14.99"),
    ("14.99", "SGD", "en", "S$14.99"),  # CLDR's English has only the code; Singapore's English letters it
    ("14.99", "SGD", "id", "SGD14,99"),
])
def test_money_is_written_in_its_currency_the_locales_way(amount: str, currency: str, locale: str,
                                                          expected: str) -> None:
    assert format_money(Decimal(amount), currency, locale) == expected


@pytest.mark.parametrize(("amount", "currency", "locale", "country", "expected"), [
    ("9.99", "SGD", "en", "SG", "S$9.99"),  # Babel's en_SG writes a bare $9.99; Singapore letters its dollar
    ("78400", "IDR", "en", "ID", "Rp78.400"),  # English as written in Indonesia (CLDR en_ID), not IDR78,400
    ("14.99", "AUD", "en", "AU", "A$14.99"),  # en_AU's bare $ lettered as before: English letters every dollar
    ("14.99", "USD", "en", "SG", "US$14.99"),
    ("-9.99", "SGD", "en", "SG", "-S$9.99"),
    ("1234567.5", "SGD", "en", "SG", "S$1,234,567.50"),
    # Other locales are unchanged: their own country, or a locale whose region is not the reader's.
    ("49000", "IDR", "id", "ID", "Rp49.000"),
    ("21.90", "BRL", "pt-BR", "BR", "R$\xa021,90"),
    ("115", "MXN", "es-MX", "MX", "$115.00"),
    ("21.90", "BRL", "pt-BR", "MX", "R$\xa021,90"),
    ("14.99", "SGD", "id", "SG", "SGD14,99"),
    ("14.99", "AUD", "en", "BR", "A$14.99"),  # no English of Brazil in CLDR: international English
    ("14.99", "AUD", "en", None, "A$14.99"),
])
def test_money_is_written_for_the_readers_language_and_country(amount: str, currency: str, locale: str,
                                                               country: str | None, expected: str) -> None:
    assert format_money(Decimal(amount), currency, locale, country) == expected


@pytest.mark.parametrize(("locale", "country", "expected"), [
    ("en", "SG", "28 November 2024"), ("en", "ID", "28 November 2024"), ("en", "AU", "28 November 2024"),
    ("en", "US", "November 28, 2024"),  # the reader's country decides, where CLDR writes English there
    ("id", "ID", "28 November 2024"), ("pt-BR", "MX", "28 de novembro de 2024"),
])
def test_a_date_is_written_for_the_readers_language_and_country(locale: str, country: str, expected: str) -> None:
    assert format_day(date(2024, 11, 28), locale, country) == expected


@pytest.mark.parametrize(("country", "refund", "currency", "amount"), [
    ("SG", "9.99", "SGD", "S$9.99"), ("ID", "78400", "IDR", "Rp78.400"), ("AU", "14.99", "AUD", "A$14.99")])
def test_an_english_readers_refund_is_written_the_way_of_their_country(
        country: str, refund: str, currency: str, amount: str, campaign: Campaign, renderer: Renderer) -> None:
    personal = Personal.of("Tan Wei Ling", {"refund_amount": refund, "refund_currency": currency}, "en", country)
    tz = zone(review.SAMPLE_PLACES[country].zone)
    variant = renderer.variant(campaign, "en", parse_send_key("refund@P7D"), tz, datetime(2024, 11, 21, 10, 0,
                                                                                           tzinfo=tz), country,
                               personal)
    assert f"Your estimated refund: {amount}." in renderer.email(variant, personal).text


def test_the_dispatcher_writes_a_singapore_readers_refund_in_singapore_dollars(
        sessions: sessionmaker[Session], add_recipient: Callable[..., int],
        schedule_campaign: Callable[..., queries.ScheduleResult], tmp_path: Path) -> None:
    add_recipient("tan", timezone="Asia/Singapore", country="SG", locale="en-SG", name="Tan",
                  attributes={"refund_amount": "9.99", "refund_currency": "SGD"})
    schedule_campaign(datetime(2024, 9, 27, 12, 0, tzinfo=UTC))
    dispatcher = build_dispatcher(Settings(outbox_dir=tmp_path), sessions, simulated_clock=True)
    try:
        assert dispatcher.tick(datetime(2024, 9, 28, 2, 0, tzinfo=UTC)).outcomes == {"sent": 1}  # 10:00 in Singapore
    finally:
        dispatcher.close()
    [eml] = (tmp_path / "email").rglob("*.eml")
    mail = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Your estimated refund: S$9.99." in text and "SGD" not in text


@pytest.mark.parametrize(("code", "locale", "expected"), [
    ("BR", "pt-BR", "Brasil"), ("MX", "id", "Meksiko"), ("SG", "es-MX", "Singapur"), ("ID", "pt-BR", "Indonésia"),
    ("AU", "en", "Australia"), ("br", "en", "Brazil"), ("QQ", "en", "QQ"), (None, "en", ""), ("", "id", ""),
])
def test_the_country_is_named_in_the_readers_language(code: str | None, locale: str, expected: str) -> None:
    assert country_name(code, locale) == expected


# --- words: in which country ------------------------------------------------------------------------------

IN_COUNTRY = {  # how each language says "a TikTok Music account in <country>"
    "pt-BR": ("tem uma conta do TikTok Music {}.", {"BR": "no Brasil", "AU": "na Austrália", "SG": "em Singapura",
                                                    "MX": "no México", "ID": "na Indonésia"}),
    "id": ("memiliki akun TikTok Music {}.", {"BR": "di Brasil", "AU": "di Australia", "SG": "di Singapura",
                                               "MX": "di Meksiko", "ID": "di Indonesia"}),
    "es-MX": ("tienes una cuenta de TikTok Music {}.", {"BR": "en Brasil", "AU": "en Australia", "SG": "en Singapur",
                                                        "MX": "en México", "ID": "en Indonesia"}),
    "en": ("you have a TikTok Music account {}.", {"BR": "in Brazil", "AU": "in Australia", "SG": "in Singapore",
                                                   "MX": "in Mexico", "ID": "in Indonesia"}),
}


@pytest.mark.parametrize("locale", list(IN_COUNTRY))
@pytest.mark.parametrize("country", ["BR", "AU", "SG", "MX", "ID"])
def test_the_footer_says_in_which_country_the_way_the_language_does(
        locale: str, country: str, campaign: Campaign, renderer: Renderer) -> None:
    sentence, phrases = IN_COUNTRY[locale]
    tz = zone(review.SAMPLE_PLACES[country].zone)
    variant = renderer.variant(campaign, locale, parse_send_key("refund@P7D"), tz,
                               datetime(2024, 11, 21, 10, 0, tzinfo=tz), country, Personal())
    assert sentence.format(phrases[country]) in variant.text
    assert sentence.format(phrases[country]) in variant.html
    assert "(país:" not in variant.text


def test_a_country_outside_the_campaigns_reads_in_the_country_named(campaign: Campaign, renderer: Renderer) -> None:
    tz = zone("Europe/Lisbon")
    variant = renderer.variant(campaign, "pt-BR", parse_send_key("refund@P7D"), tz,
                               datetime(2024, 11, 21, 10, 0, tzinfo=tz), "PT", Personal())
    assert "tem uma conta do TikTok Music em Portugal." in variant.text


# --- locale negotiation ------------------------------------------------------------------------------------

ELSEWHERE = "<default>"  # a default no language match can produce, to prove when the default was used


@pytest.mark.parametrize(("requested", "expected"), [
    ("pt", "pt-BR"), ("pt-PT", "pt-BR"), ("pt_br", "pt-BR"), ("PT-br", "pt-BR"), ("pt_BR.UTF-8", "pt-BR"),
    ("es", "es-MX"), ("es-AR", "es-MX"), ("es-419", "es-MX"), ("es_mx", "es-MX"),
    ("in", "id"), ("id-ID", "id"), ("in-ID", "id"),
    ("en-AU", "en"), ("en-SG", "en"), ("en", "en"),
])
def test_a_tag_falls_back_to_the_campaign_locale_of_its_language(requested: str, expected: str,
                                                                   campaign: Campaign) -> None:
    assert negotiate(requested, campaign.locales, ELSEWHERE) == expected


@pytest.mark.parametrize("requested", ["zh-SG", "ms", "xx", "", "   ", None, "i-klingon"])
def test_a_language_the_campaign_lacks_gets_the_campaign_default(requested: str | None, campaign: Campaign) -> None:
    assert negotiate(requested, campaign.locales, campaign.default_locale) == campaign.default_locale == "en"
    assert negotiate(requested, campaign.locales, ELSEWHERE) == ELSEWHERE


def test_an_exact_match_wins_over_an_earlier_locale_of_the_same_language() -> None:
    assert negotiate("pt-PT", ("pt-BR", "pt-PT"), "en") == "pt-PT"
    assert negotiate("pt", ("pt-BR", "pt-PT"), "en") == "pt-BR"
    assert negotiate("en-AU", ("en", "en-AU"), "id") == "en-AU"
    assert negotiate("en-SG", ("en", "en-AU"), "id") == "en"


def test_tags_are_parsed_from_bcp47_posix_and_legacy_forms() -> None:
    assert tag_of(parse_tag("pt_br")) == "pt-BR"
    assert tag_of(parse_tag("in")) == "id"
    assert tag_of(parse_tag("zh-Hant-TW")) == "zh-Hant-TW"
    assert tag_of(parse_tag("pt-XX")) == "pt" and parse_tag("pt-XX", strict=True) is None
    assert parse_tag("xx") is None and parse_tag("") is None and parse_tag(None) is None
