"""The studio's pages: marketing starts a campaign from a starter, writes its words once, translates them side by
side, sees every message, uploads an audience, tries the campaign and sends a test, in the browser. Every action
goes through ``notifier.studio.service`` (the JSON API calls the same functions); these routes only read forms,
call one function and render a page. Each ``POST`` needs the session's CSRF token, as the dashboard's controls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from babel import Locale, UnknownLocaleError
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from notifier.campaign import parse_campaign
from notifier.errors import CampaignError, NotFound, Problem, RequestRefused, UserError
from notifier.studio import service
from notifier.team.roles import Can, needs, refuse_unless
from notifier.web.dashboard import studio_forms as forms
from notifier.web.dashboard import views
from notifier.web.dashboard.access import DashboardRoute, identity, same_origin, ui_locale
from notifier.web.dashboard.auth import same_token
from notifier.web.dashboard.pages import HERE, render, translations
from notifier.web.requests import web_of
from notifier.words import Words

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)
MAX_FORM_BYTES = 2 * 1024 * 1024
MAX_FIELDS = 1000
MAX_AUDIENCE_BYTES = 2 * 1024 ** 3  # an audience file; it streams to disk
MAX_CATALOG_BYTES = 4 * 1024 * 1024
HEAD = 64 * 1024
NO_STORE = {"Cache-Control": "no-store"}


async def _form(request: Request, max_bytes: int = MAX_FORM_BYTES) -> FormData:
    """A studio form: a session (401), the same origin and the session's CSRF token (403), a size cap (413)."""
    ident = await run_in_threadpool(identity, request)
    same_origin(request)
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise RequestRefused(411, "a form must say its length")
    if int(declared) > max_bytes:
        raise RequestRefused(413, f"the form is {declared} bytes; at most {max_bytes}")
    form = await request.form(max_files=1, max_fields=MAX_FIELDS, max_part_size=MAX_CATALOG_BYTES)
    token = form.get("csrf")
    if not same_token(ident.csrf, token if isinstance(token, str) else None):
        raise RequestRefused(403, "the form's CSRF token is missing or wrong: reload the page and try again")
    return form


