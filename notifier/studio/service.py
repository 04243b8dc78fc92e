"""Each studio operation once, for the dashboard's pages and the JSON API alike (``notifier.web.studio_api``).

Every function takes the server's :class:`~notifier.web.requests.Web` first (settings, the ledger, the clock) and
raises notifier's own errors: a :class:`CampaignError` with located problems for input that is wrong, ``NotFound``
for an unknown campaign, locale or upload, a ``CampaignStateError`` when the campaign's state refuses the change,
``RequestRefused`` for a conflict. An edit of a stored campaign is a new version in the ledger, written to this
machine's copy at once (``store.sync``); a scheduled campaign whose copy changed is then blocked until it is
scheduled again, exactly as for files (``notifier.approval``). The parts of the studio (starter, words,
translations, uploads, dry run, test send) are imported where they are used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from notifier.campaign import Campaign, parse_campaign
from notifier.errors import (
    CampaignError,
    CampaignStateError,
    NotFound,
    Problem,
    RequestRefused,
    UserError,
)
from notifier.ledger.db import transaction
from notifier.studio import store
from notifier.studio import translations as tr
from notifier.studio.starter import FORM, STARTERS, check_starter, new_bundle, starter_from_json
from notifier.studio.templating import apply_words
from notifier.studio.words import words_from_json, words_of, words_to_json

if TYPE_CHECKING:
    from notifier.studio.translations import Entry
    from notifier.web.requests import Web

_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # a stored campaign's id, or a file campaign's (views.SLUG)
RESERVED = frozenset({"new", "check"})  # words of the dashboard's and the API's paths
STATE_OF_ACTION = {"pause": "paused", "resume": "scheduled", "cancel": "cancelled"}
MEDIA = {"po": "text/x-gettext-translation", "xliff": "application/xliff+xml"}


@dataclass(frozen=True)
class Saved:
    """A saved edit: the version it made (the same one when nothing changed) and the gate's verdict on it."""

    campaign_id: str
    version: int
    problems: tuple[Problem, ...]  # what stops it being scheduled (and, for an import, each entry refused)
    warnings: tuple[Problem, ...]


# --- reading a campaign -----------------------------------------------------------------------------------------


def checked_id(campaign_id: str) -> str:
    if not _ID.fullmatch(campaign_id or ""):
        raise NotFound(f"no campaign {campaign_id[:80]!r}: an id is lowercase letters, digits, - and _")
    return campaign_id


def stored(web: Web, campaign_id: str) -> tuple[store.Bundle, store.Version] | None:
    with web.sessions() as s:
        version = store.latest_version(s, checked_id(campaign_id))
        return None if version is None else (store.read_bundle(s, campaign_id, version.version), version)


def latest_bundle(web: Web, campaign_id: str) -> store.Bundle:
    """The campaign's files: its latest stored version, else its files on this machine (the shipped campaign)."""
    found = stored(web, campaign_id)
    return found[0] if found else store.bundle_from_disk(web.settings, campaign_id)


def bundle(web: Web, campaign_id: str, version: int | None = None) -> store.Bundle:
    """A stored version's files (default: the latest), as ``notifier campaign export`` writes them."""
    with web.sessions() as s:
        return store.read_bundle(s, checked_id(campaign_id), version)


def checked_locale(campaign: Campaign, locale: str) -> str:
    if locale not in campaign.locales:
        raise NotFound(f"campaign {campaign.id!r} has no locale {locale[:40]!r} (its locales: "
                       f"{', '.join(campaign.locales)})")
    return locale


def synced(web: Web) -> None:
    """This machine's copy of every stored campaign, as the ledger has it now."""
    with web.sessions() as s:
        store.sync(s, web.settings)


def on_disk(web: Web, campaign_id: str) -> tuple[Campaign, str]:
    """The campaign and its file's text as this machine reads them (after :func:`synced`): what is sent."""
    synced(web)
    path = store.campaign_file(web.settings, checked_id(campaign_id))
    if not path.is_file():
        raise NotFound(f"no campaign {campaign_id!r}: no file {path.name} in the campaigns folder")
    text = path.read_text(encoding="utf-8")
    campaign = parse_campaign(text, str(path))
    if campaign.id != campaign_id:
        raise CampaignError([Problem(str(path), None, "id", f"the file says {campaign.id!r}, not {campaign_id!r}")])
    return campaign, text


