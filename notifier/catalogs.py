"""Gettext catalogs with Babel: extract from the templates, update, and the translation gate (check).

Each campaign is its own gettext domain, named by its id: ``locales/<campaign-id>.pot`` from its own templates
folder, and ``locales/<locale>/LC_MESSAGES/<campaign-id>.po``. Extracting, updating or checking one campaign
never reads or writes another's files, so two campaigns may translate the same English differently, and a new
campaign's catalogs start empty rather than from another campaign's translations.

The gate fails on anything that would let a broken translation reach a user: a missing, untranslated or
fuzzy entry, a placeholder dropped or invented, a plural count that does not match the header.
There is nothing to compile: notifier reads the ``.po`` files themselves (``i18n.load_translations``).
"""

from __future__ import annotations

import gettext
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po, write_po

from notifier.errors import Problem
from notifier.i18n import CatalogError, catalog_domain, catalog_path, posix

METHOD_MAP = [("**.j2", "jinja2.ext:babel_extract"), ("**.txt", "jinja2.ext:babel_extract"),
              ("**.html", "jinja2.ext:babel_extract"), ("**.mjml", "jinja2.ext:babel_extract")]
PY_KEYWORDS = {"gettext": None, "_": None, "ngettext": (1, 2)}
OPTIONS = {"**": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}}
# The plural rules of the languages we ship, as CLDR 46 states them (and Babel 2.19 writes them). They are
# part of the catalogs, not of whichever Babel is installed: Babel up to 2.18 gave Indonesian two forms and
# Spanish and Portuguese two instead of three (CLDR's "many", for millions: "1000000 de días"). Order of the
# forms: gettext's, which is CLDR's one, many, other. Other languages take what the installed Babel says.
PLURAL_FORMS = {
    "en": "nplurals=2; plural=(n != 1);",
    "es": "nplurals=3; plural=(n == 1 ? 0 : n != 0 && n % 1000000 == 0 ? 1 : 2);",
    "id": "nplurals=1; plural=0;",
    "pt_BR": "nplurals=3; plural=(n == 0 || n == 1) ? 0 : n != 0 && n % 1000000 == 0 ? 1 : 2;",
}
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
# Numbers that meet every form of the rules above (and of most others): small ones, teens, and powers of ten.
_SAMPLES = (*range(0, 200), 1_000, 10_000, 100_000, 1_000_000, 2_000_000, 10_000_000)


def pot_path(locales_dir: Path, domain: str) -> Path:
    """One campaign's template: ``locales/<campaign-id>.pot``."""
    return Path(locales_dir) / f"{catalog_domain(domain)}.pot"


def expected_plural_forms(locale: str) -> str:
    """The Plural-Forms header a locale's catalog must carry: ours for the languages above, else Babel's."""
    tag = posix(locale)
    for key in (tag, tag.split("_")[0]):
        if key in PLURAL_FORMS:
            return PLURAL_FORMS[key]
    plural = get_plural(tag)
    return f"nplurals={plural.num_plurals}; plural={plural.plural_expr};"


def _plural_rule(header: str) -> tuple[int, Callable[[int], int]]:
    """(nplurals, the function from n to the form's index) of a Plural-Forms header."""
    nplurals = int(re.search(r"nplurals\s*=\s*(\d+)", header)[1])  # type: ignore[index]
    expr = re.search(r"plural\s*=\s*(.+?);?\s*$", header)[1]  # type: ignore[index]
    return nplurals, gettext.c2py(expr)


def refit_plural_forms(strings: Sequence[str], old_header: str, new_header: str) -> tuple[tuple[str, ...], bool]:
    """One plural entry's forms carried from one plural rule to another; True when a translator must review them.

    Each new form takes the old form that the same numbers used (so "other" stays "other" when Spanish gains
    "many" between them). A form that is only a copy of a neighbour (the new "many" from the old "other") is
    flagged: it is right for most numbers but may need its own wording ("1000000 de días").
    """
    old_n, old_rule = _plural_rule(old_header)
    new_n, new_rule = _plural_rule(new_header)
    heirs: dict[int, Counter[int]] = {j: Counter() for j in range(new_n)}  # new form → old forms it covers
    for n in _SAMPLES:
        old, new = old_rule(n), new_rule(n)
        if new < new_n and old < old_n:
            heirs[new][old] += 1
    # Which new form is the main heir of each old form (the one that covers most of its numbers)?
    main = {}
    for j, sources in heirs.items():
        for i, count in sources.items():
            if count > main.get(i, (-1, 0))[1]:
                main[i] = (j, count)
    forms, review = [], False
    for j in range(new_n):
        if not heirs[j]:
            forms.append("")
            continue
        i = heirs[j].most_common(1)[0][0]
        forms.append(strings[i] if i < len(strings) else "")
        review = review or len(heirs[j]) > 1 or main[i][0] != j
    return tuple(forms), review