def _call(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return run_in_threadpool(fn, web_of(request), *args, **kwargs)


def _id(campaign_id: str) -> str:
    if not views.could_be_campaign_id(campaign_id):
        raise NotFound(f"no campaign {campaign_id[:80]!r}")
    return campaign_id


async def _page(request: Request, name: str, campaign_id: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """A studio page of one campaign, with its tabs."""
    info = await _call(request, service.campaign_info, campaign_id)
    return render(request, name, status, info=info, campaign_id=campaign_id, tab=name[7:-5],
                  send_words=_send_words(request, info), **ctx)


def _send_words(request: Request, info: dict[str, Any]) -> Callable[[str], str]:
    """A send in the page's language ("30 hari sebelum ..."), as the campaign page says it; the key when the file
    cannot be read."""
    try:
        campaign = parse_campaign(info["file"], f"campaigns/{info['id']}.yaml")
    except (CampaignError, KeyError):
        return lambda key: key
    words = Words(translations(ui_locale(request)))
    return lambda key: words.send(campaign, key)


def _version(posted: FormData) -> int | None:
    """The version the page showed (its hidden ``version``): a save made from an older one is refused (409)."""
    value = posted.get("version")
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _problems(problems: Any) -> list[dict[str, Any]]:
    return [{"field": p.field, "message": p.message, "line": p.line, "file": p.file, "text": str(p)}
            if isinstance(p, Problem) else {"field": None, "message": str(p), "line": None, "file": None,
                                             "text": str(p)} for p in problems or ()]


@router.get("/static/dashboard/studio.js")
def script() -> FileResponse:
    return FileResponse(HERE / "static" / "studio.js", media_type="text/javascript",
                        headers={"Cache-Control": "max-age=300"})


# --- 1. a campaign from a starter -------------------------------------------------------------------------------


@router.get("/campaigns/new/starter")
@needs(Can.EDIT)
def starter_page(request: Request, starter: str = "price-change") -> HTMLResponse:
    identity(request)
    starters = service.starters()
    data = starters.get(starter) or next(iter(starters.values()))
    return render(request, "studio_start.html", form=forms.starter_form(data), starters=list(starters),
                  chosen=starter, problems=[], chips=forms.CHIPS)


@router.post("/campaigns/new/starter")
@needs(Can.EDIT)
async def create_campaign(request: Request) -> Any:
    posted = await _form(request)
    data = forms.starter_json(posted)
    if posted.get("add") == "deadline":
        return render(request, "studio_start.html", form=forms.with_another_deadline(forms.starter_form(data)),
                      starters=list(service.starters()), chosen="", problems=[], chips=forms.CHIPS)
    try:
        saved = await _call(request, service.create_campaign, data)
    except CampaignError as exc:
        return render(request, "studio_start.html", 422, form=forms.starter_form(data),
                      starters=list(service.starters()), chosen="", problems=_problems(exc.problems),
                      chips=forms.CHIPS)
    return RedirectResponse(f"/campaigns/{quote(saved.campaign_id)}/words?done=created", status_code=303)


@router.post("/campaigns/new/check")
@needs(Can.EDIT)
async def check_campaign(request: Request) -> JSONResponse:
    """Live validation for studio.js: the starter form's problems, each with the form's field it names."""
    data = forms.starter_json(await _form(request))
    try:
        problems = await _call(request, service.check_campaign, data)
    except CampaignError as exc:
        problems = exc.problems
    return JSONResponse({"problems": _problems(problems)}, headers={"Cache-Control": "no-store"})


# --- 2. the words -----------------------------------------------------------------------------------------------


def language_name(locale: str, ui: str) -> str:
    """``pt-BR`` as the reader says it: "Portuguese (Brazil)", "Portugis (Brasil)"."""
    try:
        return str(Locale.parse(locale.replace("-", "_")).get_display_name(ui) or locale)
    except (ValueError, UnknownLocaleError):
        return locale


def _words_view(words: dict[str, Any] | None, source_locale: str, ui: str) -> dict[str, Any]:
    from notifier.studio.words import PLACEHOLDERS, plural_count

    count = plural_count(source_locale)
    return {"words": words, "placeholders": PLACEHOLDERS, "source_name": language_name(source_locale, ui),
            "stages": forms.STAGES, "email_fields": forms.EMAIL_FIELDS,
            "push_fields": forms.PUSH_FIELDS, "plural_names": forms.plural_names(source_locale, count),
            "forms": count}


@router.get("/campaigns/{campaign_id}/words")
@needs(Can.READ)
async def words_page(request: Request, campaign_id: str) -> HTMLResponse:
    info = await _call(request, service.campaign_info, _id(campaign_id))
    words = await _call(request, service.get_words, campaign_id)
    return await _page(request, "studio_words.html", campaign_id, problems=[],
                       **_words_view(words, info.get("source_locale") or "en", ui_locale(request)))


@router.post("/campaigns/{campaign_id}/words")
@needs(Can.EDIT)
async def save_words(request: Request, campaign_id: str) -> Any:
    posted = await _form(request)
    info = await _call(request, service.campaign_info, _id(campaign_id))
    source = info.get("source_locale") or "en"
    view = _words_view(None, source, ui_locale(request))
    data = forms.words_json(posted, source, view["forms"])
    try:
        saved = await _call(request, service.put_words, campaign_id, data, base_version=_version(posted))
    except (CampaignError, service.StaleVersion) as exc:  # the page again, with what was typed
        view["words"] = data
        stale = isinstance(exc, service.StaleVersion)
        return await _page(request, "studio_words.html", campaign_id, 409 if stale else 422,
                           problems=_problems([exc] if stale else getattr(exc, "problems", ())), **view)
    target = "translations" if posted.get("next") == "translations" else "words"
    return RedirectResponse(f"/campaigns/{quote(campaign_id)}/{target}?done=saved&v={saved.version}",
                            status_code=303)


# --- 3. translations --------------------------------------------------------------------------------------------


@router.get("/campaigns/{campaign_id}/translations")
@needs(Can.READ)
async def translations_page(request: Request, campaign_id: str) -> HTMLResponse:
    info = await _call(request, service.campaign_info, _id(campaign_id))
    source = info.get("source_locale")
    overview = []
    for locale in info.get("locales") or []:
        entries = await _call(request, service.get_translations, campaign_id, locale)
        counts = {s: sum(1 for e in entries if _status(e) == s) for s in ("done", "fuzzy", "missing")}
        overview.append({"locale": locale, "source": locale == source, "counts": counts, "total": len(entries),
                         "name": language_name(locale, ui_locale(request)),
                         "problems": sum(1 for e in entries if e.problems)})
    errors, warnings = await _call(request, service.gate, campaign_id)
    return await _page(request, "studio_translations.html", campaign_id, overview=overview,
                       errors=_problems(errors), warnings=_problems(warnings))


def _locale(info: dict[str, Any], locale: str) -> str:
    if locale not in (info.get("locales") or []):
        raise NotFound(f"the campaign has no locale {locale[:40]!r}")
    return locale


def _status(entry: Any) -> str:
    """An entry's badge: "check" when the gate finds a problem in it, whatever the catalog says."""
    return "check" if entry.problems else str(entry.status)


async def _locale_page(request: Request, campaign_id: str, locale: str, status: int = 200,
                       typed: dict[str, tuple[str, ...]] | None = None, **ctx: Any) -> Any:
    """A locale's entries side by side, the ones with problems first; ``typed``: what the translator posted, kept
    in the fields when the save is refused."""
    found = await _call(request, service.get_translations, campaign_id, locale)
    entries = [dataclasses.replace(e, source=tuple(map(forms.readable, e.source)), status=_status(e),
                                   target=(typed or {}).get(e.key) or tuple(map(forms.readable, e.target)))
               for e in sorted(found, key=lambda e: not e.problems)]
    return await _page(request, "studio_locale.html", campaign_id, status, locale=locale, entries=entries,
                       language=language_name(locale, ui_locale(request)),
                       **{"problems": [], **ctx})


@router.get("/campaigns/{campaign_id}/translations/{locale}")
@needs(Can.READ)
async def locale_page(request: Request, campaign_id: str, locale: str, done: str = "", refused: str = "") -> Any:
    info = await _call(request, service.campaign_info, _id(campaign_id))
    return await _locale_page(request, campaign_id, _locale(info, locale), done=done[:20],
                              refused=min(int(refused), 100_000) if refused[:6].isdigit() else 0)


@router.post("/campaigns/{campaign_id}/translations/{locale}")
@needs(Can.EDIT)
async def save_translations(request: Request, campaign_id: str, locale: str) -> Any:
    posted = await _form(request)
    info = await _call(request, service.campaign_info, _id(campaign_id))
    _locale(info, locale)
    keys = [k for k in posted.getlist("key") if isinstance(k, str)]
    sources = {e.key: e.source for e in await _call(request, service.get_translations, campaign_id, locale)}
    try:
        saved = await _call(request, service.put_translations, campaign_id, locale,
                            forms.translation_changes(posted, keys, sources), base_version=_version(posted))
    except (CampaignError, service.StaleVersion) as exc:  # the page again, with what was typed
        stale = isinstance(exc, service.StaleVersion)
        return await _locale_page(request, campaign_id, locale, 409 if stale else 422,
                                  typed=forms.typed_translations(posted, keys),
                                  problems=_problems([exc] if stale else getattr(exc, "problems", ())))
    return await _locale_page(request, campaign_id, locale, done="saved", blocking=_problems(saved.problems))


@router.post("/campaigns/{campaign_id}/translations/{locale}/check")
@needs(Can.EDIT)
async def check_translation(request: Request, campaign_id: str, locale: str) -> JSONResponse:
    """Live check for studio.js: one entry's badge and problems with the forms typed so far ({placeholders}, as
    the page shows them), nothing saved."""
    posted = await _form(request)
    key = posted.get("key")
    if not isinstance(key, str):
        raise RequestRefused(422, "the check needs the entry's key")
    sources = {e.key: e.source for e in await _call(request, service.get_translations, _id(campaign_id), locale)}
    if key not in sources:
        raise NotFound("no such entry in this campaign: reload the page")
    typed = [forms.as_catalog_text(v.strip(), sources[key]) for v in posted.getlist("form") if isinstance(v, str)]
    found = await _call(request, service.check_translation, campaign_id, locale, key, typed)
    status = "check" if found["problems"] else found["status"]
    return JSONResponse({"status": status, "problems": found["problems"]}, headers=NO_STORE)


@router.get("/campaigns/{campaign_id}/translations/{locale}/export")
@needs(Can.READ)
async def export_catalog(request: Request, campaign_id: str, locale: str, format: str = "po") -> Response:
    await run_in_threadpool(identity, request)
    if format not in ("po", "xliff"):
        raise RequestRefused(400, "format is po or xliff")
    data, name, media = await _call(request, service.export_catalog, _id(campaign_id), locale, format)
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                     "Cache-Control": "no-store"})