def campaign_of_id(web: Web, campaign_id: str) -> Campaign:
    return store.campaign_of(latest_bundle(web, campaign_id))


# --- creating and editing ---------------------------------------------------------------------------------------


def starters() -> dict[str, dict[str, Any]]:
    """The named starters, as the form's JSON."""
    return STARTERS


def check_campaign(web: Web, data: Mapping[str, Any]) -> list[Problem]:
    """The problems ``campaign validate`` would give the starter form's campaign, by the form's fields."""
    return check_starter(data, web.now())


def create_campaign(web: Web, data: Mapping[str, Any], *, origin: str = "studio") -> Saved:
    """A new stored campaign from the starter form: its file, templates from default words, catalogs: version 1."""
    form = starter_from_json(data)
    problems = check_starter(data, web.now())
    if form.id in RESERVED:
        problems.append(Problem(FORM, None, "id", f"{form.id!r} is a word of the studio's paths: choose another"))
    elif _ID.fullmatch(form.id) and _exists(web, form.id):
        problems.append(Problem(FORM, None, "id", f"a campaign {form.id!r} exists already: choose another id"))
    if problems:
        raise CampaignError(problems)
    saved = _save(web, form.id, new_bundle(form), origin)
    if saved is None:
        raise RequestRefused(409, f"a campaign {form.id!r} was created at the same moment: choose another id")
    return saved


def _exists(web: Web, campaign_id: str) -> bool:
    from notifier.ledger.models import CampaignRow

    with web.sessions() as s:
        known = s.get(CampaignRow, campaign_id) is not None or store.latest_version(s, campaign_id) is not None
    return known or (web.settings.campaigns_dir / f"{campaign_id}.yaml").is_file()


class _Stale(Exception):
    """A version saved on top of another one than the change was made from."""


class StaleVersion(CampaignStateError):
    """A change made from a version that is no longer the latest (409): someone saved since."""

    def __init__(self, campaign_id: str, base: int, latest: int) -> None:
        super().__init__(f"campaign {campaign_id!r}: version {latest} was saved after version {base}, which this "
                         "change was made from: nothing was saved; reload to see the newer version, then make the "
                         "change again")
        self.base, self.latest = base, latest


Change = Callable[[store.Bundle], tuple[store.Bundle, Sequence[Problem]]]  # files -> (new files, refused)


def _save(web: Web, campaign_id: str, bundle: store.Bundle, origin: str, refused: Sequence[Problem] = (),
          base: int | None = None) -> Saved | None:
    """Store ``bundle`` as the next version after ``base`` (None: a new campaign), write it to this machine's
    copy and run the gate on it; None when someone else saved a version since ``base`` (or at the same moment)."""
    from notifier.ledger import audit

    who = audit.current()
    try:
        with transaction(web.sessions) as s:
            version = store.save_version(s, campaign_id, bundle, now=web.now(), origin=origin, author=who.person_id)
            if version.version not in ((base or 0) + 1, base):  # made from an older version: roll it back
                raise _Stale
    except (IntegrityError, _Stale):  # the same number saved at the same moment (the unique key), or later
        return None
    synced(web)
    errors, warnings = tr.gate(bundle, web.now())
    return Saved(campaign_id, version.version, (*refused, *errors), (*_held(web, campaign_id), *warnings))


def _held(web: Web, campaign_id: str) -> list[Problem]:
    """What a saved change does to a campaign already scheduled: its copy is frozen, so it waits for approval."""
    from notifier import approval
    from notifier.ledger.models import CampaignRow, CampaignState

    with web.sessions() as s:
        row = s.get(CampaignRow, campaign_id)
        if row is None or row.state == CampaignState.CANCELLED:
            return []
        verdict = approval.check(row, *web.settings.copy_dirs(campaign_id))
        file_changed = row.spec != store.campaign_file(web.settings, campaign_id).read_text(encoding="utf-8")
    if not (verdict.blocked or file_changed):
        return []
    what = "sends nothing more" if verdict.blocked else "still sends the version it was scheduled with"
    return [Problem(f"campaigns/{campaign_id}.yaml", None, "state",
                    f"this campaign is {row.state}: it {what} until you schedule it again, which approves this "
                    "change")]