def _new_catalog(locale: str | None, project: str = "notifier") -> Catalog:
    catalog = Catalog(locale=posix(locale) if locale else None, project=project, version="1",
                      copyright_holder="notifier contributors", charset="utf-8",
                      creation_date=datetime(2024, 9, 1, tzinfo=UTC), revision_date=datetime(2024, 9, 1, tzinfo=UTC))
    if locale:
        catalog.mime_headers = [("Plural-Forms", expected_plural_forms(locale))]
    return catalog


def extract(templates_dir: Path, locales_dir: Path, domain: str, python: Sequence[Path] = ()) -> int:
    """Write one campaign's ``locales/<domain>.pot`` from its own templates folder (and the gettext calls of
    ``python`` modules, for text built in code); returns the number of messages."""
    template = _new_catalog(None)
    folder = Path(templates_dir)
    for filename, lineno, message, comments, context in extract_from_dir(
            str(folder), method_map=METHOD_MAP, options_map=OPTIONS, strip_comment_tags=True):
        template.add(message, None, [(f"{folder.name}/{filename}", lineno)], auto_comments=comments,
                     context=context)
    for module in python:
        for lineno, message, comments, context in extract_from_file("python", str(module), keywords=PY_KEYWORDS):
            template.add(message, None, [(f"{module.parent.name}/{module.name}", lineno)], auto_comments=comments,
                         context=context)
    path = pot_path(locales_dir, domain)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, template, width=100, sort_output=False, omit_header=False)
    return len(template)


def update(locales_dir: Path, locales: Sequence[str], domain: str) -> list[Path]:
    """Merge one campaign's template into that campaign's .po of each locale; keeps translations, marks changes fuzzy.

    A locale without a catalog of this campaign gets a new, empty one: Babel's fuzzy matching then only ever
    draws on this campaign's own earlier translations, never on another campaign's.
    """
    pot = pot_path(locales_dir, domain)
    if not pot.exists():
        raise CatalogError(f"{pot}: no template for campaign {domain} (run: notifier i18n extract {domain})")
    with pot.open("rb") as f:
        template = read_po(f)
    written = []
    for locale in locales:
        path = catalog_path(locales_dir, locale, "po", domain=domain)
        if path.exists():
            with path.open("rb") as f:
                catalog = read_po(f, locale=posix(locale))
        else:
            catalog = _new_catalog(locale)
        catalog.update(template)
        header = expected_plural_forms(locale)
        if catalog.plural_forms != header:
            _refit(catalog, header)
        catalog.mime_headers = [("Plural-Forms", header)]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, catalog, width=100, include_previous=True)
        written.append(path)
    return written


def _refit(catalog: Catalog, header: str) -> None:
    """Carry every plural entry to a new plural rule; an entry whose new forms are guesses becomes fuzzy."""
    old = catalog.plural_forms
    for msg in catalog:
        if msg.id and isinstance(msg.id, (list, tuple)):
            strings = msg.string if isinstance(msg.string, (list, tuple)) else (msg.string,)
            if not any(strings):
                continue
            msg.string, review = refit_plural_forms(strings, old, header)
            if review:
                msg.flags.add("fuzzy")
                note = "plural forms changed: check each form (the new ones are copies of a neighbour)"
                if note not in msg.user_comments:
                    msg.user_comments.append(note)


_MARKUP = re.compile(r"[<>]")


def _placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text or ""))


def check_message(file: str, msg: Message, nplurals: int, locale: str) -> Iterable[Problem]:
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
        markup = sorted(set(_MARKUP.findall(s)) - set().union(*(_MARKUP.findall(i) for i in ids)))
        if markup:  # gettext's result counts as markup in an HTML part: a tag here would reach every reader's inbox
            yield Problem(file, line, where, f"form {n} writes {' '.join(markup)}: a translation is plain text "
                                             "(no HTML tags or angle brackets)")
        if added:
            yield Problem(file, line, where, f"form {n} adds placeholder(s) {', '.join(sorted(added))}")
        if missing:
            yield Problem(file, line, where, f"form {n} drops placeholder(s) {', '.join(sorted(missing))}")


def check_catalogs(locales_dir: Path, locales: Sequence[str], domain: str) -> list[Problem]:
    """Every problem in one campaign's catalogs of its locales, against its own template; file, line and msgid."""
    problems: list[Problem] = []
    pot = pot_path(locales_dir, domain)
    if not pot.exists():
        return [Problem(str(pot), None, None, f"missing (run: notifier i18n extract {domain})")]
    with pot.open("rb") as f:
        template = read_po(f)
    for locale in locales:
        po = catalog_path(locales_dir, locale, "po", domain=domain)
        if not po.exists():
            problems.append(Problem(str(po), None, None,
                                    f"no catalog for {locale} (run: notifier i18n update {domain})"))
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
                                        f"missing from the catalog (run: notifier i18n update {domain})"))
        for msg in catalog:
            if msg.id:
                problems.extend(check_message(str(po), msg, catalog.num_plurals, locale))
    return problems
