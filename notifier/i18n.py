"""Locale choice: which of a campaign's locales a recipient reads, with Babel doing the parsing."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError, localedata
from babel.dates import format_date
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.numbers import format_currency, format_decimal, get_currency_symbol
from babel.support import Translations

from notifier.campaign import SLUG
from notifier.errors import CatalogError

# Old or alternative language codes that Babel does not map by itself.
ALIASES = {"in": "id", "iw": "he", "ji": "yi", "tl": "fil"}


def share_for(shares: Mapping[str, float], locale: str | None) -> float:
    """A share given per locale (``{"pt-BR": 0.4, "pt": 0.3, "*": 0.2}``): the locale's own, else its language's,
    else the one for any other (``*``), else 0. The demo's audience and the emulator's opens and clicks read them."""
    for key in (locale, (locale or "").split("-")[0], "*"):
        if key and key in shares:
            return shares[key]
    return 0.0


def parse_tag(tag: str | None, *, strict: bool = False) -> Locale | None:
    """A Babel Locale for a BCP 47 / POSIX tag ('pt-br', 'pt_BR', 'in'), or None when unknown.

    Unless ``strict``, an unknown region or script falls back to the bare language ('en-ZZ' → en).
    """
    if not tag or not tag.strip():
        return None
    cleaned = tag.strip().replace("-", "_").split(".")[0].split("@")[0]
    lang, _, rest = cleaned.partition("_")
    lang = ALIASES.get(lang.lower(), lang.lower())
    try:
        return Locale.parse(f"{lang}_{rest}" if rest else lang)
    except (ValueError, UnknownLocaleError):
        if strict:
            return None
        try:
            return Locale.parse(lang)
        except (ValueError, UnknownLocaleError):
            return None


def tag_of(loc: Locale) -> str:
    """The BCP 47 form we store and show: 'pt-BR', 'id', 'zh-Hant-TW'."""
    return "-".join(p for p in (loc.language, loc.script, loc.territory) if p)


def negotiate(requested: str | None, available: Sequence[str], default: str) -> str:
    """The campaign locale a recipient reads.

    An exact match wins; otherwise the first available locale of the same language
    (pt, pt-PT → pt-BR; es, es-AR → es-MX; in → id); anything else gets ``default``.
    """
    return _negotiate(requested, tuple(available), default)


@lru_cache(maxsize=4096)
def _negotiate(requested: str | None, available: tuple[str, ...], default: str) -> str:
    """An audience has a few dozen distinct tags: each is negotiated once per campaign's locales."""
    loc = parse_tag(requested)
    if loc is None:
        return default
    parsed = [(tag, parse_tag(tag)) for tag in available]
    for tag, cand in parsed:
        if cand is not None and (cand.language, cand.script, cand.territory) == (loc.language, loc.script,
                                                                                loc.territory):
            return tag
    for tag, cand in parsed:
        if cand is not None and cand.language == loc.language:
            return tag
    return default


# --- catalogs and formatting ------------------------------------------------------------------------------


def posix(tag: str) -> str:
    """'pt-BR' → 'pt_BR': the folder name under locales/ and Babel's identifier."""
    return tag.replace("-", "_")


def formatting_locale(tag: str, country: str | None = None) -> str:
    """The Babel locale that formats dates, numbers and money: a tag without a region takes the reader's country when
    CLDR writes the language there (en + SG: en_SG, en + ID: en_ID); plain 'en' elsewhere writes international
    English (en_001: 28 November); a tag with a region keeps it (pt-BR in Mexico still writes R$ 21,90)."""
    return _formatting_locale(tag, (country or "").upper())


@lru_cache(maxsize=1024)
def _formatting_locale(tag: str, country: str) -> str:
    loc = parse_tag(tag)
    if loc is not None and not loc.territory and re.fullmatch(r"[A-Z]{2}", country):
        regional = f"{posix(tag_of(loc))}_{country}"
        if localedata.exists(regional):
            return regional
    return "en_001" if tag == "en" else posix(tag)


def catalog_domain(domain: str) -> str:
    """A campaign's gettext domain, which is its id; anything that could be a path is refused."""
    if not SLUG.match(domain):
        raise CatalogError(f"{domain!r} is not a catalog domain (a campaign id: lowercase letters, digits, - or _)")
    return domain


def catalog_path(locales_dir: Path, tag: str, suffix: str = "po", *, domain: str) -> Path:
    """One campaign's catalog for one locale: ``locales/<posix>/LC_MESSAGES/<campaign-id>.<suffix>``.

    Each campaign is its own gettext domain, so translating, freezing or updating one never touches another.
    """
    return Path(locales_dir) / posix(tag) / "LC_MESSAGES" / f"{catalog_domain(domain)}.{suffix}"


# Parsed catalogs, keyed by file and its (mtime, size): a process reads each .po once until it changes.
_CATALOGS: dict[Path, tuple[tuple[int, int], Catalog]] = {}
MAX_CACHED_CATALOGS = 1024