def _edit(web: Web, campaign_id: str, change: Change, origin: str, base_version: int | None = None) -> Saved:
    """Apply ``change`` to the latest version and save it; when another edit was saved meanwhile, apply it again
    on that one, so two people translating two locales at once both keep their work. With ``base_version`` (the
    version a page showed, or an API client's ``If-Match``), a newer version refuses the change instead (409): a
    whole form saved over someone else's newer one would quietly undo their work."""
    for _attempt in range(5):
        found = stored(web, campaign_id)
        if found is None:
            store.bundle_from_disk(web.settings, campaign_id)  # NotFound when there is no such campaign at all
            raise CampaignStateError(f"campaign {campaign_id!r} lives in files: edit them, or store it in the "
                                     "ledger first (notifier campaign import DIR)")
        if base_version is not None and found[1].version != base_version:
            raise StaleVersion(campaign_id, base_version, found[1].version)
        changed, refused = change(found[0])
        saved = _save(web, campaign_id, changed, origin, refused, base=found[1].version)
        if saved is not None:
            return saved
    raise RequestRefused(409, f"campaign {campaign_id!r} is being changed by others: try again")


def campaign_info(web: Web, campaign_id: str) -> dict[str, Any]:
    """What a page or a client needs first: name, version, state and phase, locales, channels, and the file."""
    from notifier import approval, reports
    from notifier.ledger.models import CampaignRow, CampaignState

    found = stored(web, campaign_id)
    bundle = found[0] if found else store.bundle_from_disk(web.settings, campaign_id)
    campaign = store.campaign_of(bundle)
    with web.sessions() as s:
        row = s.get(CampaignRow, campaign_id)
        state, phase = "draft", "draft"
        if row is not None:
            state, phase = str(row.state), reports.campaign_phase(s, campaign_id)
            copy = approval.check(row, *web.settings.copy_dirs(campaign_id))
            if row.state == CampaignState.SCHEDULED and copy.blocked:
                phase = "blocked"
    return {"id": campaign.id, "name": campaign.name, "version": found[1].version if found else None,
            "stored": found is not None, "state": state, "phase": phase, "locales": list(campaign.locales),
            "source_locale": campaign.default_locale, "channels": list(campaign.channels),
            "countries": list(campaign.countries), "where": campaign.where.text if campaign.where else None,
            "holdout": campaign.holdout_share, "templates": campaign.templates,
            "deadlines": [{"id": d.id, "label": d.label, "where": d.where.text if d.where else None}
                          for d in campaign.deadlines],
            "file": bundle[f"campaigns/{campaign.id}.yaml"].decode("utf-8-sig")}


def save_file(web: Web, campaign_id: str, text: str, *, origin: str = "studio",
              base_version: int | None = None) -> Saved:
    """The campaign's YAML edited: a new version (a located CampaignError when the file is not valid). A changed
    ``templates`` folder moves the templates; a locale added gets its catalog from the words."""
    path = f"campaigns/{campaign_id}.yaml"
    text = text.replace("\r\n", "\n")
    campaign = parse_campaign(text, path)
    if campaign.id != campaign_id:
        raise CampaignError([Problem(path, None, "id", f"this is campaign {campaign_id!r}; the file says "
                                                       f"{campaign.id!r} (start a new campaign instead)")])

    def change(bundle: store.Bundle) -> tuple[store.Bundle, Sequence[Problem]]:
        old = f"templates/{store.campaign_of(bundle).templates}/"
        moved = {(f"templates/{campaign.templates}/{p.removeprefix(old)}" if p.startswith(old) else p): data
                 for p, data in bundle.items()}
        moved[path] = text.encode("utf-8")
        words = words_of(moved)
        return (apply_words(moved, words) if words is not None else moved), ()

    return _edit(web, campaign_id, change, origin, base_version)


def get_words(web: Web, campaign_id: str) -> dict[str, Any] | None:
    """The source words as JSON; None when the templates are written by hand."""
    words = words_of(latest_bundle(web, campaign_id))
    return None if words is None else words_to_json(words)