@router.post("/campaigns/{campaign_id}/translations/{locale}/import")
@needs(Can.EDIT)
async def import_catalog(request: Request, campaign_id: str, locale: str) -> Any:
    posted = await _form(request, MAX_CATALOG_BYTES)
    upload = posted.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise RequestRefused(400, "choose a .po or .xlf file to import")
    data = await upload.read(MAX_CATALOG_BYTES + 1)
    name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:100]
    try:
        saved = await _call(request, service.import_catalog, _id(campaign_id), locale, data, name,
                            base_version=_version(posted))
    except service.StaleVersion as exc:
        return await _locale_page(request, campaign_id, locale, 409, problems=_problems([exc]))
    except CampaignError as exc:  # nothing could be taken from the file
        return await _locale_page(request, campaign_id, locale, 422, problems=_problems(exc.problems))
    refused = sum(1 for p in saved.problems if p.file == name)  # the file's entries not taken
    # Post/Redirect/Get: a reload shows the page, it does not send the file again.
    return RedirectResponse(f"/campaigns/{quote(campaign_id)}/translations/{quote(locale)}?done=imported"
                            f"&refused={refused}", status_code=303)


# --- 4. preview -------------------------------------------------------------------------------------------------


@router.get("/campaigns/{campaign_id}/preview")
@needs(Can.READ)
async def preview_page(request: Request, campaign_id: str, locale: str = "", send: str = "",
                       recipient: str = "") -> HTMLResponse:
    if recipient.strip():  # as one person gets it: their personal data
        refuse_unless((await run_in_threadpool(identity, request)).role, Can.PERSONAL)
    choices = await _call(request, service.preview_choices, _id(campaign_id))
    locale = locale if locale in choices["locales"] else (choices["locales"] or [""])[0]
    keys = [s["send_key"] for s in choices["sends"]]
    send = send if send in keys else (keys or [""])[0]
    shown, problems = {}, []
    for channel in choices["channels"]:
        try:
            shown[channel] = await _call(request, service.preview, campaign_id, locale=locale, send_key=send,
                                         channel=channel, recipient_id=recipient.strip()[:200] or None)
        except (CampaignError, UserError) as exc:
            problems += _problems(getattr(exc, "problems", None) or [exc])
    return await _page(request, "studio_preview.html", campaign_id, choices=choices, locale=locale, send=send,
                       recipient=recipient[:200], shown=shown, problems=problems,
                       app=await run_in_threadpool(_sender_name, request, campaign_id))


def _sender_name(request: Request, campaign_id: str) -> str:
    """What the phone shows as the notification's app: the campaign's sender."""
    from notifier.campaign import parse_campaign

    info = service.campaign_info(web_of(request), campaign_id)
    campaign = parse_campaign(info["file"], f"{campaign_id}.yaml")
    return campaign.sender.name if campaign.sender is not None else campaign.name


# --- 5 to 7: the audience, try it and test send (studio_tryout.py) ---------------------------------------------

from notifier.web.dashboard import studio_tryout  # noqa: E402  (it uses the helpers above)

router.include_router(studio_tryout.router)