def read_catalog(locales_dir: Path, tag: str, domain: str) -> Catalog:
    """The parsed ``.po`` of one campaign's locale; a missing or malformed file is a CatalogError naming file and line.

    notifier reads the ``.po`` source itself (no compiled ``.mo`` is committed or needed), so what is sent is
    always what the translator wrote, whatever Babel version or file timestamps a clone has.
    """
    path = catalog_path(locales_dir, tag, domain=domain)
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _CATALOGS.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        with path.open("rb") as f:
            catalog = read_po(f, locale=posix(tag), abort_invalid=True)
    except FileNotFoundError:
        raise CatalogError(f"{path}: no catalog for {tag} (run: notifier i18n update {domain})") from None
    except PoFileError as exc:
        raise CatalogError(f"{path}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path}: cannot read the catalog for {tag}: {exc}") from None
    if len(_CATALOGS) >= MAX_CACHED_CATALOGS:  # temporary folders (the studio's gate) come and go: keep the recent
        del _CATALOGS[next(iter(_CATALOGS))]
    _CATALOGS.pop(path, None)
    _CATALOGS[path] = (stamp, catalog)
    return catalog


def translatable(catalog: Catalog) -> list[Message]:
    """The messages gettext will use: translated (every plural form) and not fuzzy, as msgfmt keeps them."""
    def done(m: Message) -> bool:
        strings = m.string if isinstance(m.string, (list, tuple)) else [m.string]
        return bool(m.id) and not m.fuzzy and all(strings)

    return [m for m in catalog if done(m)]


def load_translations(locales_dir: Path, tag: str, domain: str) -> Translations:
    """One campaign locale's translations, built in memory from its ``.po``; a missing one is an error."""
    catalog = read_catalog(locales_dir, tag, domain)
    compiled = Catalog(locale=catalog.locale, charset="utf-8")
    compiled.mime_headers = [("Plural-Forms", catalog.plural_forms)]
    for m in translatable(catalog):
        compiled.add(m.id, m.string, context=m.context)
    buf = io.BytesIO()
    write_mo(buf, compiled)
    buf.seek(0)
    return Translations(buf, domain=domain)


def catalog_digest(locales_dir: Path, tag: str, domain: str) -> str:
    """A digest of what one campaign locale's catalog makes us send: its plural rule and its usable translations.

    Comments, line numbers, ordering, headers that do not change the text, and the Babel version that wrote the
    file do not change it; a changed translation, a newly fuzzy entry or another plural rule does.
    """
    try:
        catalog = read_catalog(locales_dir, tag, domain)
    except CatalogError:
        return "missing"
    entries = sorted((m.context or "", json.dumps(m.id), json.dumps(m.string)) for m in translatable(catalog))
    payload = json.dumps([catalog.plural_forms, entries], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def format_day(day: date, tag: str, country: str | None = None) -> str:
    """A calendar date the way the reader's locale writes it: 28 November 2024, 28 de novembro de 2024."""
    return format_date(day, "long", locale=formatting_locale(tag, country))


# CLDR's international English letters each dollar (A$, NZ$, US$), but a country's English writes its own bare ($9.99
# in en_SG and en_AU). An email from a global company letters it, so that no reader wonders which dollar it is (a bare
# US dollar stays $). CLDR's English has no letters for the Singapore dollar, only its code (SGD9.99): S$ is how
# Singapore's own English letters it beside other dollars, and what global services show readers there.
LETTERED_DOLLARS = {"SGD": "S$"}


def format_money(amount: Decimal, currency: str, tag: str, country: str | None = None) -> str:
    """An amount in its currency, written for the reader's language and country: Rp49.000 (id), R$ 21,90 (pt-BR),
    $115.00 (es-MX), S$9.99 (en in Singapore), Rp78.400 (en in Indonesia)."""
    locale = formatting_locale(tag, country)
    symbol = _english_symbol(currency, locale) if locale.startswith("en") else None
    if symbol is None:
        return format_currency(amount, currency, locale=locale)
    pattern = Locale.parse(locale).currency_formats["standard"].pattern.replace("\xa4", f"'{symbol}'")
    return format_currency(amount, currency, pattern, locale=locale)


def _english_symbol(currency: str, locale: str) -> str | None:
    """The lettered symbol of a dollar that an English locale writes bare ($) or as its code (SGD); None: keep the
    locale's own."""
    own = get_currency_symbol(currency, locale)
    if currency in LETTERED_DOLLARS:
        wanted = LETTERED_DOLLARS[currency]
    elif own == "$" and currency != "USD":
        wanted = get_currency_symbol(currency, "en_001")  # A$, NZ$, CA$
    else:
        return None
    return wanted if wanted != own else None


def format_count(value: float, tag: str, country: str | None = None) -> str:
    return format_decimal(value, locale=formatting_locale(tag, country))


def country_name(code: str | None, tag: str) -> str:
    """The country's name in the reader's language (Brasil, Meksiko); the code itself when unknown."""
    if not code:
        return ""
    code = code.upper()
    return code if code == "ZZ" else Locale.parse(formatting_locale(tag)).territories.get(code, code)