def put_words(web: Web, campaign_id: str, data: Mapping[str, Any], *, origin: str = "studio",
              base_version: int | None = None) -> Saved:
    """New source words: the templates generated again, the catalogs updated (changed texts need translating)."""
    def change(bundle: store.Bundle) -> tuple[store.Bundle, Sequence[Problem]]:
        old = words_of(bundle)
        if old is None:
            raise CampaignStateError(f"campaign {campaign_id!r} has templates written by hand: edit them in files")
        return apply_words(bundle, words_from_json(data, old.source_locale)), ()

    return _edit(web, campaign_id, change, origin, base_version)


def get_translations(web: Web, campaign_id: str, locale: str) -> list[Entry]:
    bundle = latest_bundle(web, campaign_id)
    return tr.entries(bundle, checked_locale(store.campaign_of(bundle), locale))


def check_translation(web: Web, campaign_id: str, locale: str, key: str, forms: Sequence[str]) -> dict[str, Any]:
    """The gate's verdict on one entry translated as ``forms`` (gettext placeholders), nothing saved: the page
    shows it as the translator types."""
    bundle = latest_bundle(web, campaign_id)
    status, problems = tr.check_forms(bundle, checked_locale(store.campaign_of(bundle), locale), key, forms)
    return {"status": status, "problems": list(problems)}


def put_translations(web: Web, campaign_id: str, locale: str, changes: Mapping[str, Sequence[str]], *,
                     origin: str = "studio", base_version: int | None = None) -> Saved:
    def change(bundle: store.Bundle) -> tuple[store.Bundle, Sequence[Problem]]:
        checked_locale(store.campaign_of(bundle), locale)
        return tr.set_translations(bundle, locale, changes), ()

    return _edit(web, campaign_id, change, origin, base_version)


def export_catalog(web: Web, campaign_id: str, locale: str, fmt: str) -> tuple[bytes, str, str]:
    """(data, file name, media type) of a locale's catalog for translators: ``po`` or ``xliff`` (2.0)."""
    from notifier.i18n import posix
    if fmt not in MEDIA:
        raise NotFound(f"no catalog format {fmt[:20]!r} (po or xliff)")
    bundle = latest_bundle(web, campaign_id)
    checked_locale(store.campaign_of(bundle), locale)
    data = tr.export_po(bundle, locale) if fmt == "po" else tr.export_xliff(bundle, locale)
    return data, f"{campaign_id}.{posix(locale)}.{'po' if fmt == 'po' else 'xlf'}", MEDIA[fmt]


def import_catalog(web: Web, campaign_id: str, locale: str, data: bytes, file_name: str, *,
                   origin: str = "studio", base_version: int | None = None) -> Saved:
    """A translator's PO or XLIFF back: the entries without problems are taken; ``problems`` names each refused
    entry (file, line or unit), then what the gate still finds."""
    def change(bundle: store.Bundle) -> tuple[store.Bundle, Sequence[Problem]]:
        checked_locale(store.campaign_of(bundle), locale)
        try:
            imported, refused = tr.import_translations(bundle, locale, data, file_name)
        except UserError:
            raise
        except Exception as exc:  # a parser's own failure (translate-toolkit asserts its root): the file's fault
            raise CampaignError([Problem(file_name, None, None, "cannot be read as a PO or XLIFF 2 file "
                                                                f"({type(exc).__name__})")]) from None
        if refused and imported == bundle:  # nothing taken: the file is refused, not "imported" (422)
            raise CampaignError(list(refused))
        return imported, refused

    return _edit(web, campaign_id, change, origin, base_version)


def gate(web: Web, campaign_id: str) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings): what stops the campaign being scheduled, and what is sent but cut on some screens."""
    return tr.gate(latest_bundle(web, campaign_id), web.now())


# Seeing, trying and sending (notifier/studio/sending.py): part of this service, imported last (it uses the above).
from notifier.studio.sending import (  # noqa: E402, F401
    dry_run,
    fast_forward,
    preview,
    preview_choices,
    progress,
    rejects_csv,
    schedule,
    seeds,
    set_seeds,
    set_state,
    sniff_upload,
    start_upload,
    test_send,
    upload_status,
)
