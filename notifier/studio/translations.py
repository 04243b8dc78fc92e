"""Translations side by side, PO and XLIFF 2 for translators, and the gate, on a campaign's bundle.

Every entry is checked as the translation gate checks a catalog (``notifier.catalogs``: placeholders dropped or
invented, plural forms against the locale's rule) and, for push text, against the push length limits; an import
takes each entry that passes and names the file and line (PO) or unit (XLIFF) of each one that does not.
XLIFF 2.0 is read and written with translate-toolkit's ``Xliff2File``; a plural entry is one unit per plural form
of the target language (``<id>-one``, ``<id>-other``), since XLIFF 2.0 core has no plurals.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import PoFileError, read_po, write_po
from lxml import etree
from translate.storage.xliff2 import Xliff2File

from notifier.catalogs import check_message
from notifier.errors import CampaignError, NotFound, Problem
from notifier.i18n import format_day, posix
from notifier.render import PUSH_BODY_FITS, PUSH_BODY_MAX, PUSH_TITLE_FITS, PUSH_TITLE_MAX
from notifier.studio import store
from notifier.studio.templating import as_gettext
from notifier.studio.words import plural_count, words_of

CLDR_ORDER = ("zero", "one", "two", "few", "many", "other")  # gettext's order of the forms (notifier.catalogs)
_STATUS_ONLY = ("fuzzy:", "untranslated")  # what an entry's status already says
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@dataclass(frozen=True)
class Entry:
    key: str  # the msgid (context + "\x04" + msgid when it has one): what set_translations takes
    source: tuple[str, ...]  # singular (and plural) source text
    target: tuple[str, ...]  # one per plural form of the target ("" when missing)
    plural_names: tuple[str, ...]  # CLDR names of the target's forms, () when not a plural
    status: str  # missing | fuzzy | done
    problems: tuple[str, ...]
    where: tuple[str, ...]  # template:line


def plural_names(locale: str) -> tuple[str, ...]:
    """The CLDR names of a language's plural forms, in gettext's order (pt-BR: one, many, other)."""
    n = plural_count(locale)
    tags = Locale.parse(posix(locale)).plural_form.tags
    names = tuple(t for t in CLDR_ORDER if t in tags or t == "other")
    return names if len(names) == n else tuple(f"form {i}" for i in range(n))


def _key(msg: Message) -> str:
    msgid = msg.id if isinstance(msg.id, str) else msg.id[0]
    return f"{msg.context}\x04{msgid}" if msg.context else msgid


def _strings(msg: Message) -> tuple[str, ...]:
    return tuple(msg.string) if isinstance(msg.string, (list, tuple)) else (msg.string or "",)


def _read(data: bytes, locale: str | None = None) -> Catalog:
    return read_po(io.BytesIO(data), locale=posix(locale) if locale else None)


def _po_path(bundle: store.Bundle, locale: str) -> tuple[str, str]:
    """(campaign id, the bundle path of the locale's catalog); NotFound for a locale the campaign lacks."""
    campaign = store.campaign_of(bundle)
    if locale not in campaign.locales:
        raise NotFound(f"campaign {campaign.id} has no locale {locale!r} (it has {', '.join(campaign.locales)})")
    return campaign.id, store.catalog_key(campaign.id, locale)


def _template(bundle: store.Bundle, campaign_id: str) -> Catalog:
    path = f"locales/{campaign_id}.pot"
    if path not in bundle:
        raise NotFound(f"{path}: the campaign has no message template yet")
    return _read(bundle[path])


def _catalog(bundle: store.Bundle, locale: str) -> tuple[str, Catalog, Catalog]:
    campaign_id, path = _po_path(bundle, locale)
    template = _template(bundle, campaign_id)
    catalog = _read(bundle[path], locale) if path in bundle else Catalog(locale=posix(locale))
    return path, template, catalog


# --- side by side -----------------------------------------------------------------------------------------------


def entries(bundle: store.Bundle, locale: str) -> list[Entry]:
    """Every message of the campaign with its translation into ``locale``, its status and its problems."""
    path, template, catalog = _catalog(bundle, locale)
    push = _push_limits(bundle, locale)
    found = []
    for msg in template:
        if not msg.id:
            continue
        plural = isinstance(msg.id, (list, tuple))
        have = catalog.get(msg.id if isinstance(msg.id, str) else msg.id[0], context=msg.context)
        status, target, problems = _verdict(path, msg, _strings(have) if have is not None else (),
                                            have is not None and have.fuzzy, locale, push)
        found.append(Entry(_key(msg), tuple(msg.id) if plural else (msg.id,), target,
                           plural_names(locale) if plural else (), status, problems,
                           tuple(f"{file}:{line}" for file, line in msg.locations)))
    return found


def check_forms(bundle: store.Bundle, locale: str, key: str, forms: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """(status, problems) of one entry as if ``forms`` (gettext placeholders) were its translation: the very checks
    :func:`entries` makes, so the page can give the gate's verdict as the translator types, before a save."""
    path, template, _ = _catalog(bundle, locale)
    context, _, msgid = key.rpartition("\x04")
    source = template.get(msgid, context=context or None)
    if source is None:
        raise NotFound(f"{path}: no message {key[:80]!r} in this campaign")
    status, _, problems = _verdict(path, source, tuple(forms), False, locale, _push_limits(bundle, locale))
    return status, problems


def _verdict(path: str, msg: Message, strings: Sequence[str], fuzzy: bool, locale: str,
             push: Callable[[Message, Sequence[str]], list[str]]) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(status, target padded to the locale's forms, problems) of a template message translated as ``strings``:
    the one check of an entry, whether stored or being typed."""
    n = plural_count(locale)
    plural = isinstance(msg.id, (list, tuple))
    target = tuple(strings[:n]) + ("",) * (n - len(strings)) if plural else (tuple(strings) or ("",))[:1]
    status = "missing" if not all(target) else "fuzzy" if fuzzy else "done"
    if status == "missing":
        return status, target, ()
    have = Message(msg.id, tuple(strings) if plural else target[0], context=msg.context)  # extra forms: a problem
    problems = [p.message for p in check_message(path, have, n, locale) if not p.message.startswith(_STATUS_ONLY)]
    return status, target, tuple(problems + push(msg, target))


def _push_limits(bundle: store.Bundle, locale: str) -> Callable[[Message, Sequence[str]], list[str]]:
    """A check of the push texts' length with typical values in the placeholders (the gate renders them exactly)."""
    campaign = store.campaign_of(bundle)
    words = words_of(bundle)
    limits: dict[str, tuple[str, int, int]] = {}
    if words is not None:
        for stage in words.stages.values():
            for name, most, fits in (("push_title", PUSH_TITLE_MAX, PUSH_TITLE_FITS),
                                     ("push_body", PUSH_BODY_MAX, PUSH_BODY_FITS)):
                limits[as_gettext(stage.forms(name))[0]] = (name.replace("_", " "), most, fits)
    values = {"date": format_day(date(2027, 9, 28), locale), "num": "30", "sender": campaign.sender.name
              if campaign.sender else campaign.name, "deadline": max((d.label or d.id for d in campaign.deadlines),
                                                                      key=len),
              "link": max(campaign.links.values(), key=len, default="")}

    def check(msg: Message, target: Sequence[str]) -> list[str]:
        limit = limits.get(msg.id if isinstance(msg.id, str) else msg.id[0])
        if limit is None:
            return []
        what, most, fits = limit
        size = max(len(_PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), t).replace("%%", "%")) for t in target)
        if size > most:
            return [f"{what} is about {size} characters with its placeholders filled (limit {most})"]
        if size > fits:
            return [f"{what} is about {size} characters: some phones cut it after {fits}"]
        return []
    return check


def set_translations(bundle: store.Bundle, locale: str, changes: Mapping[str, Sequence[str]]) -> store.Bundle:
    """The bundle with these entries of ``locale`` translated (each form given; fuzzy cleared)."""
    path, template, catalog = _catalog(bundle, locale)
    n = plural_count(locale)
    problems = []
    for key, forms in changes.items():
        context, _, msgid = key.rpartition("\x04")
        source = template.get(msgid, context=context or None)
        if source is None:
            problems.append(Problem(path, None, key, "no such message in this campaign"))
            continue
        plural = isinstance(source.id, (list, tuple))
        want = n if plural else 1
        if isinstance(forms, str) or len(forms) != want:
            problems.append(Problem(path, None, key, f"expected {want} text(s), one per plural form"))
            continue
        _put(catalog, source, tuple(forms), fuzzy=False)
    if problems:
        raise CampaignError(problems)
    return {**bundle, path: _write(catalog)}


def _put(catalog: Catalog, source: Message, forms: tuple[str, ...], *, fuzzy: bool) -> None:
    plural = isinstance(source.id, (list, tuple))
    msgid = source.id if isinstance(source.id, str) else source.id[0]
    old = catalog.get(msgid, context=source.context)
    flags = {f for f in (old.flags if old is not None else source.flags) if f != "fuzzy"} | ({"fuzzy"} if fuzzy
                                                                                            else set())
    if old is None:
        old = catalog.add(source.id, locations=source.locations, auto_comments=source.auto_comments,
                          context=source.context)
    old.string = forms if plural else forms[0]
    old.flags = flags


def _write(catalog: Catalog) -> bytes:
    buf = io.BytesIO()
    write_po(buf, catalog, width=100)
    return buf.getvalue()


# --- export ---------------------------------------------------------------------------------------------------


def export_po(bundle: store.Bundle, locale: str) -> bytes:
    """The locale's ``.po``, as the campaign keeps it."""
    path, _, catalog = _catalog(bundle, locale)
    return bundle.get(path) or _write(catalog)


def _unit_id(key: str, form: str | None = None) -> str:
    """A stable XLIFF unit id of an entry (and plural form): ids must be XML names, msgids are any text."""
    digest = "m" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{digest}-{form}" if form else digest


def _units(template: Catalog, locale: str) -> Iterable[tuple[str, Message, int, str | None]]:
    """(unit id, message, form index, form name) of every unit the template makes for ``locale``."""
    names = plural_names(locale)
    for msg in template:
        if not msg.id:
            continue
        if isinstance(msg.id, (list, tuple)):
            for i, name in enumerate(names):
                yield _unit_id(_key(msg), name), msg, i, name
        else:
            yield _unit_id(_key(msg)), msg, 0, None


def export_xliff(bundle: store.Bundle, locale: str) -> bytes:
    """The locale's translations as XLIFF 2.0 (translate-toolkit), one unit per message and plural form; a unit's
    note says where the text is used and which plural form it is."""
    _, template, catalog = _catalog(bundle, locale)
    campaign = store.campaign_of(bundle)
    out = Xliff2File()
    out.setsourcelanguage(campaign.default_locale)
    out.settargetlanguage(locale)
    for uid, msg, i, name in _units(template, locale):
        plural = isinstance(msg.id, (list, tuple))
        unit = out.addsourceunit(msg.id[0 if name == "one" else 1] if plural else msg.id)
        unit.setid(uid)
        have = catalog.get(msg.id if isinstance(msg.id, str) else msg.id[0], context=msg.context)
        target = _strings(have) if have is not None else ()
        if i < len(target) and target[i]:
            unit.settarget(target[i])
            unit.markfuzzy(have.fuzzy)
        # Notes belong to the unit, before its segment (the toolkit's addnote puts them in the segment).
        notes = etree.Element(unit.namespaced("notes"))
        note = etree.SubElement(notes, unit.namespaced("note"), category="location")
        note.text = " ".join(f"{f}:{line}" for f, line in msg.locations) + (f" (plural form: {name})" if name else "")
        unit.getunitelement().insert(0, notes)
    return bytes(out)


# --- import ----------------------------------------------------------------------------------------------------


def import_translations(bundle: store.Bundle, locale: str, data: bytes,
                        file_name: str) -> tuple[store.Bundle, list[Problem]]:
    """The bundle with every sound entry of a translator's ``.po`` or XLIFF 2 file taken; a Problem names the file
    and line (PO) or unit (XLIFF) of each entry left out, and why."""
    path, template, catalog = _catalog(bundle, locale)
    xliff = file_name.lower().endswith((".xlf", ".xliff")) or data.lstrip()[:200].find(b"<xliff") >= 0
    found = _from_xliff(data, file_name, template, locale) if xliff else _from_po(data, file_name, template, locale)
    taken, problems = found
    if not taken and not problems:
        problems = [Problem(file_name, None, None, "no translation of this campaign's messages in it")]
    for source, forms, fuzzy in taken:
        _put(catalog, source, forms, fuzzy=fuzzy)
    return ({**bundle, path: _write(catalog)} if taken else bundle), problems


_Taken = tuple[list[tuple[Message, tuple[str, ...], bool]], list[Problem]]


def _gate_one(file_name: str, source: Message, forms: tuple[str, ...], fuzzy: bool, locale: str, line: int | None,
              field: str | None = None) -> list[Problem]:
    """The translation gate's problems of one imported entry (its status aside)."""
    msg = Message(source.id, forms if isinstance(source.id, (list, tuple)) else forms[0], lineno=line)
    found = [p for p in check_message(file_name, msg, plural_count(locale), locale)
             if not p.message.startswith(_STATUS_ONLY)]
    if len(forms) > 1 and not all(forms):
        found.append(Problem(file_name, line, None, "some plural forms are empty"))
    return [Problem(file_name, line, field or p.field, p.message) for p in found]


def _from_po(data: bytes, file_name: str, template: Catalog, locale: str) -> _Taken:
    try:
        imported = read_po(io.BytesIO(data), locale=posix(locale), abort_invalid=True)
    except (PoFileError, ValueError, UnicodeDecodeError) as exc:
        return [], [Problem(file_name, None, None, f"not a PO file: {exc}")]
    taken, problems = [], []
    for msg in imported:
        if not msg.id:
            continue
        forms = _strings(msg)
        source = template.get(msg.id if isinstance(msg.id, str) else msg.id[0], context=msg.context)
        if source is None:
            problems.append(Problem(file_name, msg.lineno, _key(msg), "not a message of this campaign (was its "
                                                                      "source text changed?)"))
            continue
        if not any(forms):
            continue
        if isinstance(source.id, (list, tuple)) != isinstance(msg.id, (list, tuple)):
            problems.append(Problem(file_name, msg.lineno, _key(msg), "plural in one file and not in the other"))
            continue
        found = _gate_one(file_name, source, forms, msg.fuzzy, locale, msg.lineno, f"msgid {_key(msg)!r}")
        problems += found
        if not found:
            taken.append((source, forms, msg.fuzzy))
    return taken, problems


def _from_xliff(data: bytes, file_name: str, template: Catalog, locale: str) -> _Taken:
    try:
        imported = Xliff2File.parsestring(data)
    except (etree.XMLSyntaxError, ValueError) as exc:
        return [], [Problem(file_name, None, None, f"not an XLIFF 2 file: {exc}")]
    units = {uid: (msg, i) for uid, msg, i, _ in _units(template, locale)}
    by_msg: dict[str, tuple[Message, dict[int, str], bool, list[str]]] = {}
    problems = []
    for unit in imported.units:
        uid = unit.getid() or ""
        if uid not in units:
            problems.append(Problem(file_name, None, f"unit {uid}", "not a message of this campaign"))
            continue
        msg, i = units[uid]
        got = by_msg.setdefault(_key(msg), (msg, {}, False, []))
        got[1][i] = str(unit.target or "")
        got[3].append(uid)
        if unit.target and unit.isfuzzy():
            by_msg[_key(msg)] = (msg, got[1], True, got[3])
    taken = []
    for msg, texts, fuzzy, uids in by_msg.values():
        n = plural_count(locale) if isinstance(msg.id, (list, tuple)) else 1
        forms = tuple(texts.get(i, "") for i in range(n))
        if not any(forms):
            continue
        found = _gate_one(file_name, msg, forms, fuzzy, locale, None, f"unit {', '.join(uids)}")
        problems += found
        if not found:
            taken.append((msg, forms, fuzzy))
    return taken, problems


# --- the gate -----------------------------------------------------------------------------------------------------


def gate(bundle: store.Bundle, now: datetime | None = None) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) as ``campaign validate`` gives them: the translation gate and every message rendered, then
    pushes cut on some screens; with ``now``, the waves no time zone still gets (a campaign that sends nothing is an
    error). Files are named by their path in the bundle."""
    from notifier.planner import NOTHING_SENT, outlook
    from notifier.render import Renderer
    from notifier.review import review, warnings
    from notifier.zones import every_zone

    try:
        campaign = store.campaign_of(bundle)
    except CampaignError as exc:
        return exc.problems, []
    with store.unpacked(bundle) as u:
        renderer = Renderer(u.templates_dir, u.locales_dir)
        errors = review(campaign, renderer)
        warned = [] if errors else warnings(campaign, renderer)
        root = f"{u.root}/"
    if now is not None:
        seen = outlook(campaign, every_zone(), now)
        warned += seen.not_sent
        if seen.sends_nothing:
            errors.append(Problem(campaign.source, None, "deadlines", NOTHING_SENT))

    def relative(problems: list[Problem]) -> list[Problem]:
        return [Problem(p.file.replace(root, ""), p.line, p.field, p.message.replace(root, "")) for p in problems]
    return relative(errors), relative(list(warned))
