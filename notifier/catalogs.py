"""Gettext catalogs with Babel: extract from the templates, update, compile, and the translation gate (check).

The gate fails on anything that would let a broken translation reach a user: a missing, untranslated or
fuzzy entry, a placeholder dropped or invented, a plural count that does not match the header, a compiled
catalog that is older than its source.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po, write_po

from notifier.errors import Problem
from notifier.i18n import catalog_path, posix

DOMAIN = "messages"
METHOD_MAP = [("**.j2", "jinja2.ext:babel_extract"), ("**.txt", "jinja2.ext:babel_extract"),
              ("**.html", "jinja2.ext:babel_extract")]
OPTIONS = {"**": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}}
# Babel's plural table gives Indonesian two forms; CLDR and gettext say it has one.
PLURAL_FORMS = {"id": "nplurals=1; plural=0;"}
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def pot_path(locales_dir: Path) -> Path:
    return Path(locales_dir) / f"{DOMAIN}.pot"


def expected_plural_forms(locale: str) -> str:
    if locale in PLURAL_FORMS:
        return PLURAL_FORMS[locale]
    plural = get_plural(posix(locale))
    return f"nplurals={plural.num_plurals}; plural={plural.plural_expr};"


def _new_catalog(locale: str | None, project: str = "notifier") -> Catalog:
    catalog = Catalog(locale=posix(locale) if locale else None, project=project, version="1",
                      copyright_holder="notifier contributors", charset="utf-8",
                      creation_date=datetime(2024, 9, 1, tzinfo=UTC), revision_date=datetime(2024, 9, 1, tzinfo=UTC))
    if locale:
        catalog.mime_headers = [("Plural-Forms", expected_plural_forms(locale))]
    return catalog


def extract(templates_dirs: Iterable[Path], locales_dir: Path) -> int:
    """Write locales/messages.pot from every template; returns the number of messages."""
    template = _new_catalog(None)
    for folder in templates_dirs:
        for filename, lineno, message, comments, context in extract_from_dir(
                str(folder), method_map=METHOD_MAP, options_map=OPTIONS, strip_comment_tags=True):
            template.add(message, None, [(f"{folder.name}/{filename}", lineno)], auto_comments=comments,
                         context=context)
    path = pot_path(locales_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, template, width=100, sort_output=False, omit_header=False)
    return len(template)


def update(locales_dir: Path, locales: Sequence[str]) -> list[Path]:
    """Merge the template into each locale's .po (creating it when new); keeps translations, marks changes fuzzy."""
    with pot_path(locales_dir).open("rb") as f:
        template = read_po(f)
    written = []
    for locale in locales:
        path = catalog_path(locales_dir, locale, "po")
        if path.exists():
            with path.open("rb") as f:
                catalog = read_po(f, locale=posix(locale))
        else:
            catalog = _new_catalog(locale)
        catalog.update(template)
        catalog.mime_headers = [("Plural-Forms", expected_plural_forms(locale))]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, catalog, width=100, include_previous=True)
        written.append(path)
    return written


def _mo_bytes(catalog: Catalog) -> bytes:
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


def compile_catalogs(locales_dir: Path, locales: Sequence[str]) -> list[Path]:
    """Build each locale's .mo from its .po (fuzzy entries are left out, as gettext does)."""
    written = []
    for locale in locales:
        po = catalog_path(locales_dir, locale, "po")
        with po.open("rb") as f:
            catalog = read_po(f, locale=posix(locale))
        mo = catalog_path(locales_dir, locale, "mo")
        mo.write_bytes(_mo_bytes(catalog))
        written.append(mo)
    return written


def _placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text or ""))


def _check_message(file: str, msg: Message, nplurals: int, locale: str) -> Iterable[Problem]:
    where = f"msgid {msg.id if isinstance(msg.id, str) else msg.id[0]!r} ({locale})"
    strings = list(msg.string) if isinstance(msg.string, (list, tuple)) else [msg.string]
    line = msg.lineno
    if msg.fuzzy:
        yield Problem(file, line, where, "fuzzy: a translator must review it before it can be sent")
    if isinstance(msg.id, (list, tuple)) and len(strings) != nplurals:
        yield Problem(file, line, where, f"{len(strings)} plural forms, but the header says nplurals={nplurals}")
    if any(not s for s in strings):
        yield Problem(file, line, where, "untranslated")
        return
    ids = list(msg.id) if isinstance(msg.id, (list, tuple)) else [msg.id]
    wanted_all = set().union(*(_placeholders(i) for i in ids))
    for n, s in enumerate(strings):
        got = _placeholders(s)
        added = got - wanted_all
        # With several forms, the singular may spell out the number ("one day left") and drop %(num)d.
        wanted = _placeholders(ids[-1]) if isinstance(msg.id, (list, tuple)) else wanted_all
        missing = wanted - got - ({"num"} if n == 0 and nplurals > 1 else set())
        if added:
            yield Problem(file, line, where, f"form {n} adds placeholder(s) {', '.join(sorted(added))}")
        if missing:
            yield Problem(file, line, where, f"form {n} drops placeholder(s) {', '.join(sorted(missing))}")


def check_catalogs(locales_dir: Path, locales: Sequence[str]) -> list[Problem]:
    """Every problem in the campaign locales' catalogs, with file, line and msgid."""
    problems: list[Problem] = []
    pot = pot_path(locales_dir)
    if not pot.exists():
        return [Problem(str(pot), None, None, "missing (run: notifier i18n extract)")]
    with pot.open("rb") as f:
        template = read_po(f)
    for locale in locales:
        po = catalog_path(locales_dir, locale, "po")
        if not po.exists():
            problems.append(Problem(str(po), None, None, f"no catalog for {locale} (run: notifier i18n update)"))
            continue
        with po.open("rb") as f:
            catalog = read_po(f, locale=posix(locale))
        header = expected_plural_forms(locale)
        if catalog.plural_forms != header:
            problems.append(Problem(str(po), None, "Plural-Forms",
                                    f"header says {catalog.plural_forms!r}, {locale} needs {header!r}"))
        for msg in template:
            if msg.id and msg.id not in catalog:
                problems.append(Problem(str(po), None, f"msgid {msg.id!r} ({locale})",
                                        "missing from the catalog (run: notifier i18n update)"))
        for msg in catalog:
            if msg.id:
                problems.extend(_check_message(str(po), msg, catalog.num_plurals, locale))
        mo = catalog_path(locales_dir, locale, "mo")
        if not mo.exists() or mo.read_bytes() != _mo_bytes(catalog):
            stale = f"compiled catalog is missing or older than {po.name} (run: notifier i18n compile)"
            problems.append(Problem(str(mo), None, None, stale))
    return problems
