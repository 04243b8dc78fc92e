"""Locale choice: which of a campaign's locales a recipient reads, with Babel doing the parsing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

from notifier.errors import UserError

# Old or alternative language codes that Babel does not map by itself.
ALIASES = {"in": "id", "iw": "he", "ji": "yi", "tl": "fil"}


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


class CatalogError(UserError):
    """A compiled catalog is missing or unreadable; names the file and what to run."""


def posix(tag: str) -> str:
    """'pt-BR' → 'pt_BR': the folder name under locales/ and Babel's identifier."""
    return tag.replace("-", "_")


def formatting_locale(tag: str) -> str:
    """The Babel locale that formats dates and numbers: plain 'en' writes international English (28 November)."""
    return "en_001" if tag == "en" else posix(tag)


def catalog_path(locales_dir: Path, tag: str, suffix: str = "mo") -> Path:
    return Path(locales_dir) / posix(tag) / "LC_MESSAGES" / f"messages.{suffix}"


def load_translations(locales_dir: Path, tag: str) -> Translations:
    """The compiled catalog of one campaign locale; a missing one is an error, never a silent English fallback."""
    path = catalog_path(locales_dir, tag)
    try:
        with path.open("rb") as f:
            return Translations(f, domain="messages")
    except FileNotFoundError:
        raise CatalogError(f"{path}: compiled catalog for {tag} is missing (run: notifier i18n compile)") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the compiled catalog for {tag}: {exc}") from None


def format_day(day: date, tag: str) -> str:
    """A calendar date the way the locale writes it: 28 November 2024, 28 de novembro de 2024."""
    return format_date(day, "long", locale=formatting_locale(tag))


def format_money(amount: Decimal, currency: str, tag: str) -> str:
    """An amount in its currency, written the locale's way: Rp49.000,00 (id), R$ 21,90 (pt-BR), $115.00 (es-MX)."""
    return format_currency(amount, currency, locale=formatting_locale(tag))


def format_count(value: float, tag: str) -> str:
    return format_decimal(value, locale=formatting_locale(tag))


def country_name(code: str | None, tag: str) -> str:
    """The country's name in the reader's language (Brasil, Meksiko); the code itself when unknown."""
    if not code:
        return ""
    code = code.upper()
    return code if code == "ZZ" else Locale.parse(formatting_locale(tag)).territories.get(code, code)
