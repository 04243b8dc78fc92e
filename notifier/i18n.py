"""Locale choice: which of a campaign's locales a recipient reads, with Babel doing the parsing."""

from __future__ import annotations

from collections.abc import Sequence

from babel import Locale, UnknownLocaleError

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
